"""Importers of third-party Darcy data: tiny files of each source structure are built here (no downloads)."""

import fractions
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from mano_pde.cli import main
from mano_pde.data import DarcyDataError, open_darcy
from mano_pde.data.importers import FORMATS, detect_format, import_darcy

N, S = 3, 9  # 9 = 8 + 1: node views at 5 and 3 points
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def _fields(n=N, s=S, seed=0):
    """Piecewise-constant permeability in {12, 3} and a pressure that vanishes on the boundary (float64)."""
    rng = np.random.default_rng(seed)
    mask = rng.standard_normal((n, s, s)) >= 0
    a = np.where(mask, 12.0, 3.0)
    u = rng.random((n, s, s))
    u[:, [0, -1], :] = 0.0
    u[:, :, [0, -1]] = 0.0
    return mask, a, u


def write_mat_v5(path, a, u, **extra):
    scipy.io.savemat(path, {"coeff": a, "sol": u, **extra})
    return path


def write_mat_v73(path, a, u, *, matlab=True):
    """MATLAB v7.3 layout: HDF5 behind a 512-byte header; column-major arrays appear with reversed axes."""
    with h5py.File(path, "w", userblock_size=512 if matlab else 0) as f:
        for name, arr in (("coeff", a), ("sol", u)):
            d = f.create_dataset(name, data=arr.transpose(2, 1, 0) if matlab else arr)
            if matlab:
                d.attrs["MATLAB_class"] = np.bytes_("double")
    if matlab:
        with open(path, "r+b") as fh:
            fh.write(MATLAB_HEADER.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    return path


def write_pt(path, x, y, **extra):
    torch.save({"x": torch.as_tensor(x), "y": torch.as_tensor(y), **extra}, path)
    return path


def write_pdebench(path, nu, u, *, beta=1.0, coords=True):
    s = nu.shape[-1]
    with h5py.File(path, "w") as f:
        f.create_dataset("nu", data=nu.astype(np.float32))
        f.create_dataset("tensor", data=u[:, None].astype(np.float32))
        if coords:
            f.create_dataset("x-coordinate", data=(np.arange(s) + 0.5) / s)
            f.create_dataset("y-coordinate", data=(np.arange(s) + 0.5) / s)
        if beta is not None:
            f.attrs["beta"] = beta
    return path


def _case(kind, tmp_path):
    """(source path, expected format, expected a and u in mano_pde layout, expected x coordinates)."""
    mask, a, u = _fields()
    node = np.linspace(0, 1, S)
    if kind == "mat-v5":
        return write_mat_v5(tmp_path / "piececonst.mat", a, u, Kcoeff=a[:, :-1, :-1]), "fno-mat-v5", a, u, node
    if kind == "mat-v7.3":
        return write_mat_v73(tmp_path / "piececonst73.mat", a, u), "fno-mat-v7.3", a, u, node
    if kind == "pt-bool":
        return write_pt(tmp_path / "darcy_train_9.pt", mask, u.astype(np.float32)), "neuralop-pt", a, u, node
    if kind == "pt-float":
        return write_pt(tmp_path / "darcy_test_9.pt", a.astype(np.float32), u), "neuralop-pt", a, u, node
    if kind == "pt-legacy":
        path = tmp_path / "darcy_legacy_9.pt"
        torch.save({"x": torch.as_tensor(mask), "y": torch.as_tensor(u)}, path, _use_new_zipfile_serialization=False)
        return path, "neuralop-pt", a, u, node
    if kind == "pdebench":
        # PDEBench indexes [sample, x, y]: the mano_pde (sample, y, x) arrays are the transposes.
        path = write_pdebench(
            tmp_path / "2D_DarcyFlow_beta0.1_Train.hdf5", a.transpose(0, 2, 1), u.transpose(0, 2, 1), beta=0.1
        )
        return path, "pdebench-hdf5", a.astype(np.float32), u.astype(np.float32), (np.arange(S) + 0.5) / S
    raise AssertionError(kind)


KINDS = ["mat-v5", "mat-v7.3", "pt-bool", "pt-float", "pt-legacy", "pdebench"]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind, tmp_path):
    src, fmt, a, u, x = _case(kind, tmp_path)
    assert detect_format(src) == fmt
    out = import_darcy(src, tmp_path / "out.nc", dtype="float64", progress=False, chunk_size=2)
    with open_darcy(out) as ds:
        assert ds["a"].dims == ("sample", "y", "x") and ds["a"].dtype == np.float64
        np.testing.assert_array_equal(ds["a"].values, a)
        np.testing.assert_array_equal(ds["u"].values, u.astype(np.float32) if kind == "pt-bool" else u)
        np.testing.assert_array_equal(ds["x"].values, x)
        np.testing.assert_array_equal(ds["y"].values, x)
        attrs = ds.attrs
        assert attrs["source_format"] == fmt and attrs["source_file"] == src.name
        assert attrs["source_format_description"] == FORMATS[fmt]
        assert attrs["import_note"] and attrs["axis_mapping"] and f"{S} x {S} grid" in attrs["grid"]
        assert "{" not in attrs["grid"] and attrs["source_shape_a"].startswith("[")
        assert attrs["source_sha256"] and attrs["mano_pde_complete"] == "yes"
        assert attrs["resolution"] == S and attrs["n_samples"] == N
        if kind == "mat-v5":
            assert "Kcoeff [3, 8, 8] double" in attrs["source_variables"]
        if fmt != "pdebench-hdf5":
            assert attrs["source_u_boundary_max_abs"] == 0.0
            assert attrs["forcing"] == 1.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", [5, 3])
