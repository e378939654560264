"""Validation split (``train --n-val``): indices, per-epoch log, the one final test score, resume."""

import csv
import json

import numpy as np
import pytest
import torch

from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy, open_darcy
from mano_pde.data.torch_dataset import normalizer_from_dict
from mano_pde.models import load_model
from mano_pde.training import TrainConfig
from mano_pde.training.trainer import best_validation, split_indices, split_train_val_test

FNO_SMALL = ["--hidden-channels", "8", "--n-modes", "6", "--n-layers", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """20 samples at 17²: train on the first 12, validate on the next 4, test on the last 4."""
    path = tmp_path_factory.mktemp("val") / "d17.nc"
    return generate_darcy(DarcyConfig(n_samples=20, resolution=17, seed=7), path, progress=False)


def _train(data, out, *extra, epochs=2, res=("17",), n_val="4", n_test="4"):
    argv = ["train", "--model", "fno", "--data", str(data), "--n-train", "12", "--n-test", n_test]
    argv += ["--epochs", str(epochs), "--batch-size", "4", "--no-progress", "-o", str(out), *FNO_SMALL]
    if n_val is not None:
        argv += ["--n-val", n_val]
    for r in res:
        argv += ["--resolution", r]
    return main(argv + list(extra))


def _log(run):
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def val_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fno-val"
    assert _train(data, out, epochs=3) == 0
    return out


# ------------------------------------------------------------------------------------------- split indices
def test_split_blocks_are_disjoint_and_in_place():
    train, val, test = split_train_val_test(20, 20, 12, 4, 4, same_stream=True)
    assert train.tolist() == list(range(12))
    assert val.tolist() == [12, 13, 14, 15]
    assert test.tolist() == [16, 17, 18, 19]
    assert not set(train) & set(val) and not set(val) & set(test) and not set(train) & set(test)
    # an independent test file: the last n_test of that file, whatever the training file's blocks
    train, val, test = split_train_val_test(16, 10, 12, 4, 10, same_stream=False)
    assert val.tolist() == [12, 13, 14, 15] and test.tolist() == list(range(10))


def test_split_without_validation_is_todays_split():
    for same in (True, False):
        train, val, test = split_train_val_test(20, 20, 12, 0, 8, same_stream=same)
        ref_train, _ = split_indices(20, 12, 0, False)
        _, ref_test = split_indices(20, 12 if same else 0, 8, same)
        assert val.size == 0
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)
    with pytest.raises(ValueError, match="would overlap"):
        split_train_val_test(20, 20, 15, 0, 8, same_stream=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((15, 15, 12, 4, 2, False), r"--n-train 12 \+ --n-val 4 = 16 samples, but the training file holds only 15"),
        ((20, 20, 12, 4, 5, True), r"validating on the next 4 \(samples 12-15\).*n_train \+ n_val \+ n_test <= 20"),
        ((20, 18, 12, 4, 4, True), "would overlap"),  # same stream, shorter test file: 12 + 4 + 4 > 18
        ((20, 3, 12, 4, 4, False), "--n-test 4 but the held-out file holds only 3"),
        ((10, 20, 12, 4, 4, False), "--n-train 12 but the training file holds only 10"),
        ((20, 20, 12, -1, 4, False), "--n-val must be >= 0"),
    ],
)
def test_split_errors_name_the_numbers(args, message):
    with pytest.raises(ValueError, match=message):
        split_train_val_test(*args)


def test_config_n_val():
    cfg = TrainConfig(model="fno", data="d.nc", resolutions=[17], n_train=[12])
    assert cfg.n_val == 0
    record = cfg.to_dict()
    del record["n_val"]  # config.json of a run made before n_val existed
    assert TrainConfig.from_dict(record).n_val == 0
    with pytest.raises(ValueError, match="n_val must be >= 0"):
        TrainConfig(model="fno", data="d.nc", resolutions=[17], n_train=[12], n_val=-1)


