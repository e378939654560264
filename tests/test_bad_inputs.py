"""Issue 10: bad inputs give one clear line (exit 2) or a clear exception, never a silent wrong result.

Each case is one item of the hostile-input sweep. CLI cases run ``mano_pde.cli.main`` in-process; the
concurrency case runs two real ``generate`` processes on one path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mano_pde.cli import main
from mano_pde.data import DarcyConfig, DarcyDataError, generate_darcy, load_arrays, open_darcy
from mano_pde.errors import UserInputError
from solvers import solve_darcy

N, S = 3, 9
GEN = ["generate", "--n-samples", str(N), "--resolution", str(S), "--no-progress"]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """3 samples at 9x9."""
    path = tmp_path_factory.mktemp("bad_inputs") / "good.nc"
    return generate_darcy(DarcyConfig(n_samples=N, resolution=S, seed=1), path, progress=False)


def _variant(good: Path, out: Path, change) -> Path:
    """A copy of ``good`` with ``change(ds)`` applied (arrays or attributes), still marked complete."""
    with xr.open_dataset(good) as ds:
        ds = ds.load()
    ds = change(ds) or ds
    ds.to_netcdf(out, engine="netcdf4")
    return out


def _set(name, index, value):
    def change(ds):
        ds[name].values[index] = value

    return change


def _attr(key, value):
    def change(ds):
        ds.attrs[key] = value

    return change


def _zero_samples(ds):
    ds = ds.isel(sample=slice(0, 0))
    for v in ds.variables.values():
        v.encoding = {}  # the (1, s, s) chunking of the original is invalid for an empty dimension
    return ds


BROKEN_FILES = {
    "nan-in-u": (_set("u", (1, 4, 4), np.nan), "variable u holds NaN or infinite values (first in sample 1"),
    "inf-in-a": (_set("a", (2, 0, 0), np.inf), "variable a holds NaN or infinite values (first in sample 2"),
    "negative-a": (_set("a", (0, 3, 3), -3.0), "permeability a must be > 0, but sample 0 holds -3"),
    "attrs-resolution-65": (_attr("resolution", 65), "attribute resolution = 65 contradicts the arrays (9"),
    "attrs-n-samples": (_attr("n_samples", 7), "attribute n_samples = 7 contradicts the arrays (3"),
    "schema-99": (_attr("mano_pde_schema", "mano_pde.darcy/99"), "schema version 'mano_pde.darcy/99'"),
    "zero-samples": (_zero_samples, "holds no samples"),
}


def _one_error_line(capsys, phrase: str, command: str) -> None:
    err = capsys.readouterr().err.strip()
    assert phrase in err, err
    assert err.startswith(f"mano-pde {command}: error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err


# ------------------------------------------------------------------ items 2 and 6: files that lie or hold junk
@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_info_refuses_broken_files(case, good, tmp_path, capsys):
    change, phrase = BROKEN_FILES[case]
    path = _variant(good, tmp_path / f"{case}.nc", change)
    assert main(["info", str(path)]) == 2
    _one_error_line(capsys, phrase, "info")
    with pytest.raises(DarcyDataError, match="contradicts|NaN|> 0|schema|no samples"):
        open_darcy(path)


@pytest.mark.parametrize("case", ["nan-in-u", "negative-a"])
def test_load_arrays_checks_the_blocks_it_reads(case, good, tmp_path):
    change, phrase = BROKEN_FILES[case]
    path = _variant(good, tmp_path / f"{case}.nc", change)
    with pytest.raises(DarcyDataError, match=phrase.split(" (")[0].replace("(", r"\(")):
        load_arrays(path)


# ------------------------------------------------------------------ item 7: resolutions
@pytest.mark.parametrize(
    ("resolution", "phrase"),
    [(2, "resolution 2 is not a grid"), (33.5, "must be an integer"), (True, "must be an integer")],
)
def test_resolution_must_be_an_integer_grid(resolution, phrase, good):
    with pytest.raises(DarcyDataError, match=phrase):
        open_darcy(good, resolution=resolution)
    with pytest.raises(DarcyDataError, match=phrase):
        load_arrays(good, resolution=resolution)


def test_info_resolution_2_is_an_error(good, capsys):
    assert main(["info", str(good), "--resolution", "2"]) == 2
    _one_error_line(capsys, "resolution 2 is not a grid", "info")


# ------------------------------------------------------------------ generate: options, checked before any write
@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--chunk-size", "-5"], "chunk_size (--chunk-size) must be >= 1"),
        (["--chunk-size", "0"], "chunk_size (--chunk-size) must be >= 1"),
        (["--forcing", "nan"], "forcing must be a finite number, got nan"),
        (["--map", "lognormal", "--sigma", "inf"], "sigma must be a finite number, got inf"),
        (["--map", "lognormal", "--sigma", "40"], "above the solver's limit"),  # fails in the solver, sample 0
        (["--high", "1e13", "--low", "1"], "above the solver's limit"),
    ],
)
def test_generate_refuses_bad_options_and_leaves_nothing(extra, phrase, tmp_path, capsys):
    out = tmp_path / "x.nc"
    assert main([*GEN, *extra, "-o", str(out)]) == 2
    _one_error_line(capsys, phrase, "generate")
    assert sorted(os.listdir(tmp_path)) == []  # no manifest (with NaN or not) blocks the next valid run
    assert main([*GEN, "-o", str(out)]) == 0
    assert open_darcy(out).sizes["sample"] == N


def test_config_refuses_non_finite_values_so_manifests_stay_json():
    for field in ("forcing", "sigma"):
        for bad in (float("nan"), float("inf"), -float("inf")):
            with pytest.raises(UserInputError, match=f"{field} must be a finite number"):
                DarcyConfig(**{field: bad})


# ------------------------------------------------------------------ output paths
def _mat_source(good: Path, path: Path) -> Path:
    import scipy.io

    with open_darcy(good) as ds:
        scipy.io.savemat(path, {"coeff": ds["a"].values, "sol": ds["u"].values})
    return path


@pytest.mark.parametrize("command", ["generate", "import"])
def test_output_that_is_a_folder_is_refused_untouched(command, good, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_bytes(b"user data")
    if command == "generate":
        argv = [*GEN, "--overwrite", "-o", str(folder)]
    else:
        argv = ["import", str(_mat_source(good, tmp_path / "src.mat")), "--overwrite", "--no-progress"]
        argv += ["-o", str(folder)]
    before = sorted(os.listdir(tmp_path))
    assert main(argv) == 2
    _one_error_line(capsys, f"the output {folder} is an existing folder, not a file", command)
    assert sorted(os.listdir(tmp_path)) == before  # no hidden .tmp, no .parts, no lock
    assert os.listdir(folder) == ["keep.txt"] and (folder / "keep.txt").read_bytes() == b"user data"


@pytest.mark.parametrize("command", ["generate", "import"])
def test_read_only_output_folder_is_one_line(command, good, tmp_path, monkeypatch, capsys):
    src = _mat_source(good, tmp_path / "src.mat")
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    # the tests may run as root, for whom chmod 0o555 does not stop writes: emulate the permission check
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    out = ro / "sub" / "x.nc"
    argv = [*GEN, "-o", str(out)] if command == "generate" else ["import", str(src), "--no-progress", "-o", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys, f"the folder {ro} is not writable", command)
    assert os.listdir(ro) == []


def test_permission_error_from_the_os_is_one_line(good, tmp_path, monkeypatch, capsys):
    from mano_pde.data import _output

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.nc.lock"))

    monkeypatch.setattr(_output.os, "open", refuse)
    assert main([*GEN, "-o", str(tmp_path / "x.nc")]) == 2
    _one_error_line(capsys, "Permission denied", "generate")


# ------------------------------------------------------------------ item 9 and the solver's range
@pytest.mark.parametrize(
    ("kwargs", "exc", "phrase"),
    [
        ({"a": np.ma.masked_array(np.ones((S, S)), mask=np.eye(S, dtype=bool))}, TypeError, "masked array"),
        ({"a": np.ones((S, S)), "f": np.ma.masked_array(np.ones((S, S)))}, TypeError, "masked array"),
        ({"a": np.full((S, S), 1e-300)}, ValueError, "out of the solver's range"),
        ({"a": np.full((S, S), 1e300)}, ValueError, "out of the solver's range"),
        ({"a": np.ones((S, S)), "permc_spec": "BOGUS"}, ValueError, "unknown permc_spec 'BOGUS'"),
    ],
)
def test_solver_refuses_inputs_it_cannot_honour(kwargs, exc, phrase):
    with pytest.raises(exc, match=phrase):
        solve_darcy(**kwargs)


# ------------------------------------------------------------------ the CLI's exception policy
def test_internal_value_error_keeps_its_traceback(good, monkeypatch):
    import mano_pde.data

    def bug(ds):
        raise ValueError("an internal bug, not the user's fault")

    monkeypatch.setattr(mano_pde.data, "describe", bug)
    with pytest.raises(ValueError, match="internal bug"):
        main(["info", str(good)])


def test_user_input_error_is_one_line(good, monkeypatch, capsys):
    import mano_pde.data

    def user_error(ds):
        raise UserInputError("first line\nsecond line")

    monkeypatch.setattr(mano_pde.data, "describe", user_error)
    assert main(["info", str(good)]) == 2
    _one_error_line(capsys, "first line second line", "info")


def test_interrupted_overwrite_run_names_the_right_way_to_resume(tmp_path, monkeypatch, capsys):
    import mano_pde.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mano_pde.data, "generate_darcy", interrupted)
    assert main([*GEN, "--overwrite", "-o", str(tmp_path / "x.nc")]) == 130
    err = capsys.readouterr().err
    # issue 21: --overwrite keeps the shards of the same parameters, so the same command resumes
    assert "interrupted: rerun the same command to resume" in err and "without --overwrite" not in err


# ------------------------------------------------------------------ item 3: two generate runs on one path
def _lock_holder(lock: Path) -> int | None:
    try:
        text = lock.read_text().split()
    except FileNotFoundError:
        return None
    return int(text[0]) if text else None


def test_concurrent_generate_runs_on_one_path(tmp_path):
    cmd = [sys.executable, "-m", "mano_pde.cli", "generate", "--resolution", "33", "--no-progress", "--overwrite"]
    out = tmp_path / "OUT.nc"
    lock = tmp_path / "OUT.nc.lock"
    for n in (64, 256, 1024):  # the first run must still hold the lock when we freeze it
        out.unlink(missing_ok=True)
        first = subprocess.Popen([*cmd, "--n-samples", str(n), "--seed", "1", "-o", str(out)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _lock_holder(lock) != first.pid and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(first.pid, signal.SIGSTOP)
        if _lock_holder(lock) == first.pid:
            break
        os.kill(first.pid, signal.SIGCONT)
        first.wait()
    else:
        pytest.fail("the first generate run never held its lock long enough to be frozen")
    try:
        second = subprocess.run(
            [*cmd, "--n-samples", "4", "--seed", "2", "-o", str(out)], capture_output=True, text=True, timeout=120
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    assert second.returncode == 2, second.stderr
    assert f"another mano-pde generate is writing {out} (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert first.returncode == 0, first_err.decode()
    with open_darcy(out) as ds:  # the winner's file is complete and holds only its own seed's samples
        assert ds.sizes["sample"] == n and ds.attrs["seed"] == 1
        expected = generate_darcy(DarcyConfig(n_samples=2, resolution=33, seed=1), tmp_path / "ref.nc", progress=False)
        with open_darcy(expected) as ref:
            np.testing.assert_array_equal(ds["a"].values[:2], ref["a"].values)
    assert not lock.exists() and not (tmp_path / "OUT.nc.parts").exists()


# ------------------------------------------------------------------ item 1: --model-arg typed by the constructor
TRAIN = ["train", "--resolution", str(S), "--n-train", "2", "--n-test", "1", "--epochs", "1", "--no-progress"]
FNO_TINY = ["--model", "fno", "--hidden-channels", "4", "--n-modes", "4", "--n-layers", "1"]


@pytest.fixture
def captured_train(monkeypatch):
    """Replace ``train`` by a recorder: the CLI's parsing is tested without training anything."""
    import mano_pde.training

    seen = {}

    def fake_train(config, output, **kwargs):
        seen["config"] = config
        raise KeyboardInterrupt  # stop right after the parsing (exit 130)

    monkeypatch.setattr(mano_pde.training, "train", fake_train)
    return seen


