"""Dataset generation: determinism, streaming chunks, resume after a killed run, file contents."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from mano_pde.data import DarcyConfig, DarcyDataError, generate_darcy, generate_sample, open_darcy
from solvers import solve_darcy


def _data(path):
    with open_darcy(path) as ds:
        return ds["a"].values, ds["u"].values, dict(ds.attrs)


def test_file_contents_match_the_solver(darcy_file):
    config = DarcyConfig(n_samples=12, resolution=33, seed=7)
    a, u, attrs = _data(darcy_file)
    assert a.shape == u.shape == (12, 33, 33) and a.dtype == np.float32
    for i in (0, 5, 11):
        ai, ui = generate_sample(config, i)
        np.testing.assert_array_equal(a[i], ai.astype(np.float32))
        np.testing.assert_array_equal(u[i], ui.astype(np.float32))
        np.testing.assert_allclose(solve_darcy(a[i].astype(np.float64)), ui, rtol=1e-6, atol=1e-9)
    assert attrs["seed"] == 7 and attrs["grf_alpha"] == 2.0 and attrs["grf_tau"] == 3.0
    assert attrs["permeability_map"] == "piecewise" and attrs["face_average"] == "harmonic"
    assert attrs["Conventions"] == "CF-1.8" and attrs["version_mano_pde"]
    with xr.open_dataset(darcy_file) as ds:
        assert ds["x"].attrs["units"] == "1" and "long_name" in ds["x"].attrs
        np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 33))
        enc = ds["u"].encoding
        assert enc["zlib"] and enc["chunksizes"] == (1, 33, 33)


def test_float64_storage(tmp_path):
    path = generate_darcy(DarcyConfig(n_samples=2, resolution=17), tmp_path / "f64.nc", dtype="float64", progress=False)
    a, u, _ = _data(path)
    assert u.dtype == np.float64
    np.testing.assert_array_equal(u[1], generate_sample(DarcyConfig(n_samples=2, resolution=17), 1)[1])


def test_same_data_for_any_worker_count_and_chunking(tmp_path):
    config = DarcyConfig(n_samples=10, resolution=33, seed=3, permeability_map="lognormal", sigma=1.5)
    p1 = generate_darcy(config, tmp_path / "w1.nc", workers=1, chunk_size=10, progress=False)
    p2 = generate_darcy(config, tmp_path / "w2.nc", workers=2, chunk_size=3, progress=False)
    a1, u1, _ = _data(p1)
    a2, u2, _ = _data(p2)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(u1, u2)
    assert not (tmp_path / "w2.nc.parts").exists()


def test_seed_changes_the_data(tmp_path):
    a0, _, _ = _data(generate_darcy(DarcyConfig(n_samples=2, resolution=17, seed=0), tmp_path / "0.nc", progress=False))
    a1, _, _ = _data(generate_darcy(DarcyConfig(n_samples=2, resolution=17, seed=1), tmp_path / "1.nc", progress=False))
    assert not np.array_equal(a0, a1)


def test_existing_output_is_not_overwritten(darcy_file):
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_darcy(DarcyConfig(n_samples=2, resolution=17), darcy_file, progress=False)


def test_resume_after_killed_subprocess_gives_identical_file(tmp_path):
    out = tmp_path / "killed.nc"
    cmd = [
        sys.executable,
        "-m",
        "mano_pde.cli",
        "generate",
        "--n-samples",
        "96",
        "--resolution",
        "129",
        "--chunk-size",
        "2",
        "--seed",
        "11",
        "--no-progress",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = tmp_path / "killed.nc.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("chunk_*.npz"))) < 3:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(parts.glob("chunk_*.npz")))
    assert not out.exists(), "the run finished before it could be killed; make it longer"
    assert 3 <= n_done < 48
    with pytest.raises(FileNotFoundError, match="unfinished generation run"):
        open_darcy(out)
    # a different configuration must not silently mix with the unfinished run
    with pytest.raises(DarcyDataError, match="different parameters"):
        generate_darcy(DarcyConfig(n_samples=96, resolution=129, seed=12), out, progress=False)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = generate_darcy(
        DarcyConfig(n_samples=96, resolution=129, seed=11), tmp_path / "ref.nc", chunk_size=96, progress=False
    )
    with open_darcy(out) as got, open_darcy(ref) as want:
        xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
        ignore = {"history"}
        assert {k: v for k, v in got.attrs.items() if k not in ignore} == {
            k: v for k, v in want.attrs.items() if k not in ignore
        }
    assert not parts.exists()