def test_subsampled_view_equals_slicing_of_source(kind, target, tmp_path):
    src, _, a, u, x = _case(kind, tmp_path)
    out = import_darcy(src, tmp_path / "out.nc", progress=False)  # float32 default
    r = (S - 1) // (target - 1)
    if kind == "pdebench":  # cell centres nest under odd ratios only: 9 -> 3 (centres [1::3]), not 9 -> 5
        if target == 5:
            with pytest.raises(DarcyDataError, match="not reachable from a 9x9 cell grid"):
                open_darcy(out, resolution=target)
            return
        with open_darcy(out, resolution=target) as view:
            np.testing.assert_array_equal(view["a"].values, a[:, 1::3, 1::3].astype(np.float32))
            np.testing.assert_allclose(view["x"].values, (np.arange(3) + 0.5) / 3, rtol=0, atol=1e-7)
        return
    with open_darcy(out, resolution=target) as view:
        assert view["a"].dtype == np.float32 and view.sizes["x"] == target
        np.testing.assert_array_equal(view["a"].values, a[:, ::r, ::r].astype(np.float32))
        np.testing.assert_array_equal(view["u"].values, u[:, ::r, ::r].astype(np.float32))
        np.testing.assert_array_equal(view["x"].values, x[::r])


def test_fno_v5_and_v73_import_identically(tmp_path):
    _, a, u = _fields(n=4, s=17, seed=3)
    out5 = import_darcy(write_mat_v5(tmp_path / "a.mat", a, u), tmp_path / "a.nc", progress=False)
    out73 = import_darcy(write_mat_v73(tmp_path / "b.mat", a, u), tmp_path / "b.nc", progress=False)
    with open_darcy(out5) as d5, open_darcy(out73) as d73:
        for v in ("a", "u"):
            np.testing.assert_array_equal(d5[v].values, d73[v].values)
        assert "MATLAB 5.0" in d5.attrs["source_header"] and "MATLAB 7.3" in d73.attrs["source_header"]
        assert d73.attrs["source_shape_a"] == "[17, 17, 4]" and d5.attrs["source_shape_a"] == "[4, 17, 17]"
        assert "reversed" in d73.attrs["source_layout"]
        assert (
            "Kcoeff" not in d5.attrs["source_variables"] and "coeff [4, 17, 17] double" in d5.attrs["source_variables"]
        )


def test_v73_detected_by_content_not_extension(tmp_path):
    _, a, u = _fields()
    src = write_mat_v73(tmp_path / "data.bin", a, u)
    assert open(src, "rb").read(6) == b"MATLAB" and detect_format(src) == "fno-mat-v7.3"


def test_hdf5_without_matlab_markers_row_major(tmp_path):
    _, a, u = _fields(n=4)
    src = write_mat_v73(tmp_path / "py.h5", a, u, matlab=False)
    out = import_darcy(src, tmp_path / "out.nc", dtype="float64", progress=False)
    with open_darcy(out) as ds:
        np.testing.assert_array_equal(ds["a"].values, a)
        assert "row-major" in ds.attrs["source_layout"]