@pytest.mark.parametrize(
    ("text", "value"),
    [("False", False), ("false", False), ("NO", False), ("0", False), ("true", True), ("Yes", True), ("1", True)],
)
def test_model_arg_bool_is_parsed_not_truthy(text, value, good, tmp_path, captured_train):
    argv = [*TRAIN, "--model", "mano", "--data", str(good), "--model-arg", f"position_bias={text}"]
    assert main([*argv, "-o", str(tmp_path / "r")]) == 130
    assert captured_train["config"].model_kwargs["position_bias"] is value


def test_model_arg_values_get_the_annotated_types(good, tmp_path, captured_train):
    args = ["mlp_ratio=4", "window_size=4", "head_dim=none", "downsample=avg", "image_size=9"]
    argv = [*TRAIN, "--model", "mano", "--data", str(good)] + [a for x in args for a in ("--model-arg", x)]
    assert main([*argv, "-o", str(tmp_path / "r")]) == 130
    kw = captured_train["config"].model_kwargs
    assert kw == {"mlp_ratio": 4.0, "window_size": 4, "head_dim": None, "downsample": "avg", "image_size": 9}
    assert isinstance(kw["mlp_ratio"], float)


@pytest.mark.parametrize(
    ("model", "extra", "phrase"),
    [
        ("mano", ["--model-arg", "position_bias=maybe"], "position_bias expects a bool (true/false/1/0/yes/no)"),
        ("mano", ["--model-arg", "window_size=abc"], "window_size='abc': window_size expects an integer"),
        ("mano", ["--model-arg", "mlp_ratio=nan"], "mlp_ratio expects a finite number"),
        ("mano", ["--model-arg", "windw_size=4"], "unexpected keyword argument(s) ['windw_size']; accepted: ["),
        ("fno", ["--model-arg", "n_modes=a,b"], "n_modes expects a list of integers"),
        (
            "fno",
            ["--hidden-channels", "8", "--model-arg", "hidden_channels=16"],
            "--hidden-channels 8 and --model-arg hidden_channels=16",
        ),
        ("fno", ["--n-modes", "8", "--model-arg", "n_modes=4,4"], "given twice"),
    ],
)
def test_model_arg_errors(model, extra, phrase, good, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TRAIN, "--model", model, "--data", str(good), *extra, "-o", str(out)]) == 2
    _one_error_line(capsys, phrase, "train")
    assert not out.exists()


def test_create_model_refuses_values_of_the_wrong_type():
    from mano_pde.models import create_model
    from mano_pde.models.arguments import ModelArgumentError

    with pytest.raises(ModelArgumentError, match=r"position_bias expects a bool .*got 'False' \(str\)"):
        create_model("mano", position_bias="False")
    with pytest.raises(TypeError, match="window_size expects an integer"):  # also a TypeError
        create_model("window-attention", window_size="8")


# ------------------------------------------------------------------ item 4: ranges of model hyperparameters
@pytest.mark.parametrize(
    ("model", "kwargs", "phrase"),
    [
        ("fno", {"n_modes": [0, 0]}, "n_modes must be two positive ints"),
        ("fno", {"n_modes": [8, -1]}, "n_modes must be two positive ints"),
        ("fno", {"hidden_channels": 0}, "hidden_channels must be a positive int, got 0"),
        ("fno", {"hidden_channels": -4}, "hidden_channels must be a positive int, got -4"),
        ("tfno", {"n_layers": 0}, "n_layers must be a positive int"),
        ("fno", {"projection_channel_ratio": 0.01}, "projection_channel_ratio = 0.01 gives the projection MLP 0"),
        ("fno", {"lifting_channel_ratio": -1}, "lifting_channel_ratio must be a finite number >= 0"),
        ("mano", {"mlp_ratio": -1}, "mlp_ratio = -1 gives each block's MLP a hidden width of -64 < 1"),
        ("mano", {"mlp_ratio": 0}, "mlp_ratio = 0 gives"),
        ("mano", {"mlp_ratio": 0.01}, "mlp_ratio = 0.01 gives each block's MLP a hidden width of 0.64 < 1"),
        ("mano", {"n_heads": 0}, "n_heads must be a positive int, got 0"),
        ("mano", {"n_heads": 3}, "hidden_channels = 64 is not divisible by n_heads = 3"),
        ("mano", {"head_dim": 0}, "head_dim must be a positive int or None"),
        ("mano", {"window_size": 0}, "window_size must be a positive int"),
        ("mano", {"window_stride": 9}, "window_stride must be an int in [1, window_size = 8]"),
        ("mano", {"factor": 1}, "factor (down-sampling ratio between levels) must be an int >= 2"),
        ("window-attention", {"dropout": 1.5}, "dropout must be in [0, 1)"),
        ("global-attention", {"hidden_channels": 0}, "hidden_channels must be a positive int, got 0"),
        ("mano", {"projection_channel_ratio": 0}, "projection_channel_ratio = 0 gives the projection MLP 0"),
        ("mano", {"downsample": "bogus"}, "create_model('mano'): downsample must be one of"),
        ("mano-x", {}, "unknown model 'mano-x'"),
    ],
)
def test_model_hyperparameter_ranges(model, kwargs, phrase):
    from mano_pde.models import create_model

    with pytest.raises(UserInputError) as info:
        create_model(model, **kwargs)
    assert phrase in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--n-modes", "0"], "n_modes must be two positive ints"),
        (["--hidden-channels", "0"], "hidden_channels must be a positive int, got 0"),
        (["--hidden-channels", "-4"], "hidden_channels must be a positive int, got -4"),
    ],
)
def test_train_refuses_degenerate_fno(extra, phrase, good, tmp_path, capsys):
    out = tmp_path / "r"
    argv = [*TRAIN, "--data", str(good), "--model", "fno", "--n-layers", "1", *extra, "-o", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys, phrase, "train")
    assert not out.exists()


def test_train_refuses_a_one_unit_mlp(good, tmp_path, capsys):
    argv = [*TRAIN, "--data", str(good), "--model", "mano", "--hidden-channels", "8", "--n-heads", "2"]
    assert main([*argv, "--model-arg", "mlp_ratio=0.01", "-o", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, "mlp_ratio = 0.01 gives each block's MLP a hidden width of 0.08 < 1", "train")


# ------------------------------------------------------------------ runs: a tiny FNO trained once
@pytest.fixture(scope="module")
def tiny_run(good, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_run") / "fno"
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "--batch-size", "1", "-o", str(out)]) == 0
    return out


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def _eval_argv(run: Path, good: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", str(run), "--data", str(good), "--resolutions", str(S), "--no-plots", *extra, "-o", str(out)]


# ------------------------------------------------------------------ item 5: degenerate normalisers, zero-norm refs
@pytest.mark.parametrize("std", [0.0, float("nan"), -1.0])
def test_degenerate_normaliser_is_refused_at_load(std, tiny_run, good, tmp_path, capsys):
    import json

    run = _copy_run(tiny_run, tmp_path / "run")
    norms = json.loads((run / "normalizers.json").read_text())
    norms["y"]["std"] = [std]
    (run / "normalizers.json").write_text(json.dumps(norms))  # NaN is written as the JSON extension NaN
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, f"{run / 'normalizers.json'} (y, pressure): degenerate normaliser", "evaluate")
    assert not (tmp_path / "res").exists()


def test_training_on_constant_pressure_is_refused(good, tmp_path, capsys):
    data = _variant(good, tmp_path / "u0.nc", _set("u", slice(None), 0.0))
    out = tmp_path / "r"
    assert main([*TRAIN, *FNO_TINY, "--data", str(data), "-o", str(out)]) == 2
    _one_error_line(capsys, f"the training pressure u of {data} has mean 0 and standard deviation 0", "train")


