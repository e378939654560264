"""Crash safety at exact points (issue 11, items F1-F11): atomic writes, verified shards and training states,
no leftovers, pool workers that die with their parent, evaluation outputs written as one set.

Failures are injected deterministically: a monkeypatched write or rename that raises ``KeyboardInterrupt`` at a
named file, leftovers of a process that is gone (a temporary name carrying a dead pid), damaged files, or a
subprocess killed once a named file appears.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from mano_pde import files
from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy, open_darcy
from mano_pde.data import generate as generate_module
from mano_pde.data.shards import ShardFolder
from mano_pde.evaluation.evaluate import COMPLETE_MARKER
from mano_pde.training.state import PREVIOUS_STATE_FILE, STATE_FILE, STATE_INDEX

CONFIG = DarcyConfig(n_samples=6, resolution=9, seed=3)
CHUNK = 2


def _dead_pid() -> int:
    """The pid of a process that has exited (leftovers carry the pid of their writer)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted file that every interrupted-and-resumed run must equal."""
    return generate_darcy(CONFIG, tmp_path_factory.mktemp("ref") / "ref.nc", chunk_size=CHUNK, progress=False)


def _assert_same_data(path: Path, reference: Path) -> None:
    with open_darcy(path) as got, open_darcy(reference) as want:
        xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())


def _raise_on_replace(monkeypatch, name_part: str, exc: type[BaseException] = KeyboardInterrupt) -> list[str]:
    """Make ``os.replace`` raise ``exc`` once when its target's name contains ``name_part``."""
    real = os.replace
    hits: list[str] = []

    def replace(src, dst, *args, **kwargs):
        if name_part in Path(dst).name and not hits:
            hits.append(str(dst))
            raise exc
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return hits


# ------------------------------------------------------------------------------------------ the helper itself
def test_atomic_write_keeps_the_old_file_and_leaves_no_temp_on_interrupt(tmp_path):
    target = tmp_path / "a.json"
    files.atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), files.atomic_write(target) as fh:
        fh.write("new, half written")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_remove_stale_temps_spares_live_processes(tmp_path):
    dead = tmp_path / f".x.nc.{_dead_pid()}.tmp"
    live = tmp_path / f".x.nc.{os.getppid()}.tmp"  # the parent of this process is alive
    other = tmp_path / f".y.nc.{_dead_pid()}.tmp"
    folder = tmp_path / f".x.nc.parts.{_dead_pid()}.tmp"
    for p in (dead, live, other):
        p.write_bytes(b"")
    folder.mkdir()
    (folder / "chunk.npz").write_bytes(b"1")
    removed = files.remove_stale_temps(tmp_path, ("x.nc", "x.nc.parts"))
    assert sorted(removed) == sorted([dead, folder])
    assert live.exists() and other.exists()


