"""End to end through the CLI on a tiny dataset: train, resume, multi-resolution, evaluate, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy, open_darcy
from mano_pde.data.torch_dataset import normalizer_from_dict
from mano_pde.models import load_model

FNO_SMALL = ["--hidden-channels", "8", "--n-modes", "8", "--n-layers", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """20 samples at 33²: train on the first 12, hold out the last 8."""
    path = tmp_path_factory.mktemp("train") / "d33.nc"
    return generate_darcy(DarcyConfig(n_samples=20, resolution=33, seed=5), path, progress=False)


def _train(data, out, *extra, model="fno", epochs=2, res=("17",)):
    argv = [
        "train",
        "--model",
        model,
        "--data",
        str(data),
        "--n-train",
        "12",
        "--n-test",
        "8",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--no-progress",
        "-o",
        str(out),
    ]
    for r in res:
        argv += ["--resolution", r]
    if model == "fno":
        argv += FNO_SMALL
    return main(argv + list(extra))


@pytest.fixture(scope="module")
def fno_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fno"
    assert _train(data, out) == 0
    return out


def test_run_directory_contents(fno_run):
    names = {p.name for p in fno_run.iterdir()}
    assert {
        "config.json",
        "versions.json",
        "normalizers.json",
        "log.csv",
        "train_state.pt",
        "model_state_dict.pt",
        "model_config.json",
        "model_metadata.pkl",
    } <= names
    config = json.loads((fno_run / "config.json").read_text())
    assert config["model"] == "fno" and config["resolutions"] == [17] and config["n_train"] == [12]
    assert config["model_kwargs"]["n_modes"] == [8, 8]
    versions = json.loads((fno_run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and "neuraloperator" in versions
    lines = (fno_run / "log.csv").read_text().strip().splitlines()
    assert lines[0].split(",") == ["epoch", "train_loss", "lr", "epoch_time_s", "test_rel_l2_17"]
    assert len(lines) == 3
    assert "final_metrics.json" not in names  # written only with a validation split (--n-val)
    # weights load under torch's weights_only default
    state = torch.load(fno_run / "model_state_dict.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_resume_matches_uninterrupted_run(data, tmp_path, monkeypatch):
    from mano_pde.training import trainer

    full = tmp_path / "full"
    part = tmp_path / "part"
    assert _train(data, full, epochs=3) == 0
    # interrupt the same run during its second epoch (after the training steps, before the epoch is saved)
    calls = {"n": 0}
    original = trainer._held_out_error

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "_held_out_error", interrupted)
    assert _train(data, part, epochs=3) == 130
    assert len((part / "log.csv").read_text().strip().splitlines()) == 2  # header + epoch 1
    monkeypatch.setattr(trainer, "_held_out_error", original)
    assert _train(data, part, "--resume", epochs=3) == 0
    a = torch.load(full / "model_state_dict.pt", weights_only=True)
    b = torch.load(part / "model_state_dict.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    log_a = np.loadtxt(full / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2, 4))
    log_b = np.loadtxt(part / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2, 4))
    np.testing.assert_allclose(log_a, log_b, rtol=1e-5)


def test_resume_refuses_a_different_configuration(data, fno_run, capsys):
    assert _train(data, fno_run, "--resume", "--lr", "0.1") == 2
    assert "lr: saved 0.001, given 0.1" in capsys.readouterr().err


def test_existing_run_needs_resume(data, fno_run, capsys):
    assert _train(data, fno_run) == 2
    assert "--resume" in capsys.readouterr().err


def test_multi_resolution_training(data, tmp_path):
    out = tmp_path / "multi"
    assert _train(data, out, res=("9", "17")) == 0
    header = (out / "log.csv").read_text().splitlines()[0]
    assert "test_rel_l2_9" in header and "test_rel_l2_17" in header


def test_mano_trains_and_reloads(data, tmp_path):
    out = tmp_path / "mano"
    assert (
        _train(
            data,
            out,
            "--hidden-channels",
            "8",
            "--n-layers",
            "1",
            "--window-size",
            "4",
            "--n-heads",
            "2",
            model="mano",
            epochs=1,
        )
        == 0
    )
    model = load_model(out)
    assert type(model).__name__ == "MANO"
    # MANO is also scored with its layers' reference-grid mode above the training grid
    results = tmp_path / "mano-results"
    assert main(["evaluate", str(out), "--data", str(data), "--resolutions", "17", "33", "-o", str(results)]) == 0
    records = json.loads((results / "results.json").read_text())["records"]
    got = {(r["test_resolution"], r["method"]): r["rel_l2_mean"] for r in records}
    assert set(got) == {(17, "direct"), (33, "direct"), (33, "resample"), (33, "ref-grid")}
    assert got[(33, "ref-grid")] != got[(33, "direct")]
    assert load_model(out).reference_grid is None  # the saved run is not changed by evaluation


def test_evaluate_matches_an_independent_computation(data, fno_run, tmp_path):
    out = tmp_path / "results"
    assert main(["evaluate", str(fno_run), "--data", str(data), "--resolutions", "17", "33", "-o", str(out)]) == 0
    payload = json.loads((out / "results.json").read_text())
    records = payload["records"]
    keys = {
        "model",
        "checkpoint",
        "train_resolution",
        "test_resolution",
        "method",
        "rel_l2_mean",
        "rel_l2_std",
        "rel_l2_median",
        "rel_h1_mean",
        "n_test",
    }
    assert all(keys <= set(r) for r in records)
    got = {(r["test_resolution"], r["method"]): r for r in records}
    assert set(got) == {(17, "direct"), (33, "direct"), (33, "resample")}
    assert all(r["n_test"] == 8 for r in records)
    assert (out / "results.md").exists() and (out / "error_vs_resolution.png").stat().st_size > 1000
    assert (out / "predictions.png").stat().st_size > 1000

    # independent recomputation: model + normalisers from the run directory, numpy norms
    model = load_model(fno_run).eval()
    norms = json.loads((fno_run / "normalizers.json").read_text())
    xn, yn = normalizer_from_dict(norms["x"]), normalizer_from_dict(norms["y"])
    with open_darcy(data) as ds:
        a = ds["a"].values[-8:]
        u = ds["u"].values[-8:]
    with torch.no_grad():
        pred = yn.inverse_transform(model(xn.transform(torch.from_numpy(a[:, None])))).numpy()[:, 0]
    rel = np.linalg.norm((pred - u).reshape(8, -1), axis=1) / np.linalg.norm(u.reshape(8, -1), axis=1)
    assert got[(33, "direct")]["rel_l2_mean"] == pytest.approx(rel.mean(), rel=1e-4)
    assert got[(33, "direct")]["rel_l2_median"] == pytest.approx(np.median(rel), rel=1e-4)
    # the resample reference: predict at 17² and interpolate bilinearly on the node grid
    with torch.no_grad():
        coarse = yn.inverse_transform(model(xn.transform(torch.from_numpy(a[:, None, ::2, ::2]))))
        fine = torch.nn.functional.interpolate(coarse, size=(33, 33), mode="bilinear", align_corners=True)
    fine = fine.numpy()[:, 0]
    np.testing.assert_allclose(fine[:, ::2, ::2], coarse.numpy()[:, 0], rtol=1e-6)
    rel_r = np.linalg.norm((fine - u).reshape(8, -1), axis=1) / np.linalg.norm(u.reshape(8, -1), axis=1)
    assert got[(33, "resample")]["rel_l2_mean"] == pytest.approx(rel_r.mean(), rel=1e-4)


def test_evaluate_refuses_overlapping_test_samples(data, fno_run, capsys, tmp_path):
    assert (
        main(
            [
                "evaluate",
                str(fno_run),
                "--data",
                str(data),
                "--resolutions",
                "17",
                "--n-test",
                "9",
                "--no-plots",
                "-o",
                str(tmp_path / "never"),
            ]
        )
        == 2
    )
    assert "would overlap" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


_TRAIN = ["train", "--model", "fno", "--data", "{data}", "--resolution", "17", "--n-train", "4"]
_EVAL = ["evaluate", "{run}", "--data", "{data}", "--resolutions", "17", "-o", "{tmp}/r"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{tmp}", *_EVAL[2:]], "is not a mano_pde run directory"),
        (["evaluate", "{run}", "--data", "{foreign}", *_EVAL[4:]], "is not a Darcy data file"),
        ([*_EVAL[:5], "20", *_EVAL[6:]], "not reachable"),
        ([*_TRAIN[:6], "16", *_TRAIN[7:], "--n-test", "4", "-o", "{tmp}/x"], "not reachable"),
        (
            [*_TRAIN, "--n-test", "4", "--model-arg", "in_channels=2", "-o", "{tmp}/x"],
            "in_channels=2 does not match the data",
        ),
        (
            [*_TRAIN, "--n-test", "4", "--model-arg", "bogus=1", "-o", "{tmp}/x"],
            "unexpected keyword argument(s) ['bogus']",
        ),
        ([*_TRAIN[:8], "15", "--n-test", "8", "-o", "{tmp}/x"], "would overlap"),
    ],
)
def test_bad_input_gives_one_clear_line(argv, message, data, fno_run, tmp_path):
    import xarray as xr

    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"t": (("k",), np.arange(3.0))}).to_netcdf(foreign)
    subs = {"{tmp}": str(tmp_path), "{data}": str(data), "{run}": str(fno_run), "{foreign}": str(foreign)}
    for k, v in subs.items():
        argv = [a.replace(k, v) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "mano_pde.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mismatched_checkpoint_is_reported(fno_run, tmp_path):
    import shutil

    from mano_pde.training import load_run

    bad = tmp_path / "bad"
    shutil.copytree(fno_run, bad)
    cfg = json.loads((bad / "model_config.json").read_text())
    cfg["kwargs"]["hidden_channels"] = 16
    (bad / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not match"):
        load_run(bad)