@pytest.mark.parametrize("as_float", [False, True])
def test_mask_mapping_is_recorded_and_overridable(as_float, tmp_path):
    mask, _, u = _fields()
    x = mask.astype(np.float32) if as_float else mask
    src = write_pt(tmp_path / "darcy_train_9.pt", x, u)
    out = import_darcy(src, tmp_path / "out.nc", high=10.0, low=1.0, progress=False)
    with open_darcy(out) as ds:
        np.testing.assert_array_equal(ds["a"].values, np.where(mask, 10.0, 1.0))
        assert ds.attrs["permeability_high"] == 10.0 and ds.attrs["permeability_low"] == 1.0
        assert ds.attrs["permeability_map"] == "piecewise"
        assert "True/1 -> 10" in ds.attrs["import_note"] and "False/0 -> 1" in ds.attrs["import_note"]
        assert ds.attrs["source_dtype_a"] == ("float32" if as_float else "bool")


def test_pdebench_metadata_and_orientation(tmp_path):
    s = 8
    nu = np.ones((2, s, s))
    nu[:, 1, :] = 0.1  # x index 1 (PDEBench axis 1) -> column 1 in (sample, y, x)
    u = np.zeros((2, s, s))
    src = write_pdebench(tmp_path / "2D_DarcyFlow_beta100.0_Train.hdf5", nu, u, beta=100.0)
    out = import_darcy(src, tmp_path / "out.nc", progress=False)
    with open_darcy(out) as ds:
        a = ds["a"].values
        assert np.all(a[:, :, 1] == np.float32(0.1)) and np.all(a[:, :, 0] == 1)
        assert ds.attrs["forcing"] == 100.0 and ds.attrs["source_attr_beta"] == 100.0
        assert ds.attrs["grid"].startswith("cell-centred 8 x 8") and "(i + 1/2)/8" in ds.attrs["grid"]
        assert ds.attrs["grid_geometry"] == "cell" and ds.attrs["grid_confidence"] == "certain"
        assert ds.attrs["source_shape_u"] == "[2, 1, 8, 8]" and ds.attrs["source_dtype_a"] == "float32"
        assert "see the global attribute `grid`" in ds["x"].attrs["long_name"]
        np.testing.assert_allclose(ds["x"].values, (np.arange(s) + 0.5) / s)


def test_pdebench_beta_from_file_name_when_attribute_missing(tmp_path):
    _, a, u = _fields()
    src = write_pdebench(tmp_path / "2D_DarcyFlow_beta0.01_Train.hdf5", a, u, beta=None)
    with open_darcy(import_darcy(src, tmp_path / "out.nc", progress=False)) as ds:
        assert ds.attrs["forcing"] == 0.01 and "file name" in ds.attrs["forcing_note"]