def test_zero_norm_reference_warns_once_naming_the_samples(tiny_run, good, tmp_path, caplog):
    data = _variant(good, tmp_path / "u2zero.nc", _set("u", 2, 0.0))  # the held-out sample of tiny_run
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(tiny_run), "--data", str(data), "--resolutions", "5", "9", "--no-plots",
                     "-o", str(tmp_path / "res")]) == 0  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if "zero norm" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "samples 2)" in warnings[0] and str(data) in warnings[0]


# ------------------------------------------------------------------ item 2 (training): the first non-finite loss stops
def test_train_stops_at_the_first_non_finite_loss(good, tmp_path, monkeypatch, capsys):
    from mano_pde.training import trainer

    real = trainer.make_loss
    calls = {"n": 0}

    def nan_on_second_batch(name):
        loss = real(name)

        def wrapped(pred, y):
            calls["n"] += 1
            value = loss(pred, y)
            return value * float("nan") if calls["n"] == 2 else value

        return wrapped

    monkeypatch.setattr(trainer, "make_loss", nan_on_second_batch)
    out = tmp_path / "r"
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "--batch-size", "1", "--epochs", "2", "-o", str(out)]) == 2
    _one_error_line(capsys, "the training loss is nan at epoch 1, batch 2 of 2 (grid 9); training stopped", "train")
    assert not (out / "log.csv").exists()  # no NaN epoch logged, no NaN weights saved


# ------------------------------------------------------------------ item 8: inputs of predict / evaluate
def test_predict_names_non_finite_input_samples(tiny_run):
    import torch

    from mano_pde.training import load_run

    run = load_run(tiny_run)
    a = torch.ones(3, 1, S, S)
    a[1, 0, 4, 4] = float("nan")
    with pytest.raises(UserInputError, match=r"input sample\(s\) 1 hold NaN or infinite values \(1 of 3\)"):
        run.predict(a)
    with pytest.raises(UserInputError, match=r"input sample\(s\) 12 hold NaN"):
        run.predict(a, sample_ids=[10, 12, 14])
    with pytest.raises(UserInputError, match="batch_size must be a positive int, got 0"):
        run.predict(torch.ones(1, 1, S, S), batch_size=0)


# ------------------------------------------------------------------ data loss: train -o into a folder of the user's
@pytest.mark.parametrize("files", [{"log.csv": b"my,own\n1,2\n"}, {"notes.txt": b"x", "sub/keep.bin": b"\0\1"}])
def test_train_refuses_a_non_empty_folder_that_is_not_a_run(files, good, tmp_path, capsys):
    out = tmp_path / "mine"
    for name, content in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(out)]) == 2
    _one_error_line(capsys, f"the output folder {out} exists and holds files that are not a mano-pde run", "train")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    for name, content in files.items():
        assert (out / name).read_bytes() == content


def test_train_into_an_empty_existing_folder_is_fine(good, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(out)]) == 0


# ------------------------------------------------------------------ evaluate / resume: one line, exit 2
@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--n-test", "0"], "n_test (--n-test) must be >= 1"),
        (["--batch-size", "0"], "batch_size (--batch-size) must be >= 1, got 0"),
        (["--device", "banana"], "device 'banana' is not a torch device; use auto, cpu, cuda or cuda:N"),
    ],
)
def test_evaluate_refuses_bad_options(extra, phrase, tiny_run, good, tmp_path, capsys):
    assert main(_eval_argv(tiny_run, good, tmp_path / "res", *extra)) == 2
    _one_error_line(capsys, phrase, "evaluate")
    assert not (tmp_path / "res").exists()


def test_evaluate_read_only_output_folder_is_one_line(tiny_run, good, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    assert main(_eval_argv(tiny_run, good, ro / "res")) == 2
    _one_error_line(capsys, f"the folder {ro} is not writable", "evaluate")
    assert os.listdir(ro) == []


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("random", "no valid training state in"),  # digest mismatch (tests/test_crash_safety.py: the fallback)
        ("list", "no valid training state in"),
        # runs of older versions have no digests (train_state.json): their state is still checked when loaded
        ("random-legacy", "train_state.pt is not the training state of a run (--resume): it is not a file written by"),
        ("list-legacy", "train_state.pt is not the training state of a run (expected the keys"),
    ],
)
def test_resume_with_a_broken_train_state(content, phrase, tiny_run, good, tmp_path, capsys):
    import torch

    run = _copy_run(tiny_run, tmp_path / "run")
    if content.startswith("random"):
        (run / "train_state.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        torch.save([1, 2, 3], run / "train_state.pt")
    if content.endswith("legacy"):
        (run / "train_state.json").unlink()
    argv = [*TRAIN, *FNO_TINY, "--data", str(good), "--batch-size", "1", "--resume"]
    assert main([*argv, "-o", str(run)]) == 2
    _one_error_line(capsys, phrase, "train")


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        (
            "model_state_dict.pt",
            "random",
            "model_state_dict.pt is not a PyTorch checkpoint: it is not a file written by",
        ),
        (
            "model_state_dict.pt",
            "truncated",
            "model_state_dict.pt is not a PyTorch checkpoint: torch.load cannot read it",
        ),
        ("config.json", b"{not json", "config.json is not valid JSON"),
        ("normalizers.json", b"\xff\xfe", "normalizers.json is not valid JSON"),
        ("model_config.json", b"[1, 2", "model_config.json is not valid JSON"),
    ],
)
def test_evaluate_of_broken_run_files(name, content, phrase, tiny_run, good, tmp_path, capsys):
    run = _copy_run(tiny_run, tmp_path / "run")
    path = run / name
    if content == "random":
        content = np.random.default_rng(1).bytes(4096)
    elif content == "truncated":
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, phrase, "evaluate")
    err = capsys.readouterr().err
    assert "pickled" not in err


# ------------------------------------------------------------------ benchmarks and demo: validated before any work
@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["benchmark", "generate", "--sizes", "-17"], "--sizes takes grid sizes >= 3"),
        (["benchmark", "generate", "--sizes", "33", "--repeats", "0"], "--repeats and --workers must be >= 1"),
        (["benchmark", "scaling", "--models", "unet"], "unknown model(s) 'unet': --models takes registry names"),
        (["benchmark", "scaling", "--models", "x=unet", "mano"], "unknown model(s) 'x=unet'"),
        (["benchmark", "scaling", "--models", "mano", "--resolutions", "0"], "grid sides n >= 2"),
        (["benchmark", "scaling", "--models", "mano", "--batch-size", "0"], "--batch-size must be an int >= 1"),
        (["demo", "--epochs", "0"], "epochs (--epochs) must be an int >= 1, got 0"),
        (["demo", "--epochs", "2", "--workers", "0"], "workers (--workers) must be an int >= 1"),
        (["demo", "--epochs", "2", "--device", "banana"], "device 'banana' is not a torch device"),
    ],
)
def test_benchmark_and_demo_options(argv, phrase, tmp_path, capsys):
    out = tmp_path / "out"
    flag = "--output-dir" if argv[:2] == ["benchmark", "scaling"] else "--json" if argv[0] == "benchmark" else "-o"
    assert main([*argv, flag, str(out)]) == 2
    _one_error_line(capsys, phrase, argv[0])
    assert os.listdir(tmp_path) == []  # nothing generated, measured or written


