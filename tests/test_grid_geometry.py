"""Grid geometries (issue 22): node, half-open (neuraloperator's Darcy .pt files) and cell-centred grids in the
file schema, the importers' decision, nesting, embeddings, resampling, MANO's reference grid and evaluation.

The neuraloperator layout is built here as neuraloperator's files are: the project's solver on the (s+1)-node grid
of [0,1]^2, last row and column dropped, saved with torch.save as {"x": bool mask, "y": float32 pressure}.
"""

import json
import logging

import netCDF4
import numpy as np
import pytest
import torch

from mano_pde.cli import main
from mano_pde.data import DarcyDataError, open_darcy
from mano_pde.data.importers import detect_grid, import_darcy
from mano_pde.data.io import load_arrays, reachable_resolutions, subsample_factor
from mano_pde.data.schema import DarcyWriter
from mano_pde.grids import coordinates, nesting, reachable
from mano_pde.layers.embeddings import NodeGridEmbedding, make_positional_embedding
from mano_pde.layers.grid_resample import resample_grid, subsample_grid
from mano_pde.layers.multipole_hierarchy import prolong_to_grid, restrict_to_grid, restrict_to_nodes
from solvers import piecewise_constant_map, sample_grf, solve_darcy

GEOMETRIES = ("node", "half-open", "cell")