# ------------------------------------------------------------------------------------------ generate
def test_f1_interrupted_before_the_manifest_leaves_nothing_that_blocks(tmp_path, monkeypatch, reference):
    """F1: the shard folder appears only with its manifest; an older empty leftover is started over."""
    out = tmp_path / "f1.nc"
    real = files.atomic_write_text

    def manifest_interrupted(path, text):
        if Path(path).name == "manifest.json":
            raise KeyboardInterrupt
        return real(path, text)

    monkeypatch.setattr("mano_pde.data.shards.atomic_write_text", manifest_interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == []  # no .parts without manifest, no staging folder
    # what a SIGKILL at that instant left with earlier versions: an empty .parts, and a staging folder
    (tmp_path / "f1.nc.parts").mkdir()
    (tmp_path / f".f1.nc.parts.{_dead_pid()}.tmp").mkdir()
    generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["f1.nc"]


def test_f2_killed_while_removing_the_shards_reruns_cleanly(tmp_path, monkeypatch, reference):
    """F2: the file is in place but ``.parts`` was not removed: the rerun finishes the clean-up."""
    out = tmp_path / "f2.nc"

    def interrupted_remove(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(ShardFolder, "remove", interrupted_remove)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    assert out.is_file() and (tmp_path / "f2.nc.parts").is_dir()
    assert generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False) == out  # no "already exists"
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["f2.nc"]
    # a kill in the middle of the removal leaves the renamed folder: the next run on that output removes it
    (tmp_path / f".f2.nc.parts.{_dead_pid()}.tmp").mkdir()
    generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["f2.nc"]


#: Every instant between "the file is renamed into place" and "the clean-up is done" (``ShardFolder.remove``).
F2_INSTANTS = (
    "before .parts is renamed",
    "after .parts is renamed",
    "while the renamed folder is deleted",
    "at the end",
)


def _interrupt_the_clean_up(monkeypatch, out: Path, instant: str) -> None:
    """Make ``generate`` raise ``KeyboardInterrupt`` at ``instant`` of the shard folder's removal."""
    real_remove, real_rmtree = ShardFolder.remove, shutil.rmtree
    trash = f".{out.name}.parts."

    def rmtree(path, *args, **kwargs):  # deletes the renamed folder (and only it) partly or not at all
        if not Path(path).name.startswith(trash):
            return real_rmtree(path, *args, **kwargs)
        if instant == "while the renamed folder is deleted":  # rmtree got as far as the manifest and one shard
            (Path(path) / "manifest.json").unlink()
            next(Path(path).glob("chunk_*.npz")).unlink()
        raise KeyboardInterrupt

    def remove(self):
        if instant == "before .parts is renamed":
            raise KeyboardInterrupt
        real_remove(self)
        raise KeyboardInterrupt  # at the end: everything removed but the lock file

    if instant in ("before .parts is renamed", "at the end"):
        monkeypatch.setattr(ShardFolder, "remove", remove)
    else:
        monkeypatch.setattr(shutil, "rmtree", rmtree)


def _as_if_killed(folder: Path, out: Path) -> None:
    """What SIGKILL at the same instant leaves: the temporaries carry a dead pid, and the lock file stays."""
    dead = _dead_pid()
    for p in folder.glob(f".{out.name}.parts.{os.getpid()}.tmp"):
        p.rename(folder / f".{out.name}.parts.{dead}.tmp")
    (folder / f"{out.name}.lock").write_text(f"{dead} generate\n")


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGKILL"])
@pytest.mark.parametrize("instant", F2_INSTANTS)
def test_f2_a_kill_after_the_final_rename_is_finished_by_the_rerun(instant, how, tmp_path, monkeypatch, reference):
    """F2 at each instant of the clean-up: the rerun of the same command removes what is left and returns the file."""
    out = tmp_path / "f2.nc"
    _interrupt_the_clean_up(monkeypatch, out, instant)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    assert out.is_file()
    if how == "SIGKILL":
        _as_if_killed(tmp_path, out)
    left = sorted(os.listdir(tmp_path))
    if instant == "at the end" and how == "Ctrl-C":  # nothing is left: the run finished, a rerun is refused
        assert left == ["f2.nc"]
        with pytest.raises(FileExistsError, match="already exists"):
            generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    else:
        assert len(left) > 1, left
        assert generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False) == out  # no "already exists"
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["f2.nc"]


def test_f2_the_rerun_on_the_command_line_exits_0(tmp_path, monkeypatch, capsys, reference):
    """The worst leftover (a half-deleted renamed folder of a dead process and its lock file) through the CLI."""
    out = tmp_path / "data.nc"
    argv = ["generate", "--n-samples", "6", "--resolution", "9", "--seed", "3", "--chunk-size", "2", "--no-progress"]
    _interrupt_the_clean_up(monkeypatch, out, "while the renamed folder is deleted")
    assert main([*argv, "-o", str(out)]) == 130
    monkeypatch.undo()
    _as_if_killed(tmp_path, out)
    assert main([*argv, "-o", str(out)]) == 0, capsys.readouterr().err
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["data.nc"]
    assert main([*argv, "-o", str(out)]) == 2  # now it is finished: the next rerun is refused
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "existing", ["other seed", "fewer samples", "float64", "made by the user", "beside .parts of this run"]
)
def test_f2_leftovers_never_make_another_file_the_result(existing, tmp_path, monkeypatch):
    """Leftovers of a killed clean-up beside a file of another configuration, or one the user made: "already exists"."""
    out = tmp_path / "f2.nc"
    mine = dict(chunk_size=CHUNK, progress=False)
    wanted, dtype = CONFIG, "float32"
    if existing == "made by the user":
        out.write_bytes(b"CDF\x01 not a data file of mano_pde")
    else:
        config = {"other seed": CONFIG.replace(seed=4), "fewer samples": CONFIG.replace(n_samples=4)}.get(existing)
        generate_darcy(config or CONFIG, out, dtype="float64" if existing == "float64" else dtype, **mine)
    if existing == "beside .parts of this run":  # --overwrite with seed 4 over seed 3, stopped before writing
        wanted = CONFIG.replace(seed=4)

        def no_writer(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(generate_module, "DarcyWriter", no_writer)
        with pytest.raises(KeyboardInterrupt):
            generate_darcy(wanted, out, overwrite=True, **mine)
        monkeypatch.undo()
        manifest = (tmp_path / "f2.nc.parts" / "manifest.json").read_text()
    else:
        dead = _dead_pid()
        trash = tmp_path / f".f2.nc.parts.{dead}.tmp"
        trash.mkdir()
        (trash / "chunk_000000004.npz").write_bytes(b"1")
        (tmp_path / "f2.nc.lock").write_text(f"{dead} generate\n")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="already exists"):
        generate_darcy(wanted, out, dtype=dtype, **mine)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing touched
    if existing == "beside .parts of this run":  # the unfinished run is still there, to be resumed with --overwrite
        assert (tmp_path / "f2.nc.parts" / "manifest.json").read_text() == manifest


