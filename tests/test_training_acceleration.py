"""train/evaluate with --bf16 through the CLI on a tiny dataset: bf16 really runs on the CPU."""

import csv
import json

import numpy as np
import pytest
import torch

from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy
from mano_pde.training import load_run

FNO_SMALL = ["--hidden-channels", "8", "--n-modes", "8", "--n-layers", "2"]
MANO_SMALL = ["--hidden-channels", "8", "--n-layers", "1", "--n-heads", "2", "--window-size", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 samples at 17²: train on the first 8 (at 9² or 17²), hold out the last 8."""
    path = tmp_path_factory.mktemp("accel") / "d17.nc"
    return generate_darcy(DarcyConfig(n_samples=16, resolution=17, seed=11), path, progress=False)


def _argv(data, out, *extra, model="fno", epochs=2, res="17"):
    small = FNO_SMALL if model == "fno" else MANO_SMALL
    return [
        "train", "--model", model, "--data", str(data), "--resolution", res, "--n-train", "8", "--n-test", "8",
        "--epochs", str(epochs), "--batch-size", "4", "--device", "cpu", "--no-progress", "-o", str(out),
        *small, *extra,
    ]  # fmt: skip


def _rows(run):
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _weights(run):
    return torch.load(run / "model_state_dict.pt", weights_only=True)


def _evaluate(runs, data, out, *extra):
    argv = ["evaluate", *map(str, runs), "--data", str(data), "--resolutions", "9", "17", "--n-test", "8"]
    assert main([*argv, "--no-plots", "-o", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())["records"]


@pytest.fixture(scope="module")
def fp32_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fp32"
    assert main(_argv(data, out)) == 0
    return out


# ----------------------------------------------------------------------------------------------------------- bf16
def test_bf16_training_runs_on_the_cpu(data, fp32_run, tmp_path, capsys):
    out = tmp_path / "bf16"
    assert main(_argv(data, out, "--bf16")) == 0
    assert json.loads((out / "config.json").read_text())["amp_bf16"] is True
    ref, got = _rows(fp32_run), _rows(out)
    losses = np.array([[float(r["train_loss"]) for r in rows] for rows in (ref, got)])
    assert not np.array_equal(losses[0], losses[1])  # bf16 really ran (it was ignored on the CPU before)
    np.testing.assert_allclose(losses[1], losses[0], rtol=0.05)
    ref_weights = _weights(fp32_run)
    assert {k: v.dtype for k, v in _weights(out).items()} == {k: v.dtype for k, v in ref_weights.items()}
    assert {v.dtype for v in ref_weights.values()} == {torch.float32, torch.complex64}  # fp32 (Fourier: complex64)
    # precision is part of the run: resuming it in fp32 is refused, naming the field
    capsys.readouterr()
    assert main(_argv(data, out, "--resume")) == 2
    assert "amp_bf16: saved True, given False" in capsys.readouterr().err


def test_bf16_inference(data, fp32_run, tmp_path):
    fp32 = _evaluate([fp32_run], data, tmp_path / "fp32")
    bf16 = _evaluate([fp32_run], data, tmp_path / "bf16", "--bf16")
    assert [r["precision"] for r in bf16] == ["bf16"] * len(fp32) and {r["precision"] for r in fp32} == {"fp32"}
    for a, b in zip(fp32, bf16, strict=True):
        assert (a["test_resolution"], a["method"]) == (b["test_resolution"], b["method"])
        assert b["rel_l2_mean"] != a["rel_l2_mean"]
        assert b["rel_l2_mean"] == pytest.approx(a["rel_l2_mean"], rel=0.02)
    assert "Inference: bf16 autocast" in (tmp_path / "bf16" / "results.md").read_text()
    run = load_run(fp32_run)
    a = torch.rand(3, 1, 17, 17) + 1
    pred = run.predict(a, bf16=True)
    assert pred.dtype == torch.float32
    torch.testing.assert_close(pred, run.predict(a), rtol=0.05, atol=0.05 * float(pred.abs().max()))