# ------------------------------------------------------------------ import: a truncated MATLAB v5 file
@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_mat_v5_is_called_truncated(compressed, tmp_path, capsys):
    import scipy.io

    full = tmp_path / "full.mat"
    scipy.io.savemat(full, {"coeff": np.ones((3, S, S)), "sol": np.ones((3, S, S))}, do_compression=compressed)
    data = full.read_bytes()
    cut = tmp_path / "cut.mat"
    for size in sorted({len(data) // 2, len(data) - 10, 200, 140}):
        cut.write_bytes(data[:size])  # scipy lists the variables before the cut: it used to say "without sol"
        assert main(["import", str(cut), "--no-progress", "-o", str(tmp_path / "x.nc")]) == 2
        err = capsys.readouterr().err
        assert "truncated" in err and "without" not in err and len(err.strip().splitlines()) == 1, (size, err)
    cut.write_bytes(data[: len(data) // 2])
    assert main(["import", str(cut), "--no-progress", "-o", str(tmp_path / "x.nc")]) == 2
    if not compressed:
        _one_error_line(capsys, f"{cut} is truncated: variable 1 needs bytes 128-", "import")
    assert not (tmp_path / "x.nc").exists()


# ------------------------------------------------------------------ layers: input dtype against the weights
@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_multipole_attention_names_a_dtype_mismatch(dtype):
    import torch

    from mano_pde.layers import MultipoleAttention

    layer = MultipoleAttention(8, n_heads=2, window_size=4)
    x = torch.randn(1, 8, 16, 16, dtype=getattr(torch, dtype))
    with pytest.raises(TypeError, match=rf"float32 weights but got a torch.{dtype} input; convert the input"):
        layer(x)
    if dtype == "float64":  # a float64 module takes float64 inputs
        assert layer.double()(x).dtype == torch.float64


# ------------------------------------------------------------------ generate: memory estimated up front
def test_generate_refuses_a_grid_that_cannot_fit_in_memory(tmp_path, capsys):
    out = tmp_path / "huge.nc"
    assert main(["generate", "--n-samples", "1", "--resolution", "100001", "--no-progress", "-o", str(out)]) == 2
    _one_error_line(capsys, "solving 100001x100001 samples needs at least 9313.4 GiB of memory", "generate")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ the CLI's policy: no more legacy ValueError
@pytest.mark.parametrize("command", ["train", "evaluate", "demo", "benchmark"])
def test_internal_value_errors_of_training_commands_keep_their_traceback(command, good, tmp_path, monkeypatch):
    import mano_pde.benchmarks.generate
    import mano_pde.demo
    import mano_pde.evaluation
    import mano_pde.training

    def bug(*args, **kwargs):
        raise ValueError("an internal bug, not the user's fault")

    module, name = {
        "train": (mano_pde.training, "train"),
        "evaluate": (mano_pde.evaluation, "evaluate"),
        "demo": (mano_pde.demo, "run_demo"),
        "benchmark": (mano_pde.benchmarks.generate, "run"),
    }[command]
    monkeypatch.setattr(module, name, bug)
    argv = {
        "train": [*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(tmp_path / "r")],
        "evaluate": _eval_argv(tmp_path, good, tmp_path / "res"),
        "demo": ["demo", "-o", str(tmp_path / "d")],
        "benchmark": ["benchmark", "generate", "--sizes", "9"],
    }[command]
    with pytest.raises(ValueError, match="internal bug"):
        main(argv)


# --- issue 21: files and data ---------------------------------------------------------------------------------------
# Security: nothing is written through a planted link, nor outside the folder the user named.
def _planted_link(tmp_path: Path, name: str) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    (tmp_path / name).symlink_to(victim)
    return victim


@pytest.mark.parametrize("command", ["generate", "import"])
def test_i21_a_symlink_planted_at_the_lock_is_refused_and_its_target_untouched(command, good, tmp_path, capsys):
    src = _mat_source(good, tmp_path / "src.mat")
    work = tmp_path / "work"
    work.mkdir()
    victim = _planted_link(work, "out.nc.lock")
    out = work / "out.nc"
    argv = [*GEN, "-o", str(out)] if command == "generate" else ["import", str(src), "--no-progress", "-o", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys, f"the lock file {out}.lock is a symbolic link", command)
    assert victim.read_text() == "the user's file"
    assert sorted(os.listdir(work)) == ["out.nc.lock", "victim.txt"]  # no .parts, no temporary, no output


def test_i21_a_hard_link_or_fifo_at_the_lock_is_refused(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.link(victim, tmp_path / "h.nc.lock")
    assert main([*GEN, "-o", str(tmp_path / "h.nc")]) == 2
    _one_error_line(capsys, "is a hard link to another file", "generate")
    os.mkfifo(tmp_path / "f.nc.lock")
    assert main([*GEN, "-o", str(tmp_path / "f.nc")]) == 2
    _one_error_line(capsys, "is not a regular file", "generate")
    assert victim.read_text() == "keep"


def test_i21_temporaries_are_created_exclusively_never_through_a_link(tmp_path):
    from mano_pde import files

    target = tmp_path / "a.json"
    victim = _planted_link(tmp_path, files.temp_path(target).name)  # a link at this process's temporary name
    files.atomic_write_text(target, "new")
    assert target.read_text() == "new" and not target.is_symlink()
    assert victim.read_text() == "the user's file"
    # the data writer's temporary (netCDF) is created the same way
    out = tmp_path / "d.nc"
    victim2 = tmp_path / "victim2.txt"
    victim2.write_text("keep")
    files.temp_path(out).symlink_to(victim2)
    generate_darcy(DarcyConfig(n_samples=2, resolution=5), out, progress=False)
    assert victim2.read_text() == "keep" and open_darcy(out).sizes["sample"] == 2


@pytest.mark.parametrize("command", ["generate", "import"])
def test_i21_an_output_ending_in_a_slash_is_refused(command, good, tmp_path, capsys, monkeypatch):
    src = _mat_source(good, tmp_path / "src.mat")
    monkeypatch.chdir(tmp_path)
    argv = [*GEN, "-o", "newdir/"] if command == "generate" else ["import", str(src), "--no-progress", "-o", "newdir/"]
    before = sorted(os.listdir(tmp_path))
    assert main(argv) == 2
    phrase = "the output 'newdir/' names a folder (it ends in '/'), but a file is written here; give a file name"
    _one_error_line(capsys, f"{phrase} such as newdir/darcy.nc", command)
    assert sorted(os.listdir(tmp_path)) == before  # no file named newdir, no lock, no .parts
    with pytest.raises(UserInputError, match="give a file name such as newdir/darcy.nc"):
        generate_darcy(DarcyConfig(n_samples=2, resolution=5), "newdir/", progress=False)


def _spec(**arm) -> dict:
    return {
        "name": "t",
        "data": {"d": {"path": "data/d.nc", "generate": {"n_samples": 4, "resolution": 9}}},
        "train": {"data": "d", "resolutions": [9], "n_train": [2], "n_test": 1, "epochs": 1},
        "models": {"fno": {"model": "fno", "kwargs": {"hidden_channels": 4, "n_modes": [4, 4], "n_layers": 1}}},
        "arms": {"a": {"models": ["fno"], **arm}},
    }


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"run_dir": "../../../escaped_{arm}/{model}"}, "arms.a.run_dir = '../../../escaped_{arm}/{model}' gives"),
        ({"run_dir": "/tmp/escaped/{model}"}, "arms.a.run_dir = '/tmp/escaped/{model}' gives"),
        ({"run_dir": "runs/{model}/../../.."}, "is not inside the experiment folder"),
        ({"run_dir": "runs/{model}/{0}"}, "is not a valid template"),
        ({"evaluate": {"data": "d", "resolutions": [9], "output": "../results"}}, "arms.a.evaluate.output"),
        ({"data_path": "../outside.nc"}, "data.d.path = '../outside.nc'"),
    ],
)
def test_i21_a_spec_cannot_move_outputs_out_of_the_experiment_folder(change, phrase):
    from mano_pde.experiments import ExperimentSpec

    record = _spec(**{k: v for k, v in change.items() if k != "data_path"})
    if "data_path" in change:
        record["data"]["d"]["path"] = change["data_path"]
    with pytest.raises(UserInputError, match=re.escape(phrase)):
        ExperimentSpec.from_dict(record)


def test_i21_a_link_inside_the_experiment_folder_cannot_lead_out_of_it(tmp_path):
    from mano_pde.experiments import ExperimentSpec
    from mano_pde.experiments.runner import plan_runs
    from mano_pde.files import UnsafePathError

    out, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "runs").symlink_to(elsewhere)
    spec = ExperimentSpec.from_dict(_spec(run_dir="runs/{model}"))
    with pytest.raises(UnsafePathError, match="is not inside the output folder"):
        plan_runs(spec, out)
    assert os.listdir(elsewhere) == []
    # inputs (data without `generate`) may live anywhere: a spec reading a shared file is fine
    record = _spec()
    record["data"]["d"] = {"path": str(tmp_path / "shared.nc")}
    assert ExperimentSpec.from_dict(record).data["d"].path == str(tmp_path / "shared.nc")


# Data loss: nothing replaces a file until the new one passed the reader's checks.
def test_i21_overwrite_with_values_float32_cannot_hold_keeps_the_valid_file(good, tmp_path, capsys):
    out = tmp_path / "good.nc"
    out.write_bytes(good.read_bytes())
    before = out.read_bytes()
    assert main([*GEN, "--overwrite", "--high", "1e45", "--low", "1e40", "-o", str(out)]) == 2
    _one_error_line(capsys, "--high 1e+45 cannot be stored in float32", "generate")
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["good.nc"]


def test_i21_a_writer_whose_file_fails_the_checks_replaces_nothing(good, tmp_path):
    from mano_pde.data.io import check_new_file
    from mano_pde.data.schema import DarcyWriter

    out = tmp_path / "good.nc"
    out.write_bytes(good.read_bytes())
    before = out.read_bytes()
    a = np.full((N, S, S), 2.0)
    u = np.zeros((N, S, S))
    u[1, 4, 4] = np.nan
    with pytest.raises(DarcyDataError, match=f"{out} was not written .* variable u holds NaN"):
        with DarcyWriter(out, N, S, {}, verify=check_new_file) as writer:
            writer.write(0, a, u)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["good.nc"]


# Silent wrong results: values the storage dtype cannot hold, 2x2 grids, the solver's maps.
@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--forcing", "1e-300"], "--forcing 1e-300 cannot be stored in float32 (below its range"),
        (["--forcing", "1e300"], "--forcing 1e+300 cannot be stored in float32 (above its range"),
        (["--forcing", "1e-36"], "u underflows float32"),
        (["--forcing", "1e38", "--high", "1e-30", "--low", "1e-31"], "u overflows float32"),
        (["--map", "lognormal", "--sigma", "1000"], "lognormal permeability exp(sigma * field) over- or underflows"),
        (["--forcing", "1e-310", "--dtype", "float64"], "cannot be stored in float64"),
    ],
)
def test_i21_values_the_storage_dtype_cannot_hold_are_refused(extra, phrase, tmp_path, capsys):
    assert main([*GEN, *extra, "-o", str(tmp_path / "x.nc")]) == 2
    _one_error_line(capsys, phrase, "generate")
    assert os.listdir(tmp_path) == []


def _tiny_grid_file(path: Path, s: int = 2) -> Path:
    from mano_pde.data.schema import COMPLETE_ATTR, SCHEMA

    ds = xr.Dataset(
        {"a": (("sample", "y", "x"), np.full((3, s, s), 2.0)), "u": (("sample", "y", "x"), np.zeros((3, s, s)))},
        coords={"x": np.linspace(0, 1, s), "y": np.linspace(0, 1, s)},
        attrs={COMPLETE_ATTR: "yes", "mano_pde_schema": SCHEMA, "resolution": s, "n_samples": 3},
    )
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_i21_2x2_grids_are_refused_at_every_boundary(tmp_path, capsys):
    import scipy.io

    path = _tiny_grid_file(tmp_path / "two.nc")
    with pytest.raises(DarcyDataError, match="grid is 2x2: at least 3 points per direction"):
        open_darcy(path)
    assert main(["info", str(path)]) == 2
    _one_error_line(capsys, "at least 3 points per direction", "info")
    argv = [*TRAIN, *FNO_TINY, "--data", str(path), "-o", str(tmp_path / "run")]
    argv[argv.index("--resolution") + 1] = "2"
    assert main(argv) == 2
    assert "at least 3 points" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    src = tmp_path / "two.mat"
    scipy.io.savemat(src, {"coeff": np.full((3, 2, 2), 2.0), "sol": np.zeros((3, 2, 2))})
    assert main(["import", str(src), "--no-progress", "-o", str(tmp_path / "imp.nc")]) == 2
    _one_error_line(capsys, "a grid of fewer than 3 points per direction", "import")
    assert not (tmp_path / "imp.nc").exists()