def test_torch_is_imported_only_for_pt_files(tmp_path):
    _, a, u = _fields()
    src = write_mat_v5(tmp_path / "a.mat", a, u)
    code = (
        "import sys; from mano_pde.data.importers import import_darcy; "
        f"import_darcy({str(src)!r}, {str(tmp_path / 'a.nc')!r}, progress=False); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------- bad input
def _bad_case(kind, tmp_path):
    """A bad source and the pattern its DarcyDataError must match."""
    mask, a, u = _fields()
    if kind.startswith("truncated-"):
        good = _case(kind.removeprefix("truncated-"), tmp_path)[0]
        bad = tmp_path / ("cut_" + good.name)
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        return bad, "truncated"
    if kind == "foreign-hdf5":
        with h5py.File(tmp_path / "foreign.h5", "w") as f:
            f.create_dataset("temperature", data=np.zeros((3, 4)))
        return tmp_path / "foreign.h5", r"coeff and sol .* nu and tensor .*temperature"
    if kind == "matlab-v73-without-keys":
        path = write_mat_v73(tmp_path / "k.mat", a, u)
        with h5py.File(path, "a") as f:
            f.move("coeff", "K")
            f.move("sol", "P")
        return path, r"MATLAB v7\.3 file without Darcy variables"
    if kind == "v5-missing-sol":
        scipy.io.savemat(tmp_path / "m.mat", {"coeff": a})
        return tmp_path / "m.mat", "without sol"
    if kind == "v5-mismatched-shapes":
        return write_mat_v5(tmp_path / "m.mat", a, np.zeros((N, 17, 17))), r"sol has shape \[3, 17, 17\]"
    if kind == "v73-mismatched-samples":
        return write_mat_v73(tmp_path / "m.mat", a, u[:2]), r"same samples"
    if kind == "pt-non-square":
        return write_pt(tmp_path / "darcy_32.pt", np.ones((2, 8, 32), bool), np.zeros((2, 8, 32))), "issue #475"
    if kind == "pt-missing-y":
        torch.save({"x": torch.as_tensor(mask)}, tmp_path / "p.pt")
        return tmp_path / "p.pt", r"no 'y'"
    if kind == "pt-not-a-dict":
        torch.save(torch.zeros(3, 9, 9), tmp_path / "p.pt")
        return tmp_path / "p.pt", "expected a dict"
    if kind == "pt-arbitrary-objects":
        return write_pt(tmp_path / "p.pt", mask, u, meta=fractions.Fraction(1, 3)), "weights_only.*Fraction"
    if kind == "pt-non-positive":
        return write_pt(tmp_path / "p.pt", a - 5.0, u), r"x of sample \d is not positive"
    if kind == "pdebench-missing-coordinates":
        return write_pdebench(tmp_path / "p.hdf5", a, u, coords=False), "x-coordinate"
    if kind == "pdebench-time-series":
        with h5py.File(tmp_path / "p.hdf5", "w") as f:
            f.create_dataset("nu", data=a)
            f.create_dataset("tensor", data=np.zeros((N, 2, S, S)))
        return tmp_path / "p.hdf5", "2 time steps"
    if kind == "nan-in-u":
        u = u.copy()
        u[2, 4, 4] = np.nan
        return write_mat_v5(tmp_path / "m.mat", a, u), "sol of sample 2 holds NaN"
    if kind == "unknown-format":
        (tmp_path / "notes.mat").write_text("coeff, sol\n1, 2\n")
        return tmp_path / "notes.mat", r"unknown file format.*fno-mat-v5.*neuralop-pt.*pdebench-hdf5"
    if kind == "empty":
        (tmp_path / "e.pt").write_bytes(b"")
        return tmp_path / "e.pt", "empty"
    if kind == "already-mano":
        src = _case("mat-v5", tmp_path)[0]
        return import_darcy(src, tmp_path / "mano.nc", progress=False), "already a mano_pde Darcy file"
    raise AssertionError(kind)


BAD = [
    "truncated-mat-v5",
    "truncated-mat-v7.3",
    "truncated-pt-bool",
    "truncated-pt-legacy",
    "truncated-pdebench",
    "foreign-hdf5",
    "matlab-v73-without-keys",
    "v5-missing-sol",
    "v5-mismatched-shapes",
    "v73-mismatched-samples",
    "pt-non-square",
    "pt-missing-y",
    "pt-not-a-dict",
    "pt-arbitrary-objects",
    "pt-non-positive",
    "pdebench-missing-coordinates",
    "pdebench-time-series",
    "nan-in-u",
    "unknown-format",
    "empty",
    "already-mano",
]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_clear_error_and_no_output(kind, tmp_path):
    src, pattern = _bad_case(kind, tmp_path)
    out = tmp_path / "out" / "result.nc"
    with pytest.raises(DarcyDataError, match=pattern):
        import_darcy(src, out, progress=False, chunk_size=1)  # nan-in-u fails after writing two samples
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary file left behind


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="no source file"):
        import_darcy(tmp_path / "nothing.mat", tmp_path / "out.nc")


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    src = _case("mat-v5", tmp_path)[0]
    out = tmp_path / "out.nc"
    out.write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        import_darcy(src, out, progress=False)
    assert out.read_text() == "precious"
    import_darcy(src, out, overwrite=True, progress=False)
    with open_darcy(out) as ds:
        assert ds.sizes["sample"] == N


def test_output_may_not_be_the_source(tmp_path):
    src = _case("pdebench", tmp_path)[0]
    with pytest.raises(DarcyDataError, match="source file itself"):
        import_darcy(src, src, overwrite=True, progress=False)
    assert detect_format(src) == "pdebench-hdf5"


@pytest.mark.parametrize("kwargs", [{"dtype": "float16"}, {"high": 0.0}, {"low": -3.0}, {"chunk_size": 0}])
def test_invalid_options(kwargs, tmp_path):
    src = _case("pt-bool", tmp_path)[0]
    with pytest.raises(ValueError):
        import_darcy(src, tmp_path / "out.nc", progress=False, **kwargs)


def test_cli_import_and_clean_error(tmp_path, capsys):
    src = _case("pt-bool", tmp_path)[0]
    out = tmp_path / "cli.nc"
    assert main(["import", str(src), "-o", str(out), "--high", "5", "--low", "2", "--no-progress"]) == 0
    with open_darcy(out) as ds:
        assert set(np.unique(ds["a"].values)) <= {2.0, 5.0}
    capsys.readouterr()
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    assert main(["import", str(bad), "-o", str(tmp_path / "x.nc"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mano-pde import: error:" in err and "truncated or corrupted" in err and "Traceback" not in err
