"""Generate Darcy datasets: parallel over samples, deterministic per sample, streaming and resumable.

How a run is organised
----------------------
Samples are cut into chunks of ``chunk_size``. Each finished chunk is saved (atomically: temporary name,
then rename) as a shard in ``OUT.parts/`` next to the target, together with ``manifest.json`` describing the
run. When every chunk exists, the shards are streamed in order into the netCDF4 file (written under a
temporary name and renamed into place) and the ``.parts`` folder is removed.

A run killed at any point loses at most the chunks in flight: rerunning the same command finds the manifest,
checks the parameters are identical, and computes only the missing chunks. Since sample ``i`` depends only on
``(config, i)`` — never on worker count, chunking or order — the finished file holds exactly the data of an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from solvers import DEFAULT_PERMC_SPEC, lognormal_map, piecewise_constant_map, sample_grf, solve_darcy

from .presets import DarcyConfig
from .schema import SCHEMA, DarcyDataError, DarcyWriter

__all__ = ["sample_rng", "generate_sample", "generate_chunk", "generate_darcy", "default_chunk_size"]

log = logging.getLogger(__name__)

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: independent streams from one root seed."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def generate_sample(config: DarcyConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Permeability and pressure ``[s, s]`` (float64) of sample ``index``."""
    rng = sample_rng(config.seed, index)
    field = sample_grf(config.resolution, rng, alpha=config.alpha, tau=config.tau)
    if config.permeability_map == "piecewise":
        a = piecewise_constant_map(field, config.high, config.low)
    else:
        a = lognormal_map(field, config.sigma)
    u = solve_darcy(a, config.forcing, face=config.face_average)
    return a, u


def generate_chunk(config: DarcyConfig, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``start … stop - 1`` as float64 arrays ``[stop - start, s, s]``."""
    s = config.resolution
    a = np.empty((stop - start, s, s))
    u = np.empty((stop - start, s, s))
    for k, i in enumerate(range(start, stop)):
        a[k], u[k] = generate_sample(config, i)
    return a, u


def default_chunk_size(resolution: int) -> int:
    """Samples per chunk: about 4 M grid values (≈ 10–20 s of solving at 421²), between 1 and 64."""
    return int(min(64, max(1, 4_000_000 // (resolution * resolution))))


def _shard_path(parts: Path, start: int) -> Path:
    return parts / f"chunk_{start:09d}.npz"


def _compute_shard(config: DarcyConfig, start: int, stop: int, dtype: str, parts: str) -> tuple[int, int]:
    """Worker task: compute one chunk and save it atomically as a shard."""
    a, u = generate_chunk(config, start, stop)
    final = _shard_path(Path(parts), start)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, a=a.astype(dtype), u=u.astype(dtype))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return start, stop


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """One BLAS/OpenMP thread per worker process (children inherit the environment at start)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _manifest(config: DarcyConfig, dtype: str, chunk_size: int) -> dict:
    return {
        "schema": SCHEMA,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "dtype": dtype,
        "chunk_size": chunk_size,
    }


def _prepare_parts(parts: Path, manifest: dict, overwrite: bool) -> int:
    """Create or reuse the shard folder; return the chunk size in force."""
    mpath = parts / "manifest.json"
    if parts.exists() and overwrite:
        shutil.rmtree(parts)
    if parts.exists():
        try:
            old = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise DarcyDataError(
                f"{parts} exists but its manifest is unreadable ({exc}); delete the folder to start over"
            ) from exc
        same = {k: old.get(k) for k in ("schema", "config", "dtype")} == {
            k: manifest[k] for k in ("schema", "config", "dtype")
        }
        if not same:
            raise DarcyDataError(
                f"an unfinished run with different parameters exists at {parts} "
                f"(its parameters: {old.get('config')}, dtype {old.get('dtype')}). Rerun with the same "
                "parameters to finish it, pass --overwrite (overwrite=True) to discard it, or choose another output"
            )
        return int(old["chunk_size"])
    parts.mkdir(parents=True)
    tmp = mpath.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, mpath)
    return int(manifest["chunk_size"])


def generate_darcy(
    config: DarcyConfig,
    path: str | os.PathLike,
    *,
    workers: int = 1,
    dtype: str = "float32",
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    complevel: int = 4,
) -> Path:
    """Generate ``config.n_samples`` Darcy samples into a netCDF4 file (resumable).

    Parameters
    ----------
    config : DarcyConfig
        All physical and random parameters (see :data:`mano_pde.data.presets.PRESETS`).
    path : path-like
        Output ``.nc`` file. An unfinished run for the same path resumes from ``path + ".parts"``.
    workers : int
        Worker processes (one BLAS thread each). The data does not depend on this number.
    dtype : {"float32", "float64"}
        Storage precision.
    chunk_size : int, optional
        Samples per chunk (default :func:`default_chunk_size`); fixed by the first run of a resumed job.
    overwrite : bool
        Replace an existing file, and discard an unfinished run with other parameters.
    progress : bool
        Show a tqdm progress bar.
    complevel : int
        zlib compression level of the netCDF variables.

    Returns
    -------
    pathlib.Path
        The finished file.
    """
    path = Path(path)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite (overwrite=True) or choose another output")
    parts = path.with_name(path.name + ".parts")
    chunk = _prepare_parts(
        parts, _manifest(config, dtype, int(chunk_size or default_chunk_size(config.resolution))), overwrite
    )
    n = config.n_samples
    chunks = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    todo = [c for c in chunks if not _shard_path(parts, c[0]).exists()]
    done = n - sum(stop - start for start, stop in todo)
    if done:
        log.info("resuming %s: %d of %d samples already computed", parts, done, n)

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=n, initial=done, unit="sample", desc="solving", disable=not progress, smoothing=0.1)
    try:
        if workers == 1 or len(todo) <= 1:
            for start, stop in todo:
                _compute_shard(config, start, stop, dtype, str(parts))
                bar.update(stop - start)
        else:
            # The pool starts its processes lazily, so the environment stays set for its whole life.
            with _single_threaded_children():
                pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn"))
                try:
                    pending = {pool.submit(_compute_shard, config, s0, s1, dtype, str(parts)) for s0, s1 in todo}
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            start, stop = fut.result()
                            bar.update(stop - start)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    if todo:
        computed = n - done
        log.info("solved %d samples in %.1f s (%.2f samples/s)", computed, elapsed, computed / max(elapsed, 1e-9))

    attrs = config.to_attrs()
    attrs["solver"] = f"5-point finite differences, scipy.sparse.linalg.splu (SuperLU, permc_spec={DEFAULT_PERMC_SPEC})"
    with DarcyWriter(path, n, config.resolution, attrs, dtype=dtype, complevel=complevel) as writer:
        for start, _ in tqdm(chunks, desc="writing", unit="chunk", disable=not progress):
            with np.load(_shard_path(parts, start)) as shard:
                writer.write(start, shard["a"], shard["u"])
    shutil.rmtree(parts, ignore_errors=True)
    return path