def _node_solutions(n: int, nodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` FNO-benchmark samples (a in {12, 3}, f = 1) on the ``nodes``-point node grid of [0,1]^2."""
    a = piecewise_constant_map(sample_grf(nodes, np.random.default_rng(seed), n=n))
    return a, np.stack([solve_darcy(x) for x in a])


def _neuralop_pt(path, n: int, s: int, seed: int):
    """neuraloperator's darcy_*_{s}.pt layout: the (s+1)-node grid without its last row and column."""
    a, u = _node_solutions(n, s + 1, seed)
    torch.save({"x": torch.from_numpy(a[:, :-1, :-1] == 12.0), "y": torch.from_numpy(u[:, :-1, :-1]).float()}, path)
    return path, a[:, :-1, :-1], u[:, :-1, :-1]


def _write(path, geometry: str, s: int, n: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, u = rng.uniform(1, 2, (n, s, s)), rng.standard_normal((n, s, s))
    with DarcyWriter(path, n, s, {"seed": seed}, geometry=geometry, dtype="float64") as w:
        w.write(0, a, u)
    return path, a, u


# -- geometry definitions -------------------------------------------------------------------------------------
def test_coordinates_and_nesting():
    np.testing.assert_array_equal(coordinates("node", 33), np.linspace(0, 1, 33))
    np.testing.assert_array_equal(coordinates("half-open", 16), np.arange(16) / 16)
    np.testing.assert_allclose(coordinates("cell", 8), (np.arange(8) + 0.5) / 8, rtol=0, atol=1e-15)
    for geometry in GEOMETRIES:
        for fine in range(2, 40):
            for coarse in reachable(geometry, fine):
                stride, offset = nesting(geometry, fine, coarse)
                # nested = the coarse points are fine points (node: linspace, as stored since the first schema)
                got, want = coordinates(geometry, fine)[offset::stride], coordinates(geometry, coarse)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-15 if geometry == "node" else 0)
    assert nesting("half-open", 32, 16) == (2, 0) and nesting("node", 32, 16) is None
    assert nesting("cell", 32, 16) is None and nesting("cell", 24, 8) == (3, 1)
    assert reachable("half-open", 32) == [32, 16, 8, 4] and reachable("cell", 27) == [27, 9, 3]
    # 3 points is the smallest grid on every geometry (training, prediction and files refuse 2)
    assert reachable("half-open", 16) == [16, 8, 4] and reachable("cell", 6) == [6] and reachable("node", 5) == [5, 3]
    with pytest.raises(DarcyDataError, match="at least 3 points"):
        subsample_factor(16, 2, "half-open")


def test_node_grids_unchanged():
    """Reachability and embeddings of node grids are those of the package before geometries existed."""

    def old_reachable(resolution, min_resolution=3):
        n = int(resolution) - 1
        return [n // r + 1 for r in range(1, n + 1) if n % r == 0 and n // r + 1 >= min_resolution]

    for s in (3, 9, 17, 33, 64, 129, 421):
        assert reachable_resolutions(s) == old_reachable(s)
        assert reachable("node", s) == old_reachable(s)
        for c in old_reachable(s):
            assert subsample_factor(s, c) == (s - 1) // (c - 1)
    for h, w in ((17, 17), (33, 65), (5, 3)):
        old = torch.meshgrid(
            torch.arange(h, dtype=torch.float64) / (h - 1),
            torch.arange(w, dtype=torch.float64) / (w - 1),
            indexing="ij",
        )
        x = torch.randn(2, 1, h, w)
        for emb in (NodeGridEmbedding(1), make_positional_embedding("node", 1)):
            got = emb(x)
            assert torch.equal(got[:, 0], x[:, 0])
            assert torch.equal(got[:, 1], old[0].float().expand(2, h, w))
            assert torch.equal(got[:, 2], old[1].float().expand(2, h, w))
    # the reference-grid operators of node grids are the old ones, tensor for tensor
    x = torch.randn(2, 33, 33, 4)
    for size in ((17, 17), (9, 9), (12, 12)):
        assert torch.equal(restrict_to_grid(x, size), restrict_to_nodes(x, size))
    c = torch.randn(2, 4, 9, 9)
    assert torch.equal(
        prolong_to_grid(c, (33, 33)),
        torch.nn.functional.interpolate(c, size=(33, 33), mode="bilinear", align_corners=True),
    )
    assert torch.equal(
        resample_grid(c, 33, "node", "bicubic"),
        torch.nn.functional.interpolate(c, size=(33, 33), mode="bicubic", align_corners=True),
    )


@pytest.mark.parametrize("geometry,fine,coarse", [("half-open", 32, 16), ("half-open", 24, 8), ("cell", 27, 9)])
def test_embedding_follows_the_geometry(geometry, fine, coarse):
    emb = NodeGridEmbedding(1, geometry=geometry)
    stride, offset = nesting(geometry, fine, coarse)
    f, c = emb(torch.zeros(1, 1, fine, fine)), emb(torch.zeros(1, 1, coarse, coarse))
    assert torch.equal(f[..., offset::stride, offset::stride], c)  # equal points, equal coordinates
    np.testing.assert_allclose(c[0, 1, :, 0].double().numpy(), coordinates(geometry, coarse), rtol=0, atol=1e-7)
    np.testing.assert_allclose(c[0, 2, 0, :].double().numpy(), coordinates(geometry, coarse), rtol=0, atol=1e-7)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_resample_is_injection_when_nested_and_exact_on_linear_fields(geometry):
    fine, coarse = {"node": (33, 17), "half-open": (32, 16), "cell": (27, 9)}[geometry]

    def linear(s):
        x = torch.from_numpy(coordinates(geometry, s))
        return (1 + 2 * x[None, :] + 3 * x[:, None])[None, None].double()

    f = torch.randn(2, 3, fine, fine, dtype=torch.float64)
    stride, offset = nesting(geometry, fine, coarse)
    assert torch.equal(resample_grid(f, coarse, geometry), f[..., offset::stride, offset::stride])
    assert torch.equal(subsample_grid(f, coarse, geometry), f[..., offset::stride, offset::stride])
    up = resample_grid(linear(coarse), fine, geometry)  # coarse -> fine: interpolation through the true positions
    inner = slice(None) if geometry != "cell" else slice(stride // 2, fine - stride // 2)  # cell: held in half a cell
    torch.testing.assert_close(up[..., inner, inner], linear(fine)[..., inner, inner], rtol=0, atol=1e-12)
    down = resample_grid(linear(fine), 7 if geometry != "cell" else 5, geometry)  # not nested: interpolation
    s_c = down.shape[-1]
    inner = slice(None) if geometry != "cell" else slice(1, s_c - 1)
    torch.testing.assert_close(down[..., inner, inner], linear(s_c)[..., inner, inner], rtol=0, atol=1e-12)


# -- files ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("geometry,s,view", [("node", 9, 5), ("half-open", 8, 4), ("cell", 9, 3)])
def test_files_hold_true_coordinates_and_views_nest(geometry, s, view, tmp_path, capsys):
    path, a, u = _write(tmp_path / f"{geometry}.nc", geometry, s)
    with open_darcy(path) as ds:
        assert ds.attrs["grid_geometry"] == geometry
        np.testing.assert_array_equal(ds["x"].values, coordinates(geometry, s))
        np.testing.assert_array_equal(ds["y"].values, coordinates(geometry, s))
    stride, offset = nesting(geometry, s, view)
    with open_darcy(path, view) as ds:
        np.testing.assert_array_equal(ds["x"].values, coordinates(geometry, view))
        np.testing.assert_array_equal(ds["a"].values, a[:, offset::stride, offset::stride])
    got = load_arrays(path, view, dtype="float64")
    np.testing.assert_array_equal(got["u"], u[:, offset::stride, offset::stride])
    bad = {"node": 4, "half-open": 3, "cell": 5}[geometry]
    with pytest.raises(DarcyDataError, match="not reachable"):
        open_darcy(path, bad)
    assert main(["info", str(path)]) == 0
    assert f"grid geometry: {geometry}" in capsys.readouterr().out


def test_files_without_the_attribute_open_as_before(tmp_path):
    """Files written before grid_geometry existed: node grids (or PDEBench's cell grid, by its coordinates)."""
    node, _, _ = _write(tmp_path / "node.nc", "node", 9)
    cell, _, _ = _write(tmp_path / "cell.nc", "cell", 9)
    for path, grid in ((node, None), (cell, "cell-centred 9 x 9 grid of [0,1]^2 (PDEBench finite volumes)")):
        with netCDF4.Dataset(path, "a") as ds:
            ds.delncattr("grid_geometry")
            if grid:
                ds.setncattr("grid", grid)
    with open_darcy(node, 5) as ds:
        assert ds.attrs["grid_geometry"] == "node" and ds.attrs["subsample_factor"] == 2
    with open_darcy(cell, 3) as ds:
        assert ds.attrs["grid_geometry"] == "cell"
        np.testing.assert_array_equal(ds["x"].values, coordinates("cell", 3))


def test_generated_files_gain_only_the_geometry_attribute(tmp_path):
    from mano_pde.data import DarcyConfig, generate_darcy

    path = generate_darcy(DarcyConfig(n_samples=2, resolution=9, seed=1), tmp_path / "g.nc", progress=False)
    with netCDF4.Dataset(path) as ds:
        assert ds.getncattr("grid_geometry") == "node"
        assert ds.getncattr("grid") == "node-based s x s grid of [0,1]^2 including the boundary, h = 1/(s-1)"
        np.testing.assert_array_equal(ds["x"][:], np.linspace(0, 1, 9))
        assert ds["x"].getncattr("long_name") == "x coordinate of grid nodes (boundary included)"


# -- importers ----------------------------------------------------------------------------------------------------
def test_detection_on_solver_data():
    _, u = _node_solutions(8, 33, seed=0)
    assert detect_grid(u).geometry == "node" and detect_grid(u).confidence in ("high", "medium")
    half = detect_grid(u[:, :-1, :-1])  # neuraloperator's layout
    assert half.geometry == "half-open" and half.confidence in ("high", "medium")
    assert "first row and column only" in half.evidence
    cell = detect_grid(u[:, 1::2, 1::2])  # odd nodes of the 33-node grid: the centres of 16 cells
    assert cell.geometry == "cell" and cell.confidence in ("medium", "low")
    # a field symmetric about s/2 with u = 0 on row/column 0 only: high confidence
    x = np.arange(16) / 16
    sym = np.sin(np.pi * x)[:, None] * np.sin(np.pi * x)[None, :]
    assert detect_grid(sym[None]).confidence == "high"
    noise = np.random.default_rng(0).random((4, 16, 16))
    assert detect_grid(noise).confidence == "assumed"


def test_neuralop_pt_imports_as_half_open(tmp_path, caplog, capsys):
    src, a, u = _neuralop_pt(tmp_path / "darcy_train_16.pt", 8, 16, seed=0)
    with caplog.at_level(logging.INFO, logger="mano_pde.data.importers"):
        out = import_darcy(src, tmp_path / "train16.nc", dtype="float64", progress=False)
    assert any("grid geometry half-open" in r.getMessage() for r in caplog.records)
    with open_darcy(out) as ds:
        assert ds.attrs["grid_geometry"] == "half-open"
        assert ds.attrs["grid_confidence"] in ("high", "medium")
        assert ds.attrs["grid"].startswith("half-open 16 x 16 grid")
        np.testing.assert_array_equal(ds["x"].values, np.arange(16) / 16)
        np.testing.assert_array_equal(ds["u"].values, u.astype(np.float32))
        np.testing.assert_array_equal(ds["a"].values, a)
    with open_darcy(out, 8) as ds:  # 16 -> 8 nests on x_i = i/s grids
        np.testing.assert_array_equal(ds["x"].values, np.arange(8) / 8)
    # the CLI says what it found; --grid overrides, with a warning that the data disagree
    assert main(["import", str(src), "-o", str(tmp_path / "cli.nc"), "--no-progress"]) == 0
    assert "grid: half-open (" in capsys.readouterr().out
    caplog.clear()
    assert main(["import", str(src), "-o", str(tmp_path / "forced.nc"), "--no-progress", "--grid", "node"]) == 0
    assert any("--grid node overrides the data" in r.getMessage() for r in caplog.records)
    with open_darcy(tmp_path / "forced.nc") as ds:
        assert ds.attrs["grid_geometry"] == "node" and ds.attrs["grid_confidence"] == "given"
        np.testing.assert_array_equal(ds["x"].values, np.linspace(0, 1, 16))


def test_undecidable_file_imports_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(1)
    src = tmp_path / "darcy_noise_8.pt"
    torch.save({"x": torch.from_numpy(rng.random((3, 8, 8)) > 0.5), "y": torch.rand(3, 8, 8) + 1}, src)
    with caplog.at_level(logging.WARNING):
        out = import_darcy(src, tmp_path / "noise.nc", progress=False)
    assert any("assumed a node grid" in r.getMessage() for r in caplog.records)
    with open_darcy(out) as ds:
        assert ds.attrs["grid_geometry"] == "node" and ds.attrs["grid_confidence"] == "assumed"


def test_pdebench_coordinates_decide_and_contradicting_grid_is_refused(tmp_path):
    import h5py

    s = 9
    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(src, "w") as f:
        f.create_dataset("nu", data=np.ones((2, s, s), dtype=np.float32))
        f.create_dataset("tensor", data=np.ones((2, 1, s, s), dtype=np.float32))
        for axis in "xy":
            f.create_dataset(f"{axis}-coordinate", data=((np.arange(s) + 0.5) / s).astype(np.float32))
        f.attrs["beta"] = 1.0
    out = import_darcy(src, tmp_path / "pdebench.nc", progress=False)
    with open_darcy(out, 3) as ds:
        assert ds.attrs["grid_geometry"] == "cell" and ds.attrs["grid_confidence"] == "certain"
    with pytest.raises(DarcyDataError, match="contradicts"):
        import_darcy(src, tmp_path / "bad.nc", progress=False, grid="half-open")
    assert not (tmp_path / "bad.nc").exists()


# -- models and evaluation ---------------------------------------------------------------------------------------
def test_mano_reference_grid_restricts_half_open_grids_by_injection(monkeypatch):
    """A half-open 32² input whose [::2] subsample is a 16² training input: the far field of the first MANO layer
    receives exactly the level inputs of training (embedding i/s and injection keep the subsample)."""
    from mano_pde.models import MANO

    model = MANO(
        in_channels=1,
        out_channels=1,
        hidden_channels=8,
        n_layers=1,
        n_heads=2,
        image_size=16,
        grid_geometry="half-open",
    ).eval()
    mixer = model.blocks[0].mixer
    seen, levels = [], mixer._levels

    def spy(x, n):
        out = levels(x, n)
        seen.append(list(out))
        return out

    monkeypatch.setattr(mixer, "_levels", spy)
    a_fine = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        model(a_fine[..., ::2, ::2])
        trained = seen.pop()
        model.set_reference_grid(16)
        model(a_fine)
        far = seen.pop()
    assert len(far) == len(trained) == mixer.num_levels(16, 16)
    for got, want in zip(far, trained, strict=True):
        assert torch.equal(got, want)


def test_training_records_the_geometry_and_evaluation_follows_it(tmp_path):
    """Train MANO at 16² on neuraloperator-layout data; score 16² and 32² files with direct, resample and
    ref-grid; refuse node-grid test data."""
    train_pt, _, _ = _neuralop_pt(tmp_path / "darcy_train_16.pt", 12, 16, seed=0)
    test16_pt, _, _ = _neuralop_pt(tmp_path / "darcy_test_16.pt", 4, 16, seed=1)
    test32_pt, _, u32 = _neuralop_pt(tmp_path / "darcy_test_32.pt", 4, 32, seed=2)
    files = {}
    for name, src in (("train16", train_pt), ("test16", test16_pt), ("test32", test32_pt)):
        files[name] = import_darcy(src, tmp_path / f"{name}.nc", progress=False)
    run = tmp_path / "mano"
    argv = ["train", "--model", "mano", "--data", str(files["train16"]), "--test-data", str(files["test16"])]
    argv += ["--resolution", "16", "--n-train", "12", "--n-test", "4", "--epochs", "1", "--batch-size", "4"]
    argv += ["--hidden-channels", "8", "--n-layers", "1", "--window-size", "4", "--n-heads", "2", "--no-progress"]
    assert main(argv + ["-o", str(run)]) == 0
    record = json.loads((run / "model_config.json").read_text())
    assert record["kwargs"]["grid_geometry"] == "half-open"

    from mano_pde.evaluation.evaluate import run_geometry
    from mano_pde.training.runs import load_run

    loaded = load_run(run)
    assert run_geometry(loaded) == "half-open"
    assert loaded.model.positional_embedding.geometry == "half-open"

    out16, out32 = tmp_path / "eval16", tmp_path / "eval32"
    assert main(["evaluate", str(run), "--data", str(files["test16"]), "--resolutions", "16", "-o", str(out16)]) == 0
    assert (
        main(["evaluate", str(run), "--data", str(files["test32"]), "--resolutions", "16", "32", "-o", str(out32)]) == 0
    )
    got = {(r["test_resolution"], r["method"]): r for r in json.loads((out32 / "results.json").read_text())["records"]}
    assert set(got) == {(16, "direct"), (32, "direct"), (32, "resample"), (32, "ref-grid")}
    assert json.loads((out16 / "results.json").read_text())["meta"]["grid_geometry"] == "half-open"
    # a 2-point grid (nested in 16 as a half-open grid, but below the 3-point minimum) is refused before the
    # previous results are touched
    before = {p.name: p.read_bytes() for p in out16.iterdir()}
    assert main(["evaluate", str(run), "--data", str(files["test16"]), "--resolutions", "2", "-o", str(out16)]) == 2
    assert {p.name: p.read_bytes() for p in out16.iterdir()} == before

    # the resample reference, recomputed: predict on the injected 16² grid, interpolate through i/s positions
    a32 = torch.from_numpy(load_arrays(files["test32"], 32)["a"]).unsqueeze(1)
    coarse = loaded.predict(a32[..., ::2, ::2])
    fine = resample_grid(coarse, 32, "half-open")
    assert torch.equal(fine[..., ::2, ::2], coarse)
    u = torch.from_numpy(u32.astype(np.float32)).unsqueeze(1)
    rel = ((fine - u).flatten(1).double().norm(dim=1) / u.flatten(1).double().norm(dim=1)).mean()
    assert got[(32, "resample")]["rel_l2_mean"] == pytest.approx(float(rel), rel=1e-4)

    # node-grid test data are refused, naming both geometries, before anything is written
    node = tmp_path / "node33.nc"
    _write(node, "node", 33, n=4)
    with pytest.raises(Exception, match="trained on half-open grids .* is a node grid") as err:
        from mano_pde.evaluation import evaluate

        evaluate([run], node, [33], tmp_path / "refused", plots=False)
    assert type(err.value).__name__ == "UserInputError" and not (tmp_path / "refused").exists()


def test_resume_refuses_the_same_values_under_another_grid_geometry(tmp_path):
    """The same source re-imported with another --grid: the same values and stream, another geometry; --resume
    refuses it (the data identity records the geometry). Records written before it was recorded are not compared
    on it."""
    from mano_pde.errors import UserInputError
    from mano_pde.training import TrainConfig, train
    from mano_pde.training.manifest import identity_differences

    path = tmp_path / "d.nc"
    _write(path, "half-open", 8, n=6)
    fno = {"hidden_channels": 4, "n_modes": [2, 2], "n_layers": 1}
    config = TrainConfig(
        model="fno", model_kwargs=fno, data=str(path), resolutions=[8], n_train=[4], n_test=2, epochs=1, batch_size=2
    )
    run = train(config, tmp_path / "run", progress=False)
    record = json.loads((run / "run.json").read_text())["data"]
    assert record["train"]["grid_geometry"] == record["test"]["grid_geometry"] == "half-open"
    path.unlink()
    _write(path, "cell", 8, n=6)  # the same values, now said to sit at cell centres
    with pytest.raises(UserInputError, match="grid_geometry half-open -> cell"):
        train(config, run, resume=True, progress=False)
    older = {k: v for k, v in record["train"].items() if k != "grid_geometry"}
    assert identity_differences(older, {**record["train"], "grid_geometry": "cell"}) == []