def test_i21_solver_maps_refuse_nan_fields_and_overflow_without_numpy_warnings():
    import warnings

    from solvers import lognormal_map, piecewise_constant_map

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="field holds 16 NaN or infinite value"):
            piecewise_constant_map(np.full((4, 4), np.nan))
        with pytest.raises(ValueError, match="field holds 1 NaN"):
            lognormal_map(np.array([[np.nan, 0.0], [0.0, 0.0]]))
        with pytest.raises(ValueError, match="over- or underflows"):
            lognormal_map(np.full((3, 3), 800.0))
        with pytest.raises(ValueError, match="over- or underflows"):
            lognormal_map(np.full((3, 3), -800.0))  # exp underflows to a permeability of 0
        assert np.isfinite(lognormal_map(np.ones((3, 3)), 2.0)).all()


# Raw tracebacks: damaged compressed chunks, bad shards, a malformed dask address.
def test_i21_a_damaged_compressed_chunk_names_the_file(good, tmp_path, capsys):
    import h5py

    bad = tmp_path / "damaged.nc"
    bad.write_bytes(good.read_bytes())
    with h5py.File(bad, "r") as f:
        info = f["a"].id.get_chunk_info(1)  # sample 1 of `a`: one zlib-compressed chunk
    data = bytearray(bad.read_bytes())
    for i in range(info.byte_offset + 2, info.byte_offset + info.size):
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert main(["info", str(bad)]) == 2
    _one_error_line(capsys, f"{bad}: variable a, samples 0-{N - 1} cannot be read", "info")
    with pytest.raises(DarcyDataError, match="is damaged"):
        load_arrays(bad)