def test_best_validation_mean_over_grids_earliest_on_ties():
    rows = [
        {"epoch": 1, "val_rel_l2_9": 1.0, "val_rel_l2_17": 1.0},
        {"epoch": 2, "val_rel_l2_9": 0.5, "val_rel_l2_17": 0.5},
        {"epoch": 3, "val_rel_l2_9": 0.25, "val_rel_l2_17": 0.75},  # mean 0.5 (exact), ties with epoch 2
    ]
    assert best_validation(rows, ["val_rel_l2_9", "val_rel_l2_17"]) == (2, 0.5)
    assert best_validation(rows, ["val_rel_l2_9"]) == (3, 0.25)


# ------------------------------------------------------------------------------------------- training runs
def test_log_holds_validation_and_test_is_scored_once(data, tmp_path, monkeypatch):
    from mano_pde.training import trainer

    calls = []
    original = trainer._held_out_error

    def counting(model, in_norm, out_norm, x, y, *args, **kwargs):
        calls.append(x.shape[0])
        return original(model, in_norm, out_norm, x, y, *args, **kwargs)

    monkeypatch.setattr(trainer, "_held_out_error", counting)
    out = tmp_path / "run"
    assert _train(data, out, epochs=2) == 0
    assert len(calls) == 2 + 1  # one validation score per epoch, the test file once at the end

    rows = _log(out)
    assert list(rows[0]) == ["epoch", "train_loss", "lr", "epoch_time_s", "val_rel_l2_17"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((out / "final_metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["weights"] == "last epoch"
    assert metrics["val_samples"] == [12, 16] and metrics["test_samples"] == [16, 20]
    assert metrics["n_val"] == 4 and metrics["n_test"] == 4
    vals = [float(r["val_rel_l2_17"]) for r in rows]
    assert metrics["best_val_rel_l2"] == pytest.approx(min(vals))
    assert metrics["best_val_epoch"] == 1 + int(np.argmin(vals))
    assert metrics["val_rel_l2_17"] == pytest.approx(vals[-1])
    assert 0 < metrics["test_rel_l2_17"] < 10
    assert json.loads((out / "config.json").read_text())["n_val"] == 4


def test_scores_match_an_independent_computation(data, val_run, tmp_path):
    """The logged validation error is on samples 12-15 and the final test error on 16-19 (last weights)."""
    model = load_model(val_run).eval()
    norms = json.loads((val_run / "normalizers.json").read_text())
    xn, yn = normalizer_from_dict(norms["x"]), normalizer_from_dict(norms["y"])
    with open_darcy(data) as ds:
        a, u = ds["a"].values, ds["u"].values

    def rel_l2(idx):
        with torch.no_grad():
            pred = yn.inverse_transform(model(xn.transform(torch.from_numpy(a[idx, None])))).numpy()[:, 0]
        n = len(idx)
        err = np.linalg.norm((pred - u[idx]).reshape(n, -1), axis=1) / np.linalg.norm(u[idx].reshape(n, -1), axis=1)
        return err.mean()

    metrics = json.loads((val_run / "final_metrics.json").read_text())
    assert float(_log(val_run)[-1]["val_rel_l2_17"]) == pytest.approx(rel_l2(np.arange(12, 16)), rel=1e-4)
    assert metrics["test_rel_l2_17"] == pytest.approx(rel_l2(np.arange(16, 20)), rel=1e-4)

    # `evaluate` (default: the run's n_test) scores the same test samples
    res = tmp_path / "results"
    argv = ["evaluate", str(val_run), "--data", str(data), "--resolutions", "17", "--no-plots", "-o", str(res)]
    assert main(argv) == 0
    (record,) = json.loads((res / "results.json").read_text())["records"]
    assert record["rel_l2_mean"] == pytest.approx(metrics["test_rel_l2_17"], rel=1e-4)


def test_evaluate_refuses_test_samples_overlapping_validation(data, val_run, tmp_path, capsys):
    argv = ["evaluate", str(val_run), "--data", str(data), "--resolutions", "17", "--n-test", "5", "--no-plots"]
    assert main([*argv, "-o", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "would overlap" in err and "trained and validated on (its first 12 + 4)" in err


def test_without_n_val_the_log_is_unchanged(data, tmp_path):
    out = tmp_path / "plain"
    assert _train(data, out, epochs=1, n_val=None, n_test="8") == 0
    assert list(_log(out)[0]) == ["epoch", "train_loss", "lr", "epoch_time_s", "test_rel_l2_17"]
    assert not (out / "final_metrics.json").exists()


def test_multi_resolution_validation_columns(data, tmp_path):
    out = tmp_path / "multi"
    assert _train(data, out, epochs=1, res=("9", "17")) == 0
    assert list(_log(out)[0])[4:] == ["val_rel_l2_9", "val_rel_l2_17"]
    metrics = json.loads((out / "final_metrics.json").read_text())
    assert {"test_rel_l2_9", "test_rel_l2_17", "val_rel_l2_9", "val_rel_l2_17"} <= set(metrics)
    assert metrics["best_val_rel_l2"] == pytest.approx((metrics["val_rel_l2_9"] + metrics["val_rel_l2_17"]) / 2)


@pytest.mark.parametrize(
    ("n_val", "n_test", "message"),
    [("9", "4", "--n-val 9 = 21 samples, but the training file holds only 20"), ("4", "5", "would overlap")],
)
def test_cli_rejects_a_validation_split_that_does_not_fit(data, tmp_path, capsys, n_val, n_test, message):
    assert _train(data, tmp_path / "x", n_val=n_val, n_test=n_test) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------- resume
def _interrupt_at(monkeypatch, call: int):
    from mano_pde.training import trainer

    calls = {"n": 0}
    original = trainer._held_out_error

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "_held_out_error", interrupted)
    return original, calls


def _assert_same_run(a, b):
    wa = torch.load(a / "model_state_dict.pt", weights_only=True)
    wb = torch.load(b / "model_state_dict.pt", weights_only=True)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    cols = ("epoch", "train_loss", "lr", "val_rel_l2_17")
    log_a = np.array([[float(r[c]) for c in cols] for r in _log(a)])
    log_b = np.array([[float(r[c]) for c in cols] for r in _log(b)])
    np.testing.assert_allclose(log_a, log_b, rtol=1e-5)
    ma = json.loads((a / "final_metrics.json").read_text())
    mb = json.loads((b / "final_metrics.json").read_text())
    assert ma.keys() == mb.keys() and ma["best_val_epoch"] == mb["best_val_epoch"]
    for k in ("test_rel_l2_17", "val_rel_l2_17", "best_val_rel_l2"):
        assert ma[k] == pytest.approx(mb[k], rel=1e-5)


def test_resume_with_validation_matches_uninterrupted_run(data, val_run, tmp_path, monkeypatch):
    from mano_pde.training import trainer

    part = tmp_path / "part"
    original, _ = _interrupt_at(monkeypatch, 2)  # during epoch 2's validation, before the epoch is saved
    assert _train(data, part, epochs=3) == 130
    assert len(_log(part)) == 1 and not (part / "final_metrics.json").exists()
    monkeypatch.setattr(trainer, "_held_out_error", original)
    assert _train(data, part, "--resume", epochs=3) == 0
    _assert_same_run(val_run, part)


def test_resume_after_the_last_epoch_only_scores_the_test_file(data, val_run, tmp_path, monkeypatch):
    from mano_pde.training import trainer

    part = tmp_path / "part"
    original, _ = _interrupt_at(monkeypatch, 4)  # 3 validation scores done: interrupted in the final test score
    assert _train(data, part, epochs=3) == 130
    assert len(_log(part)) == 3 and not (part / "final_metrics.json").exists()
    monkeypatch.setattr(trainer, "_held_out_error", original)
    _, calls = _interrupt_at(monkeypatch, -1)  # count only
    assert _train(data, part, "--resume", epochs=3) == 0
    assert calls["n"] == 1  # no epoch is retrained or re-validated: the test file is scored, once
    _assert_same_run(val_run, part)
