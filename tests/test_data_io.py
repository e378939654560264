"""Reading Darcy files: multi-resolution views, validation of foreign and broken files, CLI errors."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from mano_pde.cli import main
from mano_pde.data import DarcyDataError, open_darcy, reachable_resolutions, subsample_factor


def test_reachable_resolutions_fno_convention():
    assert reachable_resolutions(421)[:8] == [421, 211, 141, 106, 85, 71, 61, 43]
    assert reachable_resolutions(33) == [33, 17, 9, 5, 3]
    assert subsample_factor(421, 85) == 5 and subsample_factor(421, 421) == 1


@pytest.mark.parametrize("target", [17, 9, 5])
def test_subsampled_view_equals_direct_slicing(darcy_file, target):
    r = (33 - 1) // (target - 1)
    with open_darcy(darcy_file) as full, open_darcy(darcy_file, resolution=target) as view:
        assert view.sizes["x"] == view.sizes["y"] == target
        assert view.attrs["subsample_factor"] == r and view.attrs["view_resolution"] == target
        np.testing.assert_array_equal(view["u"].values, full["u"].values[:, ::r, ::r])
        np.testing.assert_array_equal(view["a"].values, full["a"].values[:, ::r, ::r])
        np.testing.assert_allclose(view["x"].values, np.linspace(0, 1, target))


@pytest.mark.parametrize("target", [16, 34, 1, 0])
def test_unreachable_resolution_lists_reachable_ones(darcy_file, target):
    with pytest.raises(DarcyDataError, match=r"\[33, 17, 9, 5, 3\]"):
        open_darcy(darcy_file, resolution=target)


def test_truncated_file_is_detected(darcy_file, tmp_path):
    bad = tmp_path / "truncated.nc"
    data = darcy_file.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DarcyDataError, match="truncated"):
        open_darcy(bad)


def test_not_a_netcdf_file(tmp_path):
    bad = tmp_path / "text.nc"
    bad.write_text("hello")
    with pytest.raises(DarcyDataError, match="cannot read"):
        open_darcy(bad)


def test_netcdf_without_a_and_u(tmp_path):
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"temperature": (("t",), np.arange(3.0))}).to_netcdf(foreign)
    with pytest.raises(DarcyDataError, match=r"variable\(s\) \['a', 'u'\] missing"):
        open_darcy(foreign)


def test_file_without_completeness_marker(darcy_file, tmp_path):
    with xr.open_dataset(darcy_file) as ds:
        ds = ds.load()
    del ds.attrs["mano_pde_complete"]
    path = tmp_path / "unmarked.nc"
    ds.to_netcdf(path)
    with pytest.raises(DarcyDataError, match="incomplete"):
        open_darcy(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Darcy data file"):
        open_darcy(tmp_path / "nothing.nc")


def test_info_and_generate_cli(darcy_file, tmp_path, capsys):
    assert main(["info", str(darcy_file), "--resolution", "17"]) == 0
    out = capsys.readouterr().out
    assert "grid: 17 x 17" in out and "reachable resolutions: 33, 17, 9, 5, 3" in out and "seed = 7" in out
    target = tmp_path / "cli.nc"
    assert (
        main(
            [
                "generate",
                "--n-samples",
                "3",
                "--resolution",
                "17",
                "--map",
                "lognormal",
                "--sigma",
                "0.5",
                "--face",
                "arithmetic",
                "--no-progress",
                "-o",
                str(target),
            ]
        )
        == 0
    )
    with open_darcy(target) as ds:
        assert ds.sizes["sample"] == 3
        assert ds.attrs["permeability_map"] == "lognormal" and ds.attrs["lognormal_sigma"] == 0.5
        assert ds.attrs["face_average"] == "arithmetic"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--preset", "nope", "-o", "x.nc"], "unknown preset 'nope'; available presets"),
        (["generate", "--resolution", "2", "-o", "x.nc"], "resolution must be an integer >= 3"),
        (["info", "missing.nc"], "no Darcy data file"),
        (["info", "{darcy}", "--resolution", "10"], "not reachable"),
    ],
)
def test_cli_errors_are_one_clear_line(argv, message, darcy_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{darcy}", str(darcy_file)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "mano_pde.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_script_is_installed():
    from pathlib import Path

    exe = shutil.which("mano-pde", path=str(Path(sys.executable).parent)) or shutil.which("mano-pde")
    assert exe is not None, "the mano-pde console script is not installed next to this Python"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("mano-pde ")