def _shards_of(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A generate run of N samples stopped before the final write: its output path and shard folder."""
    from mano_pde.data import generate as generate_module

    def no_writer(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "s.nc"
    monkeypatch.setattr(generate_module, "DarcyWriter", no_writer)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(DarcyConfig(n_samples=N, resolution=S, seed=1), out, chunk_size=1, progress=False)
    monkeypatch.undo()
    return out, tmp_path / "s.nc.parts"


def _replace_shard(parts: Path, data: bytes) -> None:
    """Replace shard 1 and record its digest, as damage that also updated the manifest would."""
    import json

    from mano_pde.files import sha256_bytes

    (parts / "chunk_000000001.npz").write_bytes(data)
    manifest = json.loads((parts / "manifest.json").read_text())
    manifest["shards"]["1"]["sha256"] = sha256_bytes(data)
    (parts / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("content", ["NaN", "pickled"])
def test_i21_a_shard_that_cannot_give_a_valid_file_is_computed_again(content, good, tmp_path, monkeypatch, caplog):
    import io
    import logging

    out, parts = _shards_of(tmp_path, monkeypatch)
    buf = io.BytesIO()
    if content == "NaN":
        np.savez(buf, a=np.full((1, S, S), np.nan, "f4"), u=np.zeros((1, S, S), "f4"))
        phrase = "holds NaN or infinite values"
    else:
        np.savez(buf, a=np.array([{"x": 1}], dtype=object), u=np.zeros((1, S, S), "f4"))
        phrase = "holds pickled objects, not plain arrays (never loaded)"
    _replace_shard(parts, buf.getvalue())
    with caplog.at_level(logging.WARNING):
        generate_darcy(DarcyConfig(n_samples=N, resolution=S, seed=1), out, chunk_size=1, progress=False)
    assert f"chunk_000000001.npz {phrase}: computing samples 1-1 again" in caplog.text
    with open_darcy(out) as got, open_darcy(good) as want:
        xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    assert sorted(os.listdir(tmp_path)) == ["s.nc"]


def test_i21_a_malformed_scheduler_address_fails_fast_and_clean(tmp_path):
    pytest.importorskip("distributed")
    argv = [*GEN, "--scheduler", "not-an-address", "-o", str(tmp_path / "x.nc")]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mano_pde.cli", *argv], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2
    assert "cannot connect to the dask scheduler at 'not-an-address'" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert elapsed < 30, elapsed  # was: the message, then a 60 s stall in Client.__del__
    assert os.listdir(tmp_path) == []


# --- issue 21: training and runs ---
# Each case failed before issue 21: a silent wrong result (exit 0), a raw traceback, or a message without the
# file, key or tensor.
def _seed_file(good: Path, path: Path, seed: int) -> Path:
    return generate_darcy(DarcyConfig(n_samples=N, resolution=S, seed=seed), path, progress=False)


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--lr", "inf"], "lr (--lr) must be a finite number > 0, got inf"),
        (["--lr", "nan"], "lr (--lr) must be a finite number > 0, got nan"),
        (["--scheduler", "step", "--gamma", "nan"], "gamma (--gamma) must be a finite number > 0, got nan"),
        (["--weight-decay", "nan"], "weight_decay (--weight-decay) must be a finite number >= 0, got nan"),
        (["--weight-decay", "-0.1"], "weight_decay (--weight-decay) must be a finite number >= 0, got -0.1"),
        (["--scheduler", "step", "--step-size", "0"], "step_size (--step-size) must be an int >= 1"),
        (["--seed", str(2**70)], "seed (--seed) must be an int in [0, 2**32 - 1], got 1180591620717411303424"),
        (["--seed", "-1"], "seed (--seed) must be an int in [0, 2**32 - 1], got -1"),
        (["--loss", "h1", "--resolution", "3"], "--loss h1 needs grids of at least 4 points per direction"),
    ],
)
def test_train_refuses_bad_hyperparameters_before_writing(extra, phrase, good, tmp_path, capsys):
    argv = [*TRAIN, *FNO_TINY, "--data", str(good), *extra]  # --resolution 3 adds a grid: min 3
    assert main([*argv, "-o", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, phrase, "train")
    assert os.listdir(tmp_path) == []


def test_train_stops_when_an_epoch_leaves_non_finite_weights(good, tmp_path, monkeypatch, capsys):
    """One batch per epoch: the loss guard never sees the diverged weights, the per-epoch check does."""
    import torch

    real_step = torch.optim.Adam.step

    def step_to_inf(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step_to_inf)
    out = tmp_path / "r"
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "the weights (" in err and "became NaN or infinite in epoch 1; training stopped" in err, err
    assert len(err.splitlines()) == 1
    assert not (out / "model_state_dict.pt").exists() and not (out / "log.csv").exists()


def test_evaluate_refuses_non_finite_weights_naming_the_tensor(tiny_run, good, tmp_path, capsys):
    import torch

    from mano_pde.models import load_model, save_model
    from mano_pde.training.manifest import read_manifest, write_manifest

    run = _copy_run(tiny_run, tmp_path / "run")
    model = load_model(run)
    name = next(k for k, v in model.state_dict().items() if isinstance(v, torch.Tensor) and v.is_floating_point())
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = float("nan")
    save_model(model, run, record={"train_resolutions": [S]})  # a consistent run whose weights are NaN
    write_manifest(run, read_manifest(run).epoch, read_manifest(run).data)
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, f"the weights hold NaN or infinite values (tensor {name}", "evaluate")
    assert not (tmp_path / "res").exists()


def test_a_second_train_on_the_same_output_is_refused(good, tmp_path, capsys):
    from mano_pde.data._output import output_lock

    out = tmp_path / "r"
    with output_lock(Path(os.path.abspath(out)), "train"):  # as a first `train` holds it
        assert main([*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(out)]) == 2
    _one_error_line(
        capsys, f"another mano-pde train is writing {Path(os.path.abspath(out))} (pid {os.getpid()})", "train"
    )
    assert not out.exists()


def test_train_into_a_read_only_folder_is_one_line(good, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    assert main([*TRAIN, *FNO_TINY, "--data", str(good), "-o", str(ro / "run")]) == 2
    _one_error_line(capsys, f"the folder {ro} is not writable", "train")
    assert os.listdir(ro) == []


def test_resume_refuses_a_data_file_replaced_by_another_seed(good, tmp_path, capsys):
    import shutil

    data = Path(shutil.copy(good, tmp_path / "d.nc"))
    argv = [*TRAIN, *FNO_TINY, "--data", str(data), "--epochs", "2", "-o", str(tmp_path / "r")]
    assert main(argv) == 0
    _seed_file(good, tmp_path / "other.nc", seed=2).replace(data)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    assert main([*argv, "--resume"]) == 2
    _one_error_line(capsys, f"training data {data} (was {data}): seed 1 -> 2", "train")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_evaluate_keeps_the_overlap_rule_of_the_recorded_training_data(good, tmp_path, capsys):
    """The training file replaced by another seed's: a test file of the training seed still overlaps the run's
    training samples, and evaluate knows it from run.json (before: it compared with the replacement)."""
    import shutil

    data = Path(shutil.copy(good, tmp_path / "d.nc"))
    run = tmp_path / "r"
    assert main([*TRAIN, *FNO_TINY, "--data", str(data), "-o", str(run)]) == 0
    _seed_file(good, tmp_path / "other.nc", seed=2).replace(data)
    assert main(_eval_argv(run, good, tmp_path / "res", "--n-test", "2")) == 2
    _one_error_line(capsys, f"{good} holds the samples r trained on (its first 2)", "evaluate")
    # another test file of the same generator (another seed) is legitimate
    assert main(_eval_argv(run, data, tmp_path / "res", "--n-test", "2")) == 0


@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    [
        ("resolutions", "9", "config.json: resolutions must be a list of int, got '9' (str)"),
        ("n_test", "1", "config.json: n_test must be an int, got '1' (str)"),
        ("lr", "0.001", "config.json: lr must be a number, got '0.001' (str)"),
        ("n_train", [True], "config.json: n_train must be a list of int, got [True] (list)"),
    ],
)
def test_config_json_of_the_wrong_type_names_file_and_key(key, value, phrase, tiny_run, good, tmp_path, capsys):
    import json

    run = _copy_run(tiny_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config[key] = value
    (run / "config.json").write_text(json.dumps(config))
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, phrase, "evaluate")


def test_config_json_claiming_another_grid_than_the_model_is_refused(tiny_run, good, tmp_path, capsys):
    import json

    run = _copy_run(tiny_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["resolutions"] = [5]
    (run / "config.json").write_text(json.dumps(config))
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, "config.json says the run trained on the grid(s) [5], but model_config.json records "
                    "train_resolutions [9]", "evaluate")  # fmt: skip


def test_a_two_channel_normalizers_json_is_named(tiny_run, good, tmp_path, capsys):
    import json

    run = _copy_run(tiny_run, tmp_path / "run")
    norms = json.loads((run / "normalizers.json").read_text())
    norms["x"]["mean"], norms["x"]["std"] = [1.0, 2.0], [1.0, 1.0]
    (run / "normalizers.json").write_text(json.dumps(norms))
    assert main(_eval_argv(run, good, tmp_path / "res")) == 2
    _one_error_line(capsys, f"{run / 'normalizers.json'}: the x (permeability) normaliser has 2 mean", "evaluate")


def _spec_record() -> dict:
    from mano_pde.experiments.spec import load_spec

    return load_spec("darcy-cpu").to_dict()


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda r: r["targets"].append({**r["targets"][0], "left": {"model": "nope", "method": "direct", "grid": 65}}),
         "left.model = 'nope' is trained by no run of arm"),
        (lambda r: r["targets"].append({**r["targets"][0], "left": {"run": "nope", "method": "direct", "grid": 65}}),
         "left.run = 'nope' is not a model of arm"),
        (lambda r: r["targets"][0]["left"].update(grid="65"), "left.grid must be an int, got '65' (str)"),
        (lambda r: r["train"].update(n_test="3"), "train.n_test must be an int, got '3' (str)"),
        (lambda r: next(iter(r["arms"].values())).update(models="mano"), ".models must be a list of string"),
    ],
)  # fmt: skip
def test_spec_targets_and_types_are_checked_at_load(change, phrase):
    from mano_pde.experiments.spec import ExperimentSpec

    record = _spec_record()
    change(record)
    with pytest.raises(UserInputError, match=None) as err:
        ExperimentSpec.from_dict(record)
    assert phrase in str(err.value), str(err.value)


@pytest.mark.parametrize("rank", [0.0, -0.5, 0, -3])
def test_tfno_rank_out_of_range_is_refused(rank):
    from mano_pde.models import create_model

    with pytest.raises(UserInputError, match="rank must be"):
        create_model("tfno", rank=rank, hidden_channels=4, n_modes=[4, 4], n_layers=1)


def test_predict_validates_its_input_like_train(tiny_run):
    import torch

    from mano_pde.training import load_run

    run = load_run(tiny_run)
    a = torch.rand(3, 1, S, S) + 1.0
    np.testing.assert_array_equal(run.predict(a.numpy()).numpy(), run.predict(a).numpy())  # numpy accepted
    cases = [
        (dict(a=torch.rand(2, S, S) + 1), r"must have shape \[N, 1, s, s\].*got \[2, 9, 9\] \(add the channel axis"),
        (dict(a=torch.ones(1, 2, S, S)), r"got \[1, 2, 9, 9\]"),
        (dict(a=torch.ones(0, 1, S, S)), "holds no samples"),
        (dict(a=-a), r"input sample\(s\) 0, 1, 2 hold a permeability <= 0"),
        (dict(a=a, sample_ids=[4]), "sample_ids names 1 samples but the permeability holds 3"),
        (dict(a=[[1.0]]), "must be a torch.Tensor or numpy array"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(UserInputError, match=pattern):
            run.predict(**kwargs)


def test_h1_on_a_3_point_grid_is_null_and_the_other_grids_are_kept(tiny_run, good, tmp_path, caplog):
    import json

    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(tiny_run), "--data", str(good), "--resolutions", "3", "5", "9", "--no-plots",
                     "-o", str(tmp_path / "res")]) == 0  # fmt: skip
    records = json.loads((tmp_path / "res" / "results.json").read_text())["records"]
    h1 = {r["test_resolution"]: r["rel_h1_mean"] for r in records if r["method"] == "direct"}
    assert h1[3] is None and all(isinstance(h1[s], float) for s in (5, 9)), h1
    assert "not reported on the 3-point grid" in caplog.text


# ------------------------------------------------------------------ integration fixes after the merges
def _renamed_model(record: dict, key: str) -> dict:
    record["models"] = {key: record["models"]["fno"]}
    record["arms"]["a"]["models"] = [key]
    return record


def _model_train(**train):
    def change(record: dict) -> dict:
        record["models"]["fno"]["train"] = train
        return record

    return change


def _tuned_with_arm_n_val(record: dict) -> dict:
    record["tuning"] = {"models": ["fno"], "space": {"fno": {"hidden_channels": [4]}}}
    record["arms"]["a"]["train"] = {"n_val": 1}  # trials never read an arm's table
    return record


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda r: _renamed_model(r, "../../escaped"), "models key '../../escaped' cannot name a folder"),
        (lambda r: _renamed_model(r, "a/b"), "models key 'a/b' cannot name a folder"),
        (lambda r: _renamed_model(r, ".."), "models key '..' cannot name a folder"),
        (_model_train(data="nope"), "models.fno.train.data = 'nope' names no entry of data"),
        (_model_train(test_data="nope"), "models.fno.train.test_data = 'nope' names no entry of data"),
        (_model_train(lr="fast"), "models.fno.train.lr"),
        (_tuned_with_arm_n_val, "set data and n_val > 0 in the experiment-wide [train] table"),
    ],
)
def test_fix_spec_keys_model_train_tables_and_tuning_tables_are_checked_at_load(change, phrase):
    """Model keys name folders (OUT/tuning/runs/<key>); models.<k>.train is typed and its data references checked;
    tuning needs data and n_val in the tables its trials read (not an arm's)."""
    from mano_pde.experiments import ExperimentSpec

    with pytest.raises(UserInputError, match=re.escape(phrase)):
        ExperimentSpec.from_dict(change(_spec()))
    ok = _spec()
    ok["train"]["n_val"] = 1
    ok["models"]["fno"]["train"] = {"data": "d", "lr": 1e-3}
    ExperimentSpec.from_dict(_tuned_with_arm_n_val(ok))  # the experiment-wide table holds them: accepted


def test_fix_evaluate_labels_runs_of_the_same_folder_name_apart(tiny_run, good, tmp_path, capsys):
    """Seeded runs are all named seed<k>: each is labelled by its shortest unique path suffix, unique names stay
    plain, and the same run given twice is refused."""
    import json

    from mano_pde.evaluation import evaluate

    a = _copy_run(tiny_run, tmp_path / "runs" / "mano" / "seed0")
    b = _copy_run(tiny_run, tmp_path / "runs" / "fno" / "seed0")
    recs = evaluate([a, b, tiny_run], good, [S], tmp_path / "res", n_test=1, plots=False)
    assert [r["run"] for r in recs] == ["mano/seed0", "fno/seed0", "fno"]
    meta = json.loads((tmp_path / "res" / "results.json").read_text())["meta"]
    assert sorted(meta["runs"]) == ["fno", "fno/seed0", "mano/seed0"]
    capsys.readouterr()
    argv = _eval_argv(a, good, tmp_path / "twice")
    argv.insert(1, str(a))
    assert main(argv) == 2
    _one_error_line(capsys, "is given twice", "evaluate")
    assert not (tmp_path / "twice").exists()


@pytest.mark.parametrize(("grid", "phrase"), [("2", "at least 3 points"), ("4", "is not reachable")])
def test_fix_evaluate_checks_resolutions_before_touching_the_output(grid, phrase, tiny_run, good, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(_eval_argv(tiny_run, good, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    argv = _eval_argv(tiny_run, good, out)
    argv[argv.index("--resolutions") + 1] = grid
    assert main(argv) == 2
    _one_error_line(capsys, phrase, "evaluate")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # results.complete.json kept


# --- hostile-input sweep, data side
# Cases of `mano-pde benchmark hostile-inputs` (generate, import, DarcyConfig) that were not a clear refusal.
def test_hs_seeds_beyond_int64_are_refused_and_the_largest_is_recorded_exactly(tmp_path, capsys):
    """generate/seed=huge: a seed the file's int64 attribute cannot hold was a raw TypeError after solving."""
    assert main([*GEN, "--seed", str(2**70), "-o", str(tmp_path / "x.nc")]) == 2
    _one_error_line(capsys, "seed (--seed) must be an int in [0, 2**63 - 1] (the file records it as int64)", "generate")
    assert os.listdir(tmp_path) == []  # no .parts, no .x.nc.PID.tmp
    out = generate_darcy(DarcyConfig(n_samples=1, resolution=5, seed=2**63 - 1), tmp_path / "max.nc", progress=False)
    with open_darcy(out) as ds:
        assert int(ds.attrs["seed"]) == 2**63 - 1


def test_hs_a_writer_failing_after_its_temporary_exists_leaves_nothing(tmp_path):
    from mano_pde.data.schema import DarcyWriter

    with pytest.raises(TypeError, match="illegal data type for attribute"):
        DarcyWriter(tmp_path / "x.nc", 1, 3, {"too_big": 2**70})  # netCDF attributes hold at most int64
    assert os.listdir(tmp_path) == []


def test_hs_darcy_config_type_errors_show_the_value_and_its_type():
    with pytest.raises(UserInputError, match=re.escape("n_samples must be an int, got '3' (str)")):
        DarcyConfig(n_samples="3")
    with pytest.raises(UserInputError, match=re.escape("seed must be an int, got 1.0 (float)")):
        DarcyConfig(seed=1.0)
    with pytest.raises(UserInputError, match=re.escape("n_samples (--n-samples) must be an int in [1, 2**63 - 1]")):
        DarcyConfig(n_samples=2**70)  # the file records it as int64 (generate ran until killed)


@pytest.mark.parametrize(("option", "value"), [("--alpha", "1e300"), ("--tau", "1e300"), ("--tau", "1e-300")])
def test_hs_grf_parameters_whose_field_float64_cannot_compute_are_refused(option, value, tmp_path, capsys):
    """generate/alpha=huge, tau=huge: a raw OverflowError (or a field of zeros: every sample the same a)."""
    assert main([*GEN, option, value, "-o", str(tmp_path / "x.nc")]) == 2
    _one_error_line(capsys, "gives a random field of scale about 10^", "generate")
    assert os.listdir(tmp_path) == []


def test_hs_grf_spectrum_is_computed_without_overflow_inside_the_valid_range():
    import warnings

    from solvers import check_grf_parameters, grf_spectrum

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coef = grf_spectrum(9, 5.0, 1e100)  # tau ** (alpha - 1) overflows, the coefficients (about 1e-100) do not
    assert np.isfinite(coef).all() and coef[0, 0] == 0
    np.testing.assert_allclose(coef[0, 1:3], [1e-100, 1e-100], rtol=1e-12)
    k = np.arange(9.0)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    reference = 3.0 * (np.pi**2 * k2 + 9.0) ** -1.0  # the FNO benchmark's alpha=2, tau=3: the reference formula
    reference[0, 0] = 0.0
    assert np.array_equal(grf_spectrum(9), reference)  # bit-identical: files of earlier versions stay reproducible
    with pytest.raises(ValueError, match="float64 loses so small a field"):
        check_grf_parameters(1e300, 3.0)


@pytest.mark.parametrize("planted", ["symlink-to-folder", "dangling-symlink", "file"])
def test_hs_a_planted_shard_folder_is_refused_and_never_followed(planted, tmp_path, capsys):
    """generate/parts-symlink-to-folder, parts-is-a-file: rmtree/NotADirectoryError tracebacks and a leftover."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    work = tmp_path / "work"
    work.mkdir()
    parts = work / "out.nc.parts"
    if planted == "symlink-to-folder":
        parts.symlink_to(victim)
    elif planted == "dangling-symlink":
        parts.symlink_to(tmp_path / "nowhere")
    else:
        parts.write_text("not a folder")
    assert main([*GEN, "-o", str(work / "out.nc")]) == 2
    what = "is not a folder" if planted == "file" else "is a symbolic link"
    _one_error_line(capsys, f"the shard folder {parts} {what}; remove {parts}", "generate")
    assert os.listdir(work) == ["out.nc.parts"]  # nothing written: no .tmp, no lock, no file
    assert os.listdir(victim) == ["keep.txt"] and not (tmp_path / "nowhere").exists()


def _mat_source(good: Path, path: Path, change=None) -> Path:
    """The 3 samples of ``good`` as an FNO-paper .mat file (``coeff``, ``sol``), ``change(a, u)`` applied."""
    import scipy.io

    arrays = load_arrays(good, dtype="float64")
    a, u = arrays["a"], arrays["u"]
    if change is not None:
        change(a, u)
    scipy.io.savemat(path, {"coeff": a, "sol": u})
    return path


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--high", "1e300"], "--high 1e+300 cannot be stored in float32 (above its range"),
        (["--low", "1e-300"], "--low 1e-300 cannot be stored in float32 (below its range"),
    ],
)
def test_hs_import_options_the_storage_dtype_cannot_hold_are_refused_first(extra, phrase, good, tmp_path, capsys):
    """import/high=huge: refused only after writing, with numpy's overflow warning, blaming the source."""
    import warnings

    src = _mat_source(good, tmp_path / "src.mat")
    argv = ["import", str(src), "--no-progress", *extra, "-o", str(tmp_path / "out.nc")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" reached stderr
        assert main(argv) == 2
    _one_error_line(capsys, phrase, "import")
    assert sorted(os.listdir(tmp_path)) == ["src.mat"]
    assert main([*argv, "--dtype", "float64"]) == 0  # float64 holds them


def test_hs_non_finite_values_are_refused_before_the_grid_heuristics(good, tmp_path, capsys, caplog):
    """import/src-nan-pressure: a false "u = 0 everywhere" warning came first, then the refusal."""
    import logging

    from mano_pde.data.importers import detect_grid

    def inf_pressure(a, u):
        u[1, 4, 4] = np.inf

    src = _mat_source(good, tmp_path / "n.mat", inf_pressure)
    with caplog.at_level(logging.WARNING):
        assert main(["import", str(src), "--no-progress", "-o", str(tmp_path / "out.nc")]) == 2
    _one_error_line(capsys, "n.mat: sol of sample 1 holds NaN or infinite values", "import")
    assert "everywhere" not in caplog.text and "grid geometry" not in caplog.text, caplog.text
    assert sorted(os.listdir(tmp_path)) == ["n.mat"]
    u = np.ones((2, 6, 6))
    u[0, 2, 2] = np.nan
    assert "(u holds NaN or infinite values in the samples read)" in detect_grid(u).evidence


def test_hs_counts_the_machine_cannot_honour_are_refused_up_front(tmp_path, capsys, monkeypatch):
    """generate --n-samples 2**70 ran until killed; --dask-workers 2**70 stalled >= 60 s (here: memory and disk
    made small, so the refusals are those of a machine too small for the request)."""
    import collections

    from mano_pde.data import generate as generate_module

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(generate_module.shutil, "disk_usage", lambda folder: usage(10**6, 10**6 - 1000, 1000))
    assert main([*GEN, "-o", str(tmp_path / "x.nc")]) == 2  # 3 samples at 9x9 in float32: 1944 bytes of shards
    _one_error_line(capsys, f"3 samples at {S}x{S} need at least 1.9 KiB of disk", "generate")
    monkeypatch.undo()
    monkeypatch.setattr(generate_module, "_physical_memory", lambda: 2**30)
    assert main([*GEN, "--workers", "32", "-o", str(tmp_path / "x.nc")]) == 2
    _one_error_line(capsys, "--workers 32 asks for more worker processes than this machine can hold", "generate")
    assert os.listdir(tmp_path) == []


def test_hs_a_local_dask_cluster_larger_than_memory_is_refused_at_once(tmp_path):
    pytest.importorskip("distributed")
    argv = [*GEN, "--dask-workers", str(2**70), "-o", str(tmp_path / "x.nc")]
    proc = subprocess.run([sys.executable, "-m", "mano_pde.cli", *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith(f"mano-pde generate: error: --dask-workers {2**70} asks for more worker processes") and (
        len(err.splitlines()) == 1
    ), err
    assert os.listdir(tmp_path) == []


def test_hs_an_output_inside_a_file_is_refused_in_one_line(tmp_path, capsys):
    """generate/output-folder-is-a-file: the shard-folder check must leave this case to the output check."""
    (tmp_path / "victim.txt").write_text("mine")
    assert main([*GEN, "-o", str(tmp_path / "victim.txt" / "out.nc")]) == 2
    _one_error_line(capsys, f"{tmp_path / 'victim.txt'} is a file, not a folder", "generate")
    assert os.listdir(tmp_path) == ["victim.txt"] and (tmp_path / "victim.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["info", "import"])
def test_hs_a_fifo_given_as_input_is_refused_instead_of_blocking(command, tmp_path):
    """info/fifo: `mano-pde info f.nc` on a named pipe blocked until killed (import read it the same way)."""
    os.mkfifo(tmp_path / "f.nc")
    argv = [command, "f.nc"] + (["--no-progress", "-o", "out.nc"] if command == "import" else [])
    proc = subprocess.run(
        [sys.executable, "-m", "mano_pde.cli", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith(f"mano-pde {command}: error: f.nc is a FIFO (named pipe), not a"), err
    assert len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == ["f.nc"]


# --- hostile-input sweep, training side
# Each case was found by `mano-pde benchmark hostile-inputs` (its case id in the comment) and failed before its fix:
# a raw traceback, a run until killed, a study that ran for nothing, a leftover folder or a silent acceptance.
def _tiny_spec(tmp_path: Path, change=None) -> Path:
    """The sweep's tiny spec (4 samples at 9², one FNO epoch) as ``spec.toml``, changed by ``change(record)``."""
    from mano_pde.benchmarks.hostile_cases import _spec_record as tiny_record
    from mano_pde.benchmarks.hostile_cases import to_toml

    record = tiny_record()
    if change is not None:
        change(record)
    path = tmp_path / "spec.toml"
    path.write_text(to_toml(record))
    return path


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--lr", "1e300"], "lr (--lr) = 1e+300 cannot be held by float32"),  # train/lr=huge
        (["--lr", "1e-300"], "lr (--lr) = 1e-300 cannot be held by float32"),  # flushes to 0: never trains
        (["--weight-decay", "1e300"], "weight_decay (--weight-decay) = 1e+300 cannot be held by float32"),
        (["--scheduler", "step", "--gamma", "1e300"], "gamma (--gamma) = 1e+300 cannot be held by float32"),
        (["--scheduler", "step", "--step-size", "1", "--gamma", "1e30", "--epochs", "3"],
         "grows the learning rate 2 times over 3 epochs"),  # lr 1e-3 -> 1e57: beyond float32 at epoch 3
        (["--epochs", str(2**70)], "epochs (--epochs) must be at most 1,000,000"),  # train/epochs=huge
        (["--hidden-channels", str(2**70)], "hidden_channels=1180591620717411303424 is beyond the largest size"),
    ],
)  # fmt: skip
def test_hs_train_refuses_values_torch_cannot_hold_before_writing(extra, phrase, good, tmp_path, capsys):
    argv = [*TRAIN, *FNO_TINY, "--data", str(good)]
    for flag in {a for a in extra if a.startswith("--")} & set(argv):  # the case's value replaces the tiny run's
        del argv[argv.index(flag) : argv.index(flag) + 2]
    assert main([*argv, *extra, "-o", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, phrase, "train")
    assert os.listdir(tmp_path) == []


def test_hs_train_config_bounds_hold_for_the_python_api_too():
    from mano_pde.training import TrainConfig

    base = {"model": "fno", "data": "d.nc", "resolutions": [9], "n_train": [2]}
    TrainConfig(**base, epochs=10**6, lr=3e38, weight_decay=0.0)  # the largest accepted values
    TrainConfig(**{**base, "model": "FNO"})  # the registry's spelling rules: case and _/- do not matter
    for bad, phrase in (
        ({"epochs": 10**6 + 1}, "must be at most 1,000,000"),
        ({"lr": 1e39}, "cannot be held by float32"),
        ({"model": "nope"}, "unknown model 'nope'; available models: ['fno', 'global-attention', 'mano'"),
    ):  # api/train-config-model-unknown: accepted before, the CLI alone checked the name
        with pytest.raises(UserInputError, match=re.escape(phrase)):
            TrainConfig(**{**base, **bad})


def test_hs_train_config_checks_the_model_name_without_torch():
    code = (
        "import sys\nfrom mano_pde.training.config import TrainConfig\n"
        "try:\n    TrainConfig(model='nope', data='d.nc', resolutions=[9], n_train=[2])\n"
        "except ValueError as e:\n    print('refused' if 'unknown model' in str(e) else e)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["refused", "False"]


def _size_keywords() -> list[tuple[str, str]]:
    from mano_pde.models.hyperparameters import _is_size
    from mano_pde.models.registry import list_models, model_parameters

    return [(m, k) for m in list_models() for k, spec in model_parameters(m).items() if _is_size(spec)]


def test_hs_every_integer_size_keyword_of_every_model_is_bounded():
    """api/create-model-huge-width: 2**70 in any size keyword was torch's overflow TypeError with C++ frames."""
    from mano_pde.models import create_model

    pairs = _size_keywords()
    names = {k for _, k in pairs}
    assert {"hidden_channels", "n_layers", "n_heads", "head_dim", "n_modes", "window_size", "factor"} <= names
    for model, key in pairs:
        value = [2**70, 2**70] if key in ("n_modes", "max_n_modes") else 2**70
        with pytest.raises(UserInputError, match=rf"create_model\('{model}'\): {key}=.* is beyond the largest size"):
            create_model(model, **{key: value})


@pytest.mark.parametrize(
    ("model", "kwargs", "phrase"),
    [
        ("fno", {"hidden_channels": 60_000}, "more than this machine's memory"),
        ("fno", {"n_layers": 60_000}, "n_layers=60000 has 35,452,804,481 parameters"),  # 1 + 2 layers, extrapolated
        ("mano", {"hidden_channels": 65_536}, "more than this machine's memory"),
        ("mano", {"mlp_ratio": 1e300}, "mlp_ratio=1e+300 gives a hidden width of 6.4e+301"),
        ("tfno", {"rank": 1e300}, "torch cannot form the tensor shapes"),
    ],
)
def test_hs_models_no_machine_holds_are_refused_before_allocating(model, kwargs, phrase, monkeypatch):
    from mano_pde.models import create_model, registry

    monkeypatch.setattr(registry, "_physical_memory", lambda: 64 * 2**30)  # the same verdict on every machine
    with pytest.raises(UserInputError, match=re.escape(phrase)):
        create_model(model, **kwargs)


def test_hs_the_memory_estimate_keeps_the_random_state_and_the_weights():
    import torch

    from mano_pde.models import create_model, model_builder

    for name in ("fno", "tfno", "mano"):
        torch.manual_seed(0)
        built = create_model(name, n_layers=3, hidden_channels=8).state_dict()
        after = torch.rand(1)
        torch.manual_seed(0)
        plain = model_builder(name)(in_channels=1, out_channels=1, n_layers=3, hidden_channels=8).state_dict()
        assert torch.equal(after, torch.rand(1))
        assert all(torch.equal(built[k], plain[k]) for k in plain if isinstance(plain[k], torch.Tensor))


def test_hs_benchmark_epochs_beyond_the_bound_is_refused_before_the_study(tmp_path, capsys, monkeypatch):
    """spec/epochs=huge: `benchmark darcy --epochs 2**70` generated the data and trained until killed."""
    monkeypatch.chdir(tmp_path)
    _tiny_spec(tmp_path)
    assert main(["benchmark", "darcy", "--spec", "spec.toml", "--epochs", str(2**70), "-o", "study"]) == 2
    _one_error_line(capsys, "epochs (--epochs) must be at most 1,000,000", "benchmark")
    assert sorted(os.listdir(tmp_path)) == ["spec.toml"]
    spec = _spec_record()
    spec["tuning"] = {"models": [next(iter(spec["models"]))], "epochs": 2**70}
    with pytest.raises(UserInputError, match=r"tuning.epochs must be at most 1,000,000"):
        from mano_pde.experiments.spec import ExperimentSpec

        ExperimentSpec.from_dict(spec)


def test_hs_benchmark_workers_beyond_memory_are_refused_before_the_study_folder(tmp_path, capsys, monkeypatch):
    """spec/workers=huge: `benchmark darcy --workers 2**70` was refused by generate, after `study/` was created."""
    from mano_pde.experiments import load_spec, run_experiment

    monkeypatch.chdir(tmp_path)
    _tiny_spec(tmp_path)
    assert main(["benchmark", "darcy", "--spec", "spec.toml", "--workers", str(2**70), "-o", "study"]) == 2
    _one_error_line(capsys, f"--workers {2**70} asks for more worker processes than this machine can hold", "benchmark")
    assert sorted(os.listdir(tmp_path)) == ["spec.toml"]
    with pytest.raises(UserInputError, match="asks for more worker processes"):  # the Python API checks it too
        run_experiment(load_spec(tmp_path / "spec.toml"), tmp_path / "study2", workers=2**70, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["spec.toml"]


@pytest.mark.parametrize("kind", ["folder", "missing-folder", "trailing-slash", "docs-is-a-file", "docs-link"])
def test_hs_update_benchmarks_target_is_checked_before_the_study(kind, tmp_path, capsys, monkeypatch):
    """spec/update-benchmarks-is-folder: the whole study ran, the plots were copied to ./docs/darcy-study, then a
    raw IsADirectoryError."""
    monkeypatch.chdir(tmp_path)
    _tiny_spec(tmp_path)
    target, phrase = {
        "folder": ("bdir", "--update-benchmarks bdir is a folder, not a file"),
        "missing-folder": ("nope/B.md", "the folder"),
        "trailing-slash": ("bdir/", "names a folder"),
        "docs-is-a-file": ("B.md", "docs is a file, not a folder"),
        "docs-link": ("B.md", "docs is a link, not a folder"),
    }[kind]
    if kind == "folder":
        (tmp_path / "bdir").mkdir()
    if kind == "docs-is-a-file":
        (tmp_path / "docs").write_text("the user's notes\n")
    if kind == "docs-link":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "docs").symlink_to("elsewhere")
    before = sorted(os.listdir(tmp_path))
    assert main(["benchmark", "darcy", "--spec", "spec.toml", "--update-benchmarks", target, "-o", "study"]) == 2
    _one_error_line(capsys, phrase, "benchmark")
    assert sorted(os.listdir(tmp_path)) == before  # no study folder, no docs/


def test_hs_plots_are_copied_beside_the_benchmarks_file_never_through_a_link(tmp_path):
    from mano_pde.benchmarks.darcy import copy_plots

    out = tmp_path / "study"
    (out / "results" / "a").mkdir(parents=True)
    (out / "results" / "a" / "predictions.png").write_bytes(b"png")
    docs = tmp_path / "site" / "docs" / "darcy-study"
    docs.mkdir(parents=True)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"the user's")
    (docs / "a-predictions.png").symlink_to(victim)
    assert copy_plots(out, tmp_path / "site" / "BENCHMARKS.md", ["a"]) == ["docs/darcy-study/a-predictions.png"]
    assert victim.read_bytes() == b"the user's"
    assert (docs / "a-predictions.png").read_bytes() == b"png" and not (docs / "a-predictions.png").is_symlink()


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (
            lambda r: r["data"]["d"]["generate"].update(n_samples=0),
            "data.d.generate.n_samples (--n-samples) must be an int in [1, 2**63 - 1]",
        ),
        (lambda r: r["data"]["d"]["generate"].update(bogus=1), "data.d.generate.bogus is not a generator parameter"),
        (lambda r: r["data"]["d"]["generate"].update(alpha="2"), "data.d.generate.alpha must be a number, got '2'"),
        (lambda r: r["data"]["d"]["generate"].update(permeability_map="x"),
         "data.d.generate: unknown permeability map 'x'"),
    ],
)  # fmt: skip
def test_hs_spec_generate_tables_are_checked_at_load(change, phrase, tmp_path, capsys, monkeypatch):
    """spec/generate-n-samples-0, spec/generate-unknown-key: checked after `study/` was made (left empty), and the
    message was `DarcyConfig.__init__() got an unexpected keyword argument 'bogus'`."""
    monkeypatch.chdir(tmp_path)
    _tiny_spec(tmp_path, change)
    assert main(["benchmark", "darcy", "--spec", "spec.toml", "-o", "study"]) == 2
    _one_error_line(capsys, phrase, "benchmark")
    assert sorted(os.listdir(tmp_path)) == ["spec.toml"]


def test_hs_spec_folder_and_output_file_are_one_clear_line(tmp_path, capsys, monkeypatch):
    """spec/is-a-folder said "does not exist"; spec/output-is-a-file printed a bare `[Errno 17] File exists`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.toml").mkdir()
    assert main(["benchmark", "darcy", "--spec", "dir.toml", "-o", "study"]) == 2
    _one_error_line(capsys, "experiment spec dir.toml is a folder, not a TOML file", "benchmark")
    _tiny_spec(tmp_path)
    (tmp_path / "notes.txt").write_text("the user's notes\n")
    assert main(["benchmark", "darcy", "--spec", "spec.toml", "-o", "notes.txt"]) == 2
    _one_error_line(capsys, "the experiment folder -o notes.txt is an existing file, not a folder", "benchmark")
    assert (tmp_path / "notes.txt").read_text() == "the user's notes\n"
    assert sorted(os.listdir(tmp_path)) == ["dir.toml", "notes.txt", "spec.toml"]


def test_hs_train_on_constant_pressure_leaves_no_run_folder(good, tmp_path, capsys):
    """train/constant-pressure: refused, but only after the (then empty) run folder had been made."""
    data = _variant(good, tmp_path / "u0.nc", _set("u", slice(None), 0.0))
    assert main([*TRAIN, *FNO_TINY, "--data", str(data), "-o", str(tmp_path / "r")]) == 2
    _one_error_line(capsys, "has mean 0 and standard deviation 0", "train")
    assert os.listdir(tmp_path) == ["u0.nc"]
