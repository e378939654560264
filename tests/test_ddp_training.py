"""Data-parallel training under torchrun (2 CPU processes, gloo on loopback) against single-process training.

13 training samples in batches of 4 end every epoch with a batch of 1 sample, which one of the two processes
cannot share: the test fails unless the gradient of every batch is scaled by the *global* batch size.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from mano_pde.acceleration import cxx_compiler
from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy
from mano_pde.training.distributed import DistContext

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")

EPOCHS = 3
INTERRUPT = """
import sys

from mano_pde.cli import main
from mano_pde.training import trainer

original, calls = trainer._held_out, []


def interrupted(*args, **kwargs):  # every process stops in epoch 2, after training, before saving
    calls.append(1)
    if len(calls) == 2:
        raise KeyboardInterrupt
    return original(*args, **kwargs)


trainer._held_out = interrupted
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """20 samples at 17²: train on the first 13, hold out the last 7."""
    path = tmp_path_factory.mktemp("ddp") / "d17.nc"
    return generate_darcy(DarcyConfig(n_samples=20, resolution=17, seed=5), path, progress=False)


def _argv(data, out, *extra):
    return [
        "train",
        "--model",
        "fno",
        "--data",
        str(data),
        "--resolution",
        "17",
        "--n-train",
        "13",
        "--n-test",
        "7",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "4",
        "--hidden-channels",
        "8",
        "--n-modes",
        "8",
        "--n-layers",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        "-o",
        str(out),
        *extra,
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(target, argv, nproc=2):
    """``torchrun --nproc_per_node=nproc`` on 127.0.0.1; ``target``: ``["-m", module]`` or ``[script]``."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--node_rank=0",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        *target,
        *argv,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The single-process run of the same configuration."""
    out = tmp_path_factory.mktemp("runs") / "single"
    assert main(_argv(data, out)) == 0
    return out


def _log(run):
    return np.loadtxt(run / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2, 4), ndmin=2)


def _assert_same_training(run, ref):
    np.testing.assert_allclose(_log(run), _log(ref), rtol=1e-5, atol=0)
    a = torch.load(ref / "model_state_dict.pt", weights_only=True)
    b = torch.load(run / "model_state_dict.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-5)


def test_ddp_matches_single_process_training(data, single, tmp_path):
    out = tmp_path / "ddp"
    proc = _torchrun(["-m", "mano_pde.cli"], _argv(data, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("epoch,train_loss") == 1  # only rank 0 prints
    _assert_same_training(out, single)
    versions = json.loads((out / "versions.json").read_text())
    assert versions["world_size"] == "2" and versions["distributed_backend"] == "gloo"
    # rank 0 saved the unwrapped model: plain keys, no DDP "module." prefix
    assert not [k for k in torch.load(out / "model_state_dict.pt", weights_only=True) if k.startswith("module.")]
    assert not list(out.glob(".*.tmp"))


@pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_ddp_compiled_matches_single_process_training(data, single, tmp_path):
    """torch.compile of the DDP wrapper (DDPOptimizer): the same training as one eager process, plain keys."""
    out = tmp_path / "ddp-compiled"
    proc = _torchrun(["-m", "mano_pde.cli"], _argv(data, out, "--compile"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.compile: first step" in proc.stderr
    _assert_same_training(out, single)
    assert not [k for k in torch.load(out / "model_state_dict.pt", weights_only=True) if "module." in k or "_orig" in k]


def test_ddp_resume_matches_uninterrupted_training(data, single, tmp_path):
    out = tmp_path / "resumed"
    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPT)
    proc = _torchrun([str(script)], _argv(data, out))
    assert proc.returncode != 0
    assert "interrupted: rerun the same command with --resume to continue the run" in proc.stderr
    assert len((out / "log.csv").read_text().strip().splitlines()) == 2  # header + epoch 1
    proc = _torchrun(["-m", "mano_pde.cli"], _argv(data, out, "--resume"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_training(out, single)


def test_batch_size_must_be_a_multiple_of_the_world_size(data, tmp_path, monkeypatch, capsys):
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    argv = _argv(data, tmp_path / "x")
    argv[argv.index("--batch-size") + 1] = "5"
    assert main(argv) == 2  # refused before joining the process group (which would wait for rank 1)
    err = capsys.readouterr().err
    assert "--batch-size 5 is the global batch and must be a multiple of the number of processes (2)" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.delenv("MASTER_PORT")
    assert main(_argv(data, tmp_path / "x")) == 2
    assert "MASTER_PORT is not set; launch with torchrun" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_shards_split_each_global_batch():
    idx = torch.tensor([7, 3, 9, 1, 5])
    shards = [DistContext(rank=r, world_size=2).shard(idx) for r in range(2)]
    assert [s.tolist() for s in shards] == [[7, 3, 9], [1, 5]]
    assert DistContext(rank=1, world_size=2).shard(idx[:1]).numel() == 0  # handled by a weight-0 sample
    assert DistContext().shard(idx) is idx
