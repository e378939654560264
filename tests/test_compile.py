"""torch.compile (mano_pde.acceleration.compile_model): compiled equals eager to fp32 rounding, and training
through it keeps exact resume, plain checkpoints and data parallelism.

Tiny grids (9²) and one batch shape per compiled graph keep the compilations to seconds; inductor's on-disk
cache makes later runs faster still.
"""

import csv
import json

import numpy as np
import pytest
import torch

from mano_pde.acceleration import check_compile, compile_model, cxx_compiler
from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy
from mano_pde.errors import UserInputError
from mano_pde.models import create_model
from mano_pde.training import TrainConfig, load_run

CPU = torch.device("cpu")
needs_cxx = pytest.mark.skipif(
    cxx_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler (g++/c++/clang++ or $CXX)"
)
MANO_TINY = ["--hidden-channels", "8", "--n-layers", "1", "--n-heads", "2", "--window-size", "4"]


def _mano():
    torch.manual_seed(0)
    return create_model(
        "mano", in_channels=1, out_channels=1, hidden_channels=8, n_layers=1, n_heads=2, window_size=4, image_size=9
    )


@needs_cxx
def test_compiled_mano_matches_eager_forward_and_gradients():
    model = _mano()
    compiled = compile_model(model, CPU)
    x = torch.randn(4, 1, 9, 9)  # the training test's batch shape: inductor's cache serves it the same kernels
    out = compiled(x)
    out.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref = model(x)
    ref.square().mean().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
    # the compiled module shares the parameters: the trainer optimises and saves `model` itself
    assert compiled._orig_mod is model
    assert all(p is q for p, q in zip(compiled.parameters(), model.parameters(), strict=True))


def test_compile_without_a_cxx_compiler_is_refused_naming_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    assert cxx_compiler() is None
    with pytest.raises(UserInputError, match="no C.. compiler was found .*install g.. or drop --compile"):
        check_compile(CPU)


def test_compile_is_a_runtime_field():
    eager = TrainConfig(data="d.nc", model="mano", resolutions=[9], n_train=[8])
    compiled = TrainConfig(data="d.nc", model="mano", resolutions=[9], n_train=[8], compile=True)
    assert eager.digest() == compiled.digest() and not eager.differences(compiled)
    assert TrainConfig.from_dict(compiled.to_dict()).compile is True


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 samples at 9²: 8 train (two batches of 4: one compiled shape), 4 held out."""
    path = tmp_path_factory.mktemp("compile") / "d9.nc"
    return generate_darcy(DarcyConfig(n_samples=12, resolution=9, seed=3), path, progress=False)


def _argv(data, out, *extra, epochs=2):
    return [
        "train", "--model", "mano", "--data", str(data), "--resolution", "9", "--n-train", "8", "--n-test", "4",
        "--epochs", str(epochs), "--batch-size", "4", "--device", "cpu", "--no-progress", "-o", str(out),
        *MANO_TINY, *extra,
    ]  # fmt: skip


def _log(run):
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([[float(r["train_loss"]), float(r["test_rel_l2_9"])] for r in rows])


@pytest.fixture(scope="module")
def eager_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "eager"
    assert main(_argv(data, out)) == 0
    return out


@needs_cxx
def test_compiled_training_resumes_eagerly_and_saves_the_plain_model(data, eager_run, tmp_path, caplog, monkeypatch):
    """Epoch 1 compiled (interrupted in epoch 2), epoch 2 resumed eagerly: the same losses and weights as two
    eager epochs (fp32 rounding); the checkpoint holds the uncompiled module's keys."""
    from mano_pde.training import trainer

    original, calls = trainer._held_out, []

    def interrupted(*args, **kwargs):  # stop in epoch 2, after training, before saving
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    out = tmp_path / "compiled"
    monkeypatch.setattr(trainer, "_held_out", interrupted)
    with caplog.at_level("INFO", logger="mano_pde.training.trainer"):
        assert main(_argv(data, out, "--compile")) == 130  # interrupted
    monkeypatch.setattr(trainer, "_held_out", original)
    assert "torch.compile: first step" in caplog.text
    assert json.loads((out / "config.json").read_text())["compile"] is True
    assert len(_log(out)) == 1
    saved = torch.load(out / "model_state_dict.pt", weights_only=True)
    assert not [k for k in saved if "_orig_mod" in k]
    assert main(_argv(data, out, "--resume")) == 0  # compile is a runtime field: resumed without it
    assert json.loads((out / "config.json").read_text())["compile"] is False
    np.testing.assert_allclose(_log(out), _log(eager_run), rtol=1e-4)
    ref = torch.load(eager_run / "model_state_dict.pt", weights_only=True)
    got = torch.load(out / "model_state_dict.pt", weights_only=True)
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=k)


@needs_cxx
def test_compiled_prediction_matches_eager(data, eager_run):
    run = load_run(eager_run)
    a = torch.rand(4, 1, 9, 9) + 1.0
    torch.testing.assert_close(run.predict(a, batch_size=4, compile=True), run.predict(a, batch_size=4))
    assert run._compiled is not None and run._compiled._orig_mod is run.model


def test_evaluate_compile_runs_every_prediction_through_the_compiled_model(data, eager_run, tmp_path, monkeypatch):
    """The plumbing of ``evaluate --compile`` (the compiled kernels themselves are checked above): one compiled
    module per run, used for every method, and the records say so."""
    import mano_pde.training.runs as runs

    made, calls = [], []

    def spy(model, device):
        made.append(model)

        def wrapper(x):
            calls.append(tuple(x.shape))
            return model(x)

        return wrapper

    monkeypatch.setattr(runs, "compile_model", spy)
    argv = ["evaluate", str(eager_run), "--data", str(data), "--resolutions", "9", "--n-test", "4", "--no-plots"]
    assert main([*argv, "--compile", "-o", str(tmp_path / "ev")]) == 0
    records = json.loads((tmp_path / "ev" / "results.json").read_text())["records"]
    assert len(made) == 1 and calls and {r["compiled"] for r in records} == {True}
    assert "torch.compile" in (tmp_path / "ev" / "results.md").read_text()
