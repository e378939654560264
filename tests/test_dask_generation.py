"""Generation on dask.distributed: same file as the process pool, no sample lost with a worker, clear errors."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mano_pde.cli import main
from mano_pde.data import DarcyConfig, generate_darcy, open_darcy
from mano_pde.data import generate as generate_module

CONFIG = DarcyConfig(n_samples=24, resolution=33, seed=13, permeability_map="lognormal", sigma=1.2)
CHUNK = 2  # 12 chunks: several rounds of the in-flight window


def _assert_same_file(got, want):
    with open_darcy(got) as g, open_darcy(want) as w:
        np.testing.assert_array_equal(g["a"].values, w["a"].values)
        np.testing.assert_array_equal(g["u"].values, w["u"].values)
        assert g["u"].dtype == w["u"].dtype
        ignore = {"history"}
        assert {k: v for k, v in g.attrs.items() if k not in ignore} == {
            k: v for k, v in w.attrs.items() if k not in ignore
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The file of the process pool (2 workers)."""
    path = tmp_path_factory.mktemp("ref") / "pool.nc"
    return generate_darcy(CONFIG, path, workers=2, chunk_size=CHUNK, progress=False)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def test_dask_file_is_identical_to_the_process_pool_file(client, reference, tmp_path):
    path = generate_darcy(CONFIG, tmp_path / "dask.nc", scheduler=client, chunk_size=CHUNK, progress=False)
    _assert_same_file(path, reference)
    assert not (tmp_path / "dask.nc.parts").exists()
    assert client.status == "running"  # a client passed in is left open


def _ours(key) -> bool:
    return str(key).startswith("mano-pde-darcy-")


def test_a_lost_worker_loses_no_samples(client, reference, tmp_path, monkeypatch):
    """After the first shard, SIGKILL a worker that holds finished but not yet fetched chunks."""
    original = generate_module.save_shard
    killed = []

    def save_then_kill(parts, start, a, u):
        digest = original(parts, start, a, u)
        if killed:
            return digest
        deadline = time.monotonic() + 10  # the client fetches nothing while it saves: results accumulate
        while not (held := [(k, ws[0]) for k, ws in client.who_has().items() if _ours(k) and ws]):
            assert time.monotonic() < deadline, "no finished chunk on any worker"
            time.sleep(0.01)
        key, victim = held[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        killed.append((victim, key))
        return digest

    monkeypatch.setattr(generate_module, "save_shard", save_then_kill)
    path = generate_darcy(CONFIG, tmp_path / "lost.nc", scheduler=client, chunk_size=CHUNK, progress=False)
    assert killed
    _assert_same_file(path, reference)
    victim, key = killed[0]
    assert victim not in client.scheduler_info()["workers"]  # the worker really went away ...

    def times_computed(key, dask_scheduler=None):
        return sum(1 for entry in dask_scheduler.story(key) if entry[2] == "memory")

    assert client.run_on_scheduler(times_computed, key) >= 2  # ... and its result was computed again
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it for the next tests


def test_resume_works_across_back_ends(client, reference, tmp_path, monkeypatch):
    """Interrupt a dask run after three shards, finish it with the process pool: the same file."""
    original = generate_module.save_shard
    saved = []

    def save_then_interrupt(parts, start, a, u):
        digest = original(parts, start, a, u)
        saved.append(start)
        if len(saved) == 3:
            raise KeyboardInterrupt
        return digest

    out = tmp_path / "mixed.nc"
    monkeypatch.setattr(generate_module, "save_shard", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        generate_darcy(CONFIG, out, scheduler=client, chunk_size=CHUNK, progress=False)
    monkeypatch.setattr(generate_module, "save_shard", original)
    assert len(list((tmp_path / "mixed.nc.parts").glob("chunk_*.npz"))) == 3
    deadline = time.monotonic() + 10  # in-flight tasks are cancelled (asynchronously)
    while [k for k in client.who_has() if _ours(k)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in client.who_has() if _ours(k)]
    generate_darcy(CONFIG, out, workers=2, progress=False)
    _assert_same_file(out, reference)


def _cli(out, *extra):
    return main(
        [
            "generate",
            "--n-samples",
            str(CONFIG.n_samples),
            "--resolution",
            str(CONFIG.resolution),
            "--seed",
            str(CONFIG.seed),
            "--map",
            "lognormal",
            "--sigma",
            str(CONFIG.sigma),
            "--chunk-size",
            str(CHUNK),
            "--no-progress",
            "-o",
            str(out),
            *extra,
        ]
    )


def test_cli_scheduler_address(client, reference, tmp_path):
    assert _cli(tmp_path / "addr.nc", "--scheduler", client.scheduler.address) == 0
    _assert_same_file(tmp_path / "addr.nc", reference)


def test_cli_local_dask_cluster(reference, tmp_path):
    pytest.importorskip("distributed")
    assert _cli(tmp_path / "local.nc", "--dask-workers", "2") == 0
    _assert_same_file(tmp_path / "local.nc", reference)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:8786", "--dask-workers", "2"], "not both"),
        (["--dask-workers", "2", "--workers", "2"], "drop --workers"),
        (["--dask-workers", "0"], "dask_workers must be >= 1"),
    ],
)
def test_cli_bad_dask_options(extra, message, tmp_path, capsys):
    pytest.importorskip("distributed")
    assert _cli(tmp_path / "bad.nc", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.nc.parts").exists()


def test_unreachable_scheduler_is_one_clear_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from mano_pde.data import dask_backend

    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT", 1)
    assert _cli(tmp_path / "x.nc", "--scheduler", "tcp://127.0.0.1:1") == 2
    err = capsys.readouterr().err
    assert "cannot connect to the dask scheduler at 'tcp://127.0.0.1:1'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nc.parts").exists()


def test_missing_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert _cli(tmp_path / "x.nc", "--dask-workers", "2") == 2
    err = capsys.readouterr().err
    assert "mano-pde[dist]" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ImportError, match=r"mano-pde\[dist\]"):
        generate_darcy(CONFIG, tmp_path / "x.nc", scheduler="tcp://127.0.0.1:8786", progress=False)
    assert not (tmp_path / "x.nc.parts").exists()


def test_mano_pde_data_does_not_import_dask():
    code = (
        "import sys, mano_pde.data, mano_pde.data.generate, mano_pde.data.dask_backend; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'torch')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