def test_f3_interrupt_inside_the_final_write_removes_the_temporary_file(tmp_path, monkeypatch, reference):
    """F3: Ctrl-C inside ``DarcyWriter.close()`` (the final fsync) leaves no ``.OUT.nc.PID.tmp``."""
    out = tmp_path / "f3.nc"
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(f".f3.nc.{os.getpid()}.tmp"):
            raise KeyboardInterrupt
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    assert not out.exists()
    assert _leftovers(tmp_path) == []
    # a SIGKILL at that point cannot clean up: the next run removes what the dead process left
    (tmp_path / f".f3.nc.{_dead_pid()}.tmp").write_bytes(b"\0" * 1000)
    generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["f3.nc"]


def _stop_before_writing(monkeypatch, out: Path) -> Path:
    """Compute every shard, then interrupt before the netCDF file is written."""

    def no_writer(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module, "DarcyWriter", no_writer)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    return out.with_name(out.name + ".parts")


@pytest.mark.parametrize("damage", ["truncated", "empty", "one byte changed", "unrecorded"])
def test_f4_a_damaged_shard_is_named_and_computed_again(damage, tmp_path, monkeypatch, caplog, reference):
    """F4: shards carry digests in the manifest; a bad shard is recomputed with a warning naming it."""
    out = tmp_path / "f4.nc"
    parts = _stop_before_writing(monkeypatch, out)
    manifest = json.loads((parts / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["0", "2", "4"]
    assert all(len(v["sha256"]) == 64 for v in manifest["shards"].values())
    shard = parts / "chunk_000000002.npz"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        shard.write_bytes(b"")
    elif damage == "one byte changed":
        i = len(data) - 200  # inside the stored array data
        shard.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    else:  # saved, but killed before its digest was recorded
        del manifest["shards"]["2"]
        (parts / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    assert "chunk_000000002.npz" in caplog.text and "computing samples 2-3 again" in caplog.text
    _assert_same_data(out, reference)
    assert not parts.exists()


def test_f4_a_shard_changed_after_the_check_is_not_written(tmp_path, monkeypatch, caplog, reference):
    """The write phase verifies each shard's bytes again (damage between the resume check and the write)."""
    out = tmp_path / "late.nc"
    parts = _stop_before_writing(monkeypatch, out)
    real_missing = ShardFolder.missing

    def missing_then_damage(self, chunks):
        todo = real_missing(self, chunks)
        (parts / "chunk_000000004.npz").write_bytes(b"junk")
        return todo

    monkeypatch.setattr(ShardFolder, "missing", missing_then_damage)
    with caplog.at_level(logging.WARNING):
        generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False)
    assert "chunk_000000004.npz changed since it was saved" in caplog.text
    _assert_same_data(out, reference)


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids |= {int(k) for k in text}
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the pool's processes")
def test_f5_pool_workers_die_with_a_killed_parent(tmp_path):
    """F5: SIGKILL of the main process alone: its pool workers (and the resource tracker) end too."""
    out = tmp_path / "f5.nc"
    cmd = [
        *(sys.executable, "-m", "mano_pde.cli", "generate", "--n-samples", "400", "--resolution", "65"),
        *("--chunk-size", "1", "--workers", "2", "--no-progress", "-o", str(out)),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "f5.nc.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("chunk_*.npz"))) < 2:
        time.sleep(0.02)
    kids = _children(proc.pid)
    assert len(kids) >= 2, "the pool did not start"
    proc.send_signal(signal.SIGKILL)  # the main process only, not its process group
    proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "pool processes outlived their parent"
    assert not out.exists()


def test_f6_a_killed_worker_is_one_clear_line_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    """F6: a pool worker killed mid-run gives the "rerun to resume" hint, not a BrokenProcessPool traceback."""
    out = tmp_path / "f6.nc"
    real_record = ShardFolder.record
    killed = []

    def record_then_kill_a_worker(self, start, stop, digest):
        real_record(self, start, stop, digest)
        if not killed:
            for pid in _children(os.getpid()):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break

    monkeypatch.setattr(ShardFolder, "record", record_then_kill_a_worker)
    # 129² samples take ~50 ms each: work is still pending when the first shard is recorded
    argv = ["generate", "--n-samples", "12", "--resolution", "129", "--seed", "3", "--chunk-size", "1"]
    assert main([*argv, "--workers", "2", "--no-progress", "-o", str(out)]) == 2
    assert killed
    err = capsys.readouterr().err.strip()
    assert "a worker process died" in err and "rerun the same command to resume" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    monkeypatch.undo()
    assert main([*argv, "--workers", "2", "--no-progress", "-o", str(out)]) == 0
    reference = generate_darcy(
        DarcyConfig(n_samples=12, resolution=129, seed=3), tmp_path / "ref.nc", chunk_size=12, progress=False
    )
    _assert_same_data(out, reference)


# ------------------------------------------------------------------------------------------ train
S = 9
TRAIN = [
    *("train", "--resolution", str(S), "--n-train", "3", "--n-test", "1", "--batch-size", "1", "--no-progress"),
    *("--model", "fno", "--hidden-channels", "4", "--n-modes", "4", "--n-layers", "1"),
]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    return generate_darcy(
        DarcyConfig(n_samples=4, resolution=S, seed=1), tmp_path_factory.mktemp("train") / "d.nc", progress=False
    )


def _train(train_file: Path, out: Path, epochs: int, *extra: str) -> int:
    return main([*TRAIN, "--data", str(train_file), "--epochs", str(epochs), *extra, "-o", str(out)])


@pytest.fixture(scope="module")
def three_epochs(train_file, tmp_path_factory) -> Path:
    """The uninterrupted 3-epoch run that resumed runs must reproduce."""
    out = tmp_path_factory.mktemp("ref_run") / "run"
    assert _train(train_file, out, 3) == 0
    return out


def _stopped_after(train_file: Path, out: Path, epoch: int, monkeypatch, epochs: int = 3) -> None:
    """A run of ``epochs`` epochs interrupted (Ctrl-C) right after epoch ``epoch`` was saved."""
    import mano_pde.training.trainer as trainer

    real = trainer.save_train_state

    def save_then_interrupt(folder, state):
        real(folder, state)
        if state["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_train_state", save_then_interrupt)
    assert _train(train_file, out, epochs) == 130
    monkeypatch.undo()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_state_dict.pt", weights_only=True)


def _assert_same_weights(run: Path, reference: Path) -> None:
    got, want = _weights(run), _weights(reference)
    assert got.keys() == want.keys()
    for k in got:
        assert torch.equal(got[k], want[k]), k


def test_f7_config_json_is_written_atomically_and_left_alone_on_resume(train_file, tmp_path, monkeypatch):
    """F7: a resume with the same configuration does not rewrite config.json; a write interrupted at the
    rename leaves no torn file (and the rerun starts the run)."""
    out = tmp_path / "run"
    hits = _raise_on_replace(monkeypatch, "config.json")
    assert _train(train_file, out, 2) == 130  # interrupted (the CLI catches KeyboardInterrupt)
    monkeypatch.undo()
    assert hits and not (out / "config.json").exists() and _leftovers(out) == []
    assert _train(train_file, out, 1, "--resume") == 0  # F9 as well: nothing to resume yet, so it starts
    before = (out / "config.json").stat()
    from mano_pde.training.config import TrainConfig

    saves = []
    monkeypatch.setattr(TrainConfig, "save", lambda self, path: saves.append(path))
    assert _train(train_file, out, 1, "--resume") == 0
    assert saves == []
    after = (out / "config.json").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == "one bit flipped":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :])
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "another run's state":
        state = torch.load(path, weights_only=True)
        state["model"] = {k: v + 1 for k, v in state["model"].items()}
        torch.save(state, path)
    else:
        raise AssertionError(how)


DAMAGES = ["random bytes", "one bit flipped", "truncated", "empty", "another run's state"]


@pytest.mark.parametrize("how", DAMAGES)
def test_f8_a_damaged_train_state_falls_back_one_epoch(how, train_file, three_epochs, tmp_path, caplog, monkeypatch):
    """F8: a damaged ``train_state.pt`` is never loaded; resume falls back to the previous epoch's verified
    state and ends with exactly the weights of the uninterrupted run."""
    out = tmp_path / "run"
    _stopped_after(train_file, out, 2, monkeypatch)
    assert (out / PREVIOUS_STATE_FILE).is_file() and (out / STATE_INDEX).is_file()
    _damage(out / STATE_FILE, how)
    with caplog.at_level(logging.WARNING):
        assert _train(train_file, out, 3, "--resume") == 0
    assert "train_state.pt does not match any digest" in caplog.text
    assert "resuming from the previous state train_state.prev.pt (epoch 1)" in caplog.text
    _assert_same_weights(out, three_epochs)
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize("how", ["one bit flipped", "empty"])
def test_f8_no_valid_state_is_refused_in_one_line(how, train_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _stopped_after(train_file, out, 2, monkeypatch)
    capsys.readouterr()
    _damage(out / STATE_FILE, how)
    _damage(out / PREVIOUS_STATE_FILE, how)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _train(train_file, out, 3, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "no valid training state in" in err and "train into a new -o folder" in err, err
    assert len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing was touched


def test_f8_a_damaged_index_is_refused(train_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _stopped_after(train_file, out, 1, monkeypatch)
    (out / STATE_INDEX).write_text("{not json")
    assert _train(train_file, out, 3, "--resume") == 2
    assert "train_state.json is damaged" in capsys.readouterr().err


def test_f9_resume_of_a_run_killed_before_its_config_starts_it(train_file, tmp_path, caplog):
    """F9: killed before ``config.json`` existed (only normalisers and a temporary file): --resume starts."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "normalizers.json").write_text("{}")  # a torn leftover: it is fitted again
    (out / f".config.json.{_dead_pid()}.tmp").write_bytes(b"")
    with caplog.at_level(logging.INFO):
        assert _train(train_file, out, 1, "--resume") == 0
    assert "holds no config.json yet" in caplog.text
    assert (out / "config.json").is_file() and _leftovers(out) == []


def test_f9_resume_still_refuses_a_folder_of_foreign_files(train_file, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert _train(train_file, out, 1, "--resume") == 2
    assert (out / "notes.txt").read_text() == "my notes" and sorted(os.listdir(out)) == ["notes.txt"]


def test_f10_interrupted_checkpoint_saves_leave_no_temporaries(train_file, three_epochs, tmp_path, monkeypatch):
    """F10: Ctrl-C during the state save removes its temporary file; a SIGKILL's 0-byte temporaries are
    removed by the next --resume, which ends with the uninterrupted run's weights."""
    out = tmp_path / "run"
    _stopped_after(train_file, out, 1, monkeypatch)
    _raise_on_replace(monkeypatch, STATE_FILE)
    assert _train(train_file, out, 3, "--resume") == 130  # interrupted (the CLI catches KeyboardInterrupt)
    monkeypatch.undo()
    assert _leftovers(out) == []
    dead = _dead_pid()
    for name in ("model_state_dict.pt", STATE_FILE, "log.csv"):
        (out / f".{name}.{dead}.tmp").write_bytes(b"")
    assert _train(train_file, out, 3, "--resume") == 0
    assert _leftovers(out) == []
    _assert_same_weights(out, three_epochs)


# ------------------------------------------------------------------------------------------ evaluate
def _evaluate(run: Path, data: Path, out: Path) -> int:
    return main(["evaluate", str(run), "--data", str(data), "--resolutions", str(S), "-o", str(out)])


def test_f11_evaluation_outputs_are_one_set(three_epochs, train_file, tmp_path, monkeypatch):
    """F11: an interrupted evaluation keeps the previous complete results and marks the set incomplete."""
    out = tmp_path / "res"
    assert _evaluate(three_epochs, train_file, out) == 0
    marker = json.loads((out / COMPLETE_MARKER).read_text())
    assert sorted(marker["files"]) == ["error_vs_resolution.png", "predictions.png", "results.json", "results.md"]
    assert all(files.sha256_file(out / k) == v for k, v in marker["files"].items())
    previous = (out / "results.json").read_text()
    _raise_on_replace(monkeypatch, "results.json")
    assert _evaluate(three_epochs, train_file, out) == 130  # interrupted (the CLI catches KeyboardInterrupt)
    monkeypatch.undo()
    assert (out / "results.json").read_text() == previous  # the earlier complete result survives
    assert not (out / COMPLETE_MARKER).exists() and _leftovers(out) == []
    (out / f".predictions.png.{_dead_pid()}.tmp").write_bytes(b"")
    assert _evaluate(three_epochs, train_file, out) == 0
    assert (out / COMPLETE_MARKER).is_file() and _leftovers(out) == []


def test_weights_changed_after_they_were_saved_are_refused(three_epochs, train_file, tmp_path, capsys):
    """The model config records the digest of the weights: valid but different weights are never scored."""
    import shutil

    run = Path(shutil.copytree(three_epochs, tmp_path / "run"))
    weights = _weights(run)
    torch.save({k: v + 1 for k, v in weights.items()}, run / "model_state_dict.pt")
    assert _evaluate(run, train_file, tmp_path / "res") == 2
    err = capsys.readouterr().err
    assert "model_state_dict.pt does not match the digest recorded in model_config.json" in err, err


def test_f11_an_unfinished_run_is_scored_with_a_warning(train_file, tmp_path, caplog, monkeypatch):
    run = tmp_path / "run"
    _stopped_after(train_file, run, 1, monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert _evaluate(run, train_file, tmp_path / "res") == 0
    assert "stopped after epoch 1 of 3" in caplog.text and "--resume" in caplog.text
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert {(r["epochs_done"], r["epochs"]) for r in results["records"]} == {(1, 3)}
    assert json.loads((tmp_path / "res" / COMPLETE_MARKER).read_text())["unfinished_runs"] == ["run"]


# ------------------------------------------------------------------------------------------ the sweep
def test_crash_sweep_finds_nothing_wrong_with_generate(tmp_path):
    """Two trials each of `generate` and `generate --overwrite` (over another valid file) by `mano-pde benchmark
    crash-sweep` (real subprocesses, real signals, damaged shards)."""
    from mano_pde.benchmarks.crash_sweep import BAD, crash_sweep

    result = crash_sweep(4, 1, ("generate", "generate-overwrite"), 1.0, str(tmp_path / "sweep"))
    totals = result["totals"]
    assert totals["trials"] == 4
    assert {k: totals[k] for k in BAD} == dict.fromkeys(BAD, 0), result["markdown"]
    assert "| generate | 2 |" in result["markdown"] and "| generate-overwrite | 2 |" in result["markdown"]
    for r in result["trials"]:  # the stop time is measured for every interrupted trial
        assert (r["stop_s"] is not None) == r["killed"]


# --- issue 21: files and data ---------------------------------------------------------------------------------------
def _tiny_spec(path: str = "data/d.nc"):
    from mano_pde.experiments import ExperimentSpec

    return ExperimentSpec.from_dict(
        {
            "name": "t",
            "data": {"d": {"path": path, "generate": {"n_samples": 6, "resolution": 9, "seed": 3}}},
            "train": {"data": "d", "resolutions": [9], "n_train": [4], "n_test": 2, "epochs": 1},
            "models": {"fno": {"model": "fno", "kwargs": {"hidden_channels": 4, "n_modes": [4, 4], "n_layers": 1}}},
            "arms": {"a": {"models": ["fno"]}},
        }
    )


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGKILL"])
@pytest.mark.parametrize("instant", ["before .parts is renamed", "while the renamed folder is deleted"])
def test_i21_the_runner_finishes_the_clean_up_of_a_killed_data_generation(instant, how, tmp_path, monkeypatch):
    """A kill while a data file's ``.parts`` is removed: the runner's rerun removes it and the lock (as generate's)."""
    from mano_pde.experiments.runner import ensure_data, plan_runs

    spec, out = _tiny_spec(), tmp_path / "study"
    data = out / "data"
    path = data / "d.nc"
    _interrupt_the_clean_up(monkeypatch, path, instant)
    with pytest.raises(KeyboardInterrupt):
        ensure_data(spec, out, runs=plan_runs(spec, out), workers=1, progress=False)
    monkeypatch.undo()
    if how == "SIGKILL":
        _as_if_killed(data, path)
    assert len(os.listdir(data)) > 1  # the file and what its clean-up left
    files_, _ = ensure_data(spec, out, runs=plan_runs(spec, out), workers=1, progress=False)
    assert files_["d"] == path
    assert sorted(os.listdir(data)) == ["d.nc"]
    _assert_same_data(path, generate_darcy(CONFIG, tmp_path / "ref.nc", progress=False))


def test_i21_the_runner_removes_its_summarys_stale_temporary(tmp_path, monkeypatch):
    """A kill while writing study.json leaves ``.study.json.PID.tmp``: the next run of the experiment removes it."""
    from mano_pde.experiments import runner

    out = tmp_path / "study"
    out.mkdir()
    stale = out / f".study.json.{_dead_pid()}.tmp"
    stale.write_text("{half")
    times = out / "data" / f".{runner.GENERATION_TIMES}.{_dead_pid()}.tmp"
    times.parent.mkdir()
    times.write_text("{")
    live = out / f".study.json.{os.getpid()}.tmp"  # a live process's temporary is left alone
    live.write_text("{")
    real_ensure = runner.ensure_data

    def stop_after_ensure(*args, **kwargs):
        real_ensure(*args, **kwargs)
        raise KeyboardInterrupt  # stop before training: the clean-up is what is tested

    monkeypatch.setattr(runner, "ensure_data", stop_after_ensure)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(_tiny_spec(), out, workers=1, device="cpu", progress=False, summary_name="study")
    assert not stale.exists() and not times.exists() and live.exists()


def test_i21_an_interrupted_overwrite_resumes_with_the_same_command(tmp_path, monkeypatch, capsys, caplog, reference):
    """``generate --overwrite`` over a file, interrupted: the advice is the same command, which keeps the shards."""
    out = tmp_path / "data.nc"
    generate_darcy(CONFIG.replace(seed=4), out, chunk_size=CHUNK, progress=False)  # the user's older file
    argv = ["generate", "--n-samples", "6", "--resolution", "9", "--seed", "3", "--chunk-size", "2", "--no-progress"]
    argv += ["--overwrite", "-o", str(out)]

    def no_writer(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module, "DarcyWriter", no_writer)
    assert main(argv) == 130
    monkeypatch.undo()
    assert "interrupted: rerun the same command to resume" in capsys.readouterr().err
    parts = tmp_path / "data.nc.parts"
    saved = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk_*.npz")}
    assert len(saved) == 3
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0, capsys.readouterr().err
    assert "6 of 6 samples already computed" in caplog.text  # the shards were kept, not recomputed
    _assert_same_data(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["data.nc"]


def test_i21_an_interrupted_overwrite_with_other_parameters_still_discards_the_shards(tmp_path, monkeypatch):
    out = tmp_path / "data.nc"
    monkeypatch.setattr(generate_module, "DarcyWriter", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG.replace(seed=4), out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    generate_darcy(CONFIG, out, chunk_size=CHUNK, progress=False, overwrite=True)
    with open_darcy(out) as ds:
        assert ds.attrs["seed"] == 3
    assert sorted(os.listdir(tmp_path)) == ["data.nc"]


def test_i21_a_sigint_after_generate_finished_says_the_output_is_complete(tmp_path, monkeypatch, capsys, reference):
    import mano_pde.data

    out = tmp_path / "data.nc"
    argv = ["generate", "--n-samples", "6", "--resolution", "9", "--seed", "3", "--chunk-size", "2", "--no-progress"]

    def interrupted(ds):
        raise KeyboardInterrupt  # Ctrl-C while the summary is printed: the file is complete

    monkeypatch.setattr(mano_pde.data, "describe", interrupted)
    assert main([*argv, "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: {out} was already complete; nothing to rerun" in err and "rerun the same" not in err
    _assert_same_data(out, reference)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals to a process group")
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_i21_an_interrupt_stops_the_pool_at_once_and_keeps_the_finished_chunks(how, tmp_path):
    """Ctrl-C (SIGINT to the process group) or SIGTERM to the main process alone during pool solving."""
    out = tmp_path / "pool.nc"
    cmd = [
        *(sys.executable, "-m", "mano_pde.cli", "generate", "--n-samples", "200", "--resolution", "129"),
        *("--chunk-size", "20", "--workers", "2", "--no-progress", "-o", str(out)),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a command typed at a terminal: Ctrl-C is not ignored (pytest started in the background, e.g. by
        # `nohup ... &`, passes SIGINT on ignored, and the child would then finish as if never interrupted)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    parts = tmp_path / "pool.nc.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(parts.glob("chunk_*.npz")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    t0 = time.monotonic()
    if how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == (130 if how == "Ctrl-C" else 143), err
    assert elapsed < 2.5, f"stopped {elapsed:.1f} s after the signal (was 5-7 s: queued chunks were computed)"
    assert "rerun the same command to resume" in err and "Traceback" not in err, err
    recorded = json.loads((parts / "manifest.json").read_text())["shards"]
    on_disk = sorted(int(p.stem.split("_")[1]) for p in parts.glob("chunk_*.npz"))
    assert on_disk and sorted(int(k) for k in recorded) == on_disk  # every finished chunk is kept


# --- issue 21: training and runs ---
# Damaged or interrupted run files: every file of a run is verified (run.json, the resume state), a finished run
# is restored from its verified state by --resume, and the epoch count comes from the verified record.
def _change_one_digit(path: Path) -> None:
    text = path.read_text()
    i = next(i for i, c in enumerate(text) if c in "123456789" and i > len(text) // 3)
    path.write_text(text[:i] + str(int(text[i]) % 9 + 1) + text[i + 1 :])


def test_resume_restores_changed_normalizers_from_the_verified_state(train_file, three_epochs, tmp_path, monkeypatch):
    """One changed digit of normalizers.json was used silently by --resume (every weight then differed)."""
    out = tmp_path / "run"
    _stopped_after(train_file, out, 1, monkeypatch)
    good = (out / "normalizers.json").read_text()
    _change_one_digit(out / "normalizers.json")
    assert _train(train_file, out, 3, "--resume") == 0
    assert (out / "normalizers.json").read_text() == good
    _assert_same_weights(out, three_epochs)


@pytest.mark.parametrize(
    ("name", "change", "phrase"),
    [
        ("normalizers.json", "digit", "normalizers.json does not match the digest recorded in run.json"),
        ("normalizers.json", '{"x": 1}', "expected the normalisers 'x' and 'y' of a run"),
        ("log.csv", "drop-row", "log.csv does not match the digest recorded in run.json"),
        ("config.json", "digit", "config.json does not match the digest recorded in run.json"),
        ("config.json", "{not json", "config.json is not valid JSON"),  # restored: run.json proves it is this run
        ("run.json", "[1, 2]", "run.json: holds a JSON list, not a table"),
    ],
)
def test_evaluate_refuses_changed_run_files_and_resume_restores_them(
    name, change, phrase, train_file, three_epochs, tmp_path, capsys
):
    run = Path(shutil.copytree(three_epochs, tmp_path / "run"))
    path = run / name
    if change == "digit":
        if name == "config.json":  # a change that still parses and equals the run's configuration semantically
            path.write_text(path.read_text().replace('"epochs": 3', '"epochs":  3'))
        else:
            _change_one_digit(path)
    elif change == "drop-row":
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:2] + lines[3:]))
    else:
        path.write_text(change)
    assert _evaluate(run, train_file, tmp_path / "res") == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err and len(err.splitlines()) == 1, err
    assert _train(train_file, run, 3, "--resume") == 0  # a finished run: restored from its verified state
    assert _evaluate(run, train_file, tmp_path / "res") == 0
    _assert_same_weights(run, three_epochs)
    assert (run / "log.csv").read_text().splitlines()[1:] == (three_epochs / "log.csv").read_text().splitlines()[1:]


def test_a_damaged_config_is_restored_only_for_the_same_run(train_file, three_epochs, tmp_path, capsys):
    """run.json's digest proves the resumed command's configuration is the run's: then config.json is written
    again; a resume with another configuration (here 4 epochs) is refused with the damage named."""
    run = Path(shutil.copytree(three_epochs, tmp_path / "run"))
    good = (run / "config.json").read_text()
    (run / "config.json").unlink()
    assert _train(train_file, run, 4, "--resume") == 2  # another run: nothing is guessed
    err = capsys.readouterr().err.strip()
    assert "config.json is missing, and the configuration given is not the run's" in err and len(err.splitlines()) == 1
    assert not (run / "config.json").exists()
    (run / "config.json").write_text("{not json")
    assert _train(train_file, run, 4, "--resume") == 2
    assert "config.json is damaged (" in capsys.readouterr().err
    assert _train(train_file, run, 3, "--resume") == 0
    assert (run / "config.json").read_text() == good
    _assert_same_weights(run, three_epochs)


def test_resume_restores_a_damaged_log_from_the_verified_state(train_file, three_epochs, tmp_path, monkeypatch):
    """A missing row was dropped silently, a bad cell was a raw ValueError."""
    out = tmp_path / "run"
    _stopped_after(train_file, out, 2, monkeypatch)
    lines = (out / "log.csv").read_text().splitlines(keepends=True)
    (out / "log.csv").write_text(lines[0] + lines[2])  # epoch 1 missing
    assert _train(train_file, out, 3, "--resume") == 0
    epochs = [line.split(",")[0] for line in (out / "log.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]
    _assert_same_weights(out, three_epochs)


def test_a_log_of_an_older_run_is_read_strictly(tmp_path):
    """States written before issue 21 hold no log rows: log.csv is then read, and a damage is named."""
    from mano_pde.errors import UserInputError
    from mano_pde.training.logs import read_log

    path = tmp_path / "log.csv"
    path.write_text("epoch,train_loss\n1,0.5\n3,0.25\n")
    with pytest.raises(UserInputError, match=r"should hold one row for each of the 2 finished epochs .*\[1, 3\]"):
        read_log(path, 2)
    path.write_text("epoch,train_loss\n1,0.5\n2,abc\n")
    with pytest.raises(UserInputError, match=r"log.csv, line 3, column train_loss: 'abc' is not a number"):
        read_log(path, 2)


@pytest.mark.parametrize("damaged", ["model_state_dict.pt", "model_config.json"])
def test_a_finished_run_with_damaged_weights_is_restored_by_resume(damaged, train_file, three_epochs, tmp_path, capsys):
    """evaluate said "resume the training run", but --resume exited 0 without writing anything (nor did the
    experiment runner, which counted the run as finished)."""
    from mano_pde.training.runs import run_is_intact

    run = Path(shutil.copytree(three_epochs, tmp_path / "run"))
    _damage(run / damaged, "random bytes")
    assert _evaluate(run, train_file, tmp_path / "res") == 2
    assert damaged in capsys.readouterr().err
    assert not run_is_intact(run)  # the runner resumes it instead of calling it finished
    assert _train(train_file, run, 3, "--resume") == 0
    assert run_is_intact(run)
    _assert_same_weights(run, three_epochs)
    assert _evaluate(run, train_file, tmp_path / "res") == 0


def test_a_run_killed_between_its_weights_and_its_log_is_not_scored_as_the_earlier_epoch(
    train_file, three_epochs, tmp_path, monkeypatch, capsys
):
    """Before: epoch-2 weights scored with epochs_done 1 (the log's row count)."""
    import mano_pde.training.trainer as trainer

    out = tmp_path / "run"
    _stopped_after(train_file, out, 1, monkeypatch)
    real = trainer.atomic_write_text

    def interrupt_at_the_log(path, text):
        if Path(path).name == "log.csv":
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(trainer, "atomic_write_text", interrupt_at_the_log)
    assert _train(train_file, out, 3, "--resume") == 130  # epoch 2's weights are saved, its log row is not
    monkeypatch.undo()
    assert _evaluate(out, train_file, tmp_path / "res") == 2
    err = capsys.readouterr().err
    assert "model_config.json does not match the digest recorded in run.json (epoch 1)" in err, err
    assert _train(train_file, out, 3, "--resume") == 0
    assert _evaluate(out, train_file, tmp_path / "res") == 0
    records = json.loads((tmp_path / "res" / "results.json").read_text())["records"]
    assert {(r["epochs_done"], r["epochs"]) for r in records} == {(3, 3)}
    _assert_same_weights(out, three_epochs)
