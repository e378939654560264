"""Generate Darcy datasets: parallel over samples, deterministic per sample, streaming and resumable.

How a run is organised
----------------------
Samples are cut into chunks of ``chunk_size``. Each finished chunk is saved (atomically: temporary name,
then rename) as a shard in ``OUT.parts/`` next to the target, and its SHA-256 is recorded in the folder's
``manifest.json``, which also describes the run (:mod:`mano_pde.data.shards`). When every chunk exists, the
shards are verified again and streamed in order into the netCDF4 file (written under a temporary name and
renamed into place) and the ``.parts`` folder is removed.

A run killed at any point loses at most the chunks in flight: rerunning the same command finds the manifest,
checks the parameters are identical, and computes only the missing chunks (and any shard that fails its
digest, named in a warning). Since sample ``i`` depends only on
``(config, i)`` — never on worker count, chunking or order — the finished file holds exactly the data of an
uninterrupted run. A run killed after its file was renamed into place, while it was removing ``.parts`` or
releasing its lock, is finished by the same command: it deletes what was left and returns the file.

Back ends
---------
Chunks are computed by the calling process (``workers=1``), by a local process pool (``workers=N``) or on a
``dask.distributed`` cluster (``scheduler=ADDRESS`` or ``dask_workers=N``, see
:mod:`mano_pde.data.dask_backend`). Process-pool workers write their shards themselves; dask tasks return
the chunk's arrays (in the storage dtype) to the client, which writes the shard, so dask workers need no
access to the output's filesystem. Either way the shards, the manifest and the final file are written by
the same code, so a run started with one back end can be resumed with another, and the files are
identical.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from solvers import DEFAULT_PERMC_SPEC

from ..errors import UserInputError
from ..files import check_file_name, stale_temps
from ._output import check_output_file, lock_path, nearest_existing, output_lock
from .io import check_new_file
from .pool import WorkerDiedError, compute_shard, run_process_pool, single_threaded_children
from .presets import DarcyConfig
from .samples import chunk_arrays, default_chunk_size, generate_chunk, generate_sample, sample_rng
from .schema import COMPLETE_ATTR, SCHEMA, STORAGE_DTYPES, DarcyWriter, check_storable_parameters
from .shards import ShardFolder, check_shard_folder, save_shard, shard_folder_path

__all__ = [
    "sample_rng",
    "generate_sample",
    "generate_chunk",
    "chunk_arrays",
    "generate_darcy",
    "finish_interrupted",
    "default_chunk_size",
    "check_worker_count",
    "WorkerDiedError",
]

log = logging.getLogger(__name__)


def _manifest(config: DarcyConfig, dtype: str, chunk_size: int) -> dict:
    return {
        "schema": SCHEMA,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "dtype": dtype,
        "chunk_size": chunk_size,
    }


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
    scheduler: str | Any | None = None,
    dask_workers: int | None = None,
) -> Path:
    """Generate ``config.n_samples`` Darcy samples into a netCDF4 file (resumable).

    Parameters
    ----------
    config : DarcyConfig
        All physical and random parameters (see :data:`mano_pde.data.presets.PRESETS`).
    path : path-like
        Output ``.nc`` file (a name ending in ``/`` is refused: it names a folder). An unfinished run for the
        same path resumes from ``path + ".parts"``.
    workers : int
        Worker processes of a local process pool (one BLAS thread each). The data does not depend on this
        number. Not combinable with ``scheduler`` / ``dask_workers``.
    dtype : {"float32", "float64"}
        Storage precision.
    chunk_size : int, optional
        Samples per chunk (default :func:`default_chunk_size`); fixed by the first run of a resumed job.
    overwrite : bool
        Replace an existing file, and discard an unfinished run with other parameters (the shards of an
        unfinished run with the same parameters are kept and reused: they hold the same samples). The existing
        file is replaced only by a new file that passed every check of :func:`~mano_pde.data.open_darcy`.
    progress : bool
        Show a tqdm progress bar.
    complevel : int
        zlib compression level of the netCDF variables.
    scheduler : str or distributed.Client, optional
        Compute the chunks on this ``dask.distributed`` cluster: a scheduler address
        (``"tcp://host:8786"``) or a connected client (left open). Needs the ``dist`` extra. The file is
        identical to the process pool's; see :mod:`mano_pde.data.dask_backend`.
    dask_workers : int, optional
        Compute the chunks on a local ``dask.distributed`` cluster of this many single-threaded worker
        processes (started and closed here). Exclusive with ``scheduler``.

    Returns
    -------
    pathlib.Path
        The finished file.

    Raises
    ------
    UserInputError
        Invalid arguments (checked before anything is written), parameters whose values the storage ``dtype``
        cannot hold (``--high 1e45`` or ``--forcing 1e-300`` in float32), an output that is a folder, names a
        folder (``newdir/``) or lies in a folder that is not writable, a symbolic link at ``path + ".lock"``,
        a symbolic link or a file at ``path + ".parts"``, more worker processes than memory can hold, samples
        whose shards exceed the output disk's free space, or another process generating the same output (the
        lock ``path + ".lock"`` is held for the whole run).
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    ImportError
        ``scheduler`` or ``dask_workers`` given but ``dask.distributed`` is not installed.
    mano_pde.data.dask_backend.DaskGenerationError
        The scheduler cannot be reached, or a chunk failed on the cluster after its retries (the chunks
        saved so far are kept: rerun to resume).
    """
    path = check_file_name(path)
    if not isinstance(config, DarcyConfig):
        raise TypeError(f"config must be a DarcyConfig, got {type(config).__name__}")
    if dtype not in STORAGE_DTYPES:
        raise UserInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    _check_representable(config, dtype)
    workers = _positive_int(workers, "workers")
    use_dask = scheduler is not None or dask_workers is not None
    if scheduler is not None and dask_workers is not None:
        raise UserInputError(
            "give either --scheduler (an existing dask cluster) or --dask-workers (a local one), not both"
        )
    if dask_workers is not None:
        dask_workers = _positive_int(dask_workers, "dask_workers")
    if use_dask and workers != 1:
        raise UserInputError(
            "--workers sets the local process pool; with --scheduler/--dask-workers the dask workers compute, "
            "so drop --workers"
        )
    if chunk_size is not None:
        chunk_size = _positive_int(chunk_size, "chunk_size (--chunk-size)")
    if scheduler is None:  # on an existing cluster the samples are solved on other machines
        _check_memory(config, workers, dask_workers, chunk_size or default_chunk_size(config.resolution))
    check_shard_folder(shard_folder_path(path))  # a link or a file at OUT.nc.parts: refused, never followed
    if _finished_earlier(config, path, dtype, overwrite):
        return path
    check_output_file(path, overwrite)
    _check_disk(config, path, dtype)
    with output_lock(path, "generate"):
        if path.exists() and not overwrite:  # finished by another run while we checked
            raise FileExistsError(f"{path} already exists; pass --overwrite (overwrite=True) or choose another output")
        return _generate_locked(
            config, path, workers, dtype, chunk_size, overwrite, progress, complevel, scheduler, dask_workers
        )


#: Lower bound of the peak memory per grid point of one sample (field, assembly, SuperLU factors): measured
#: 1.08 / 1.22 / 1.32 KB per point at 257 / 513 / 1025 points per direction (growing like the fill-in).
SAMPLE_BYTES_PER_POINT = 1000
#: Lower bounds of the memory of one worker process before it solves anything: a pool worker (Python, numpy,
#: scipy; 65 MB measured) and a local dask worker (the same and dask: 90 MB measured).
WORKER_PROCESS_BYTES = 60 * 2**20
DASK_WORKER_BYTES = 85 * 2**20


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_worker_count(workers: int, dask_workers: int | None = None) -> None:
    """Refuse more worker processes than this machine's memory can hold (checked before anything is written, also
    by the experiment runner before it creates its folder).

    Each worker is a Python process of at least :data:`WORKER_PROCESS_BYTES` (:data:`DASK_WORKER_BYTES` for a
    local dask cluster, which starts every worker it is asked for) before it solves anything.

    Raises
    ------
    mano_pde.errors.UserInputError
        The workers cannot all exist at once.
    """
    total = _physical_memory()
    if not total:
        return
    dask = dask_workers is not None
    processes, per_process = (dask_workers, DASK_WORKER_BYTES) if dask else (workers, WORKER_PROCESS_BYTES)
    flag = "--dask-workers" if dask else "--workers"
    if processes > 1 and processes * per_process > total:
        raise UserInputError(
            f"{flag} {processes} asks for more worker processes than this machine can hold: each is a Python "
            f"process of at least {per_process / 2**20:.0f} MiB (numpy, scipy{', dask' if dask else ''}) before it "
            f"solves anything, so {total / 2**30:.1f} GiB of memory hold at most {total // per_process}; give at "
            f"most that, best one worker per core ({os.cpu_count() or 1} here)"
        )


def _check_memory(config: DarcyConfig, workers: int, dask_workers: int | None, chunk_size: int) -> None:
    """Refuse a run whose worker processes or samples cannot fit in this machine's memory, before anything is
    written.

    The estimates are lower bounds (:data:`WORKER_PROCESS_BYTES` or :data:`DASK_WORKER_BYTES` per worker process
    started, :data:`SAMPLE_BYTES_PER_POINT` per grid point and sample being solved at once), so only runs that
    certainly cannot finish are refused: ``--dask-workers 2**70`` (a local cluster starts every worker it is
    asked for) as well as ``--workers 2**70`` (a mistake, although the pool starts at most one worker per chunk).
    """
    total = _physical_memory()
    if not total:
        return
    check_worker_count(workers, dask_workers)
    dask = dask_workers is not None
    processes = dask_workers if dask else workers
    flag = "--dask-workers" if dask else "--workers"
    parallel = max(1, min(processes, math.ceil(config.n_samples / chunk_size)))  # one chunk per worker at a time
    need = SAMPLE_BYTES_PER_POINT * config.resolution**2 * parallel
    if need > total:
        per = f" ({parallel} samples at once)" if parallel > 1 else ""
        raise UserInputError(
            f"solving {config.resolution}x{config.resolution} samples needs at least {need / 2**30:.1f} GiB of "
            f"memory{per}, more than this machine's {total / 2**30:.1f} GiB; lower --resolution"
            + (f" or {flag}" if parallel > 1 else "")
        )


def _check_disk(config: DarcyConfig, path: Path, dtype: str) -> None:
    """Refuse a run whose shards cannot fit on the output's disk, before anything is written.

    Every sample's ``a`` and ``u`` are kept uncompressed in ``OUT.nc.parts`` until the file is written (besides
    it, compressed): ``2 s² · itemsize`` bytes per sample is a lower bound of the disk the run needs. Shards
    already saved by an interrupted run of the same output count as available.
    """
    per_sample = 2 * config.resolution**2 * np.dtype(dtype).itemsize
    need = config.n_samples * per_sample
    parts = shard_folder_path(path)
    saved = sum(p.stat().st_size for p in parts.glob("chunk_*.npz")) if parts.is_dir() else 0
    folder = nearest_existing(path.parent)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # pragma: no cover - a filesystem without statvfs: nothing to check against
        return
    if need - saved > free:
        raise UserInputError(
            f"{config.n_samples} samples at {config.resolution}x{config.resolution} need at least "
            f"{_size(need - saved)} of disk ({dtype} a and u of every sample, kept uncompressed in {parts.name} "
            f"until the file is written), more than the {_size(free)} free in {folder}; lower --n-samples, free "
            "space, or choose an output on a larger disk"
        )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _check_representable(config: DarcyConfig, dtype: str) -> None:
    """Refuse parameters that the storage ``dtype`` cannot hold, before anything is written.

    ``--high 1e45`` overflows float32 (the file would hold inf), ``--forcing 1e-300`` underflows it (u would be
    stored as 0). Values computed from valid parameters are checked chunk by chunk
    (:func:`mano_pde.data.samples.check_storable`).
    """
    values = {"forcing": config.forcing}
    if config.permeability_map == "piecewise":
        values.update(high=config.high, low=config.low)
    check_storable_parameters(values, dtype)


def finish_interrupted(config: DarcyConfig, path: str | os.PathLike, dtype: str = "float32") -> bool:
    """Finish the clean-up of a ``generate`` run of ``config`` killed after its file was in place.

    Returns whether ``path`` is that run's complete file (then ``.parts``, renamed shard folders and the lock
    file it left are removed, as the rerun of the same command does). Anything else is left untouched.
    """
    path = Path(path)
    check_shard_folder(shard_folder_path(path))
    return _finished_earlier(config, path, dtype, False)


def _finished_earlier(config: DarcyConfig, path: Path, dtype: str, overwrite: bool) -> bool:
    """Whether ``path`` is this run's file, whose clean-up a kill interrupted; if so, finish the clean-up.

    After renaming the file into place a run removes ``OUT.nc.parts`` (renamed to ``.OUT.nc.parts.PID.tmp``,
    then deleted) and releases its lock, which deletes ``OUT.nc.lock``. A kill at any instant in between
    leaves one or more of: ``.parts`` with this run's manifest, the renamed folder (whole or partly deleted)
    of a process that is gone, the lock file. If one of them is there and ``path`` is a complete file of
    exactly these parameters (:func:`_holds`), the rerun deletes them under the lock and returns the file, as
    the uninterrupted run did. Otherwise (nothing left behind, a file of other parameters or not made by
    ``generate``, an unfinished run of other parameters in ``.parts``) nothing is touched and the caller
    refuses "already exists".
    """
    parts = shard_folder_path(path)
    if overwrite or not path.is_file():
        return False
    wanted = _manifest(config, dtype, 0)
    if parts.exists() and not _same_run(parts, wanted):
        return False  # another run's unfinished work (or no readable manifest): not ours to delete
    renamed = stale_temps(path.parent, (parts.name,), own=True)
    if not (parts.exists() or renamed or lock_path(path).exists()):
        return False  # nothing left behind: the earlier run finished
    if not _holds(path, config, dtype):
        return False
    with output_lock(path, "generate"):  # removes dead processes' temporaries; the lock file goes on release
        if not parts.exists() or _same_run(parts, wanted):
            log.info("%s is complete; removing what its interrupted run left (%s)", path, parts)
            ShardFolder(parts, wanted).remove()  # .parts, and this process's renamed folder
    return True


def _same_run(parts: Path, wanted: dict) -> bool:
    """Whether the manifest in ``parts`` describes the run of ``wanted`` (schema, parameters, dtype)."""
    try:
        manifest = json.loads((parts / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(manifest, dict) and all(manifest.get(k) == wanted[k] for k in ("schema", "config", "dtype"))


def _file_attrs(config: DarcyConfig) -> dict[str, Any]:
    """The global attributes that ``generate`` gives a file of ``config`` (besides the writer's own)."""
    attrs = config.to_attrs()
    attrs["solver"] = f"5-point finite differences, scipy.sparse.linalg.splu (SuperLU, permc_spec={DEFAULT_PERMC_SPEC})"
    return attrs


def _same_value(have: Any, want: Any) -> bool:
    if isinstance(want, str):
        return isinstance(have, str) and have == want
    try:
        return np.ndim(have) == 0 and float(have) == float(want)
    except (TypeError, ValueError):
        return False


def _holds(path: Path, config: DarcyConfig, dtype: str) -> bool:
    """Whether ``path`` is a complete file that ``generate`` made from exactly ``config`` and ``dtype``.

    Checked: the completion mark, the schema, every generator attribute, the sample count, the grid and the
    storage dtype. A file that cannot be read as netCDF (e.g. made by the user) is not.
    """
    import netCDF4

    wanted = {COMPLETE_ATTR: "yes", "mano_pde_schema": SCHEMA, "n_samples": config.n_samples, **_file_attrs(config)}
    sizes = {"sample": config.n_samples, "y": config.resolution, "x": config.resolution}
    try:
        with netCDF4.Dataset(path) as ds:
            attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
            same = all(int(ds.dimensions[k].size) == int(n) for k, n in sizes.items())
            same = same and all(ds.variables[v].dtype == np.dtype(dtype) for v in ("a", "u"))
    except (OSError, KeyError, ValueError, RuntimeError):
        return False
    return same and all(_same_value(attrs.get(k), v) for k, v in wanted.items())


def _positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (integral floats accepted), else :class:`UserInputError`."""
    try:
        n = int(value)
        ok = n == value and not isinstance(value, bool)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or n < 1:
        raise UserInputError(f"{name} must be >= 1 (a positive integer), got {value!r}")
    return n


def _generate_locked(
    config: DarcyConfig,
    path: Path,
    workers: int,
    dtype: str,
    chunk_size: int | None,
    overwrite: bool,
    progress: bool,
    complevel: int,
    scheduler: str | Any | None,
    dask_workers: int | None,
) -> Path:
    """The body of :func:`generate_darcy`, run with the output's lock held and the arguments checked."""
    use_dask = scheduler is not None or dask_workers is not None
    cluster: contextlib.AbstractContextManager = contextlib.nullcontext()
    if use_dask:
        from .dask_backend import dask_client

        # connect (or start the local cluster) before touching the output folder: a bad address leaves nothing
        cluster = dask_client(scheduler, dask_workers, env=single_threaded_children)
    with cluster as client:
        parts = shard_folder_path(path)
        shards = ShardFolder(parts, _manifest(config, dtype, int(chunk_size or default_chunk_size(config.resolution))))
        chunk, fresh = shards.open(overwrite)
        n = config.n_samples
        chunks = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
        todo = shards.missing(chunks)  # no shard, or one that fails its digest (named in a warning)
        done = n - sum(stop - start for start, stop in todo)
        if done:
            log.info("resuming %s: %d of %d samples already computed (digests verified)", parts, done, n)

        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        bar = tqdm(total=n, initial=done, unit="sample", desc="solving", disable=not progress, smoothing=0.1)
        try:
            if client is not None:
                from .dask_backend import compute_chunks_on_dask

                def save(start: int, stop: int, a: np.ndarray, u: np.ndarray) -> None:
                    shards.record(start, stop, save_shard(parts, start, a, u))
                    bar.update(stop - start)

                compute_chunks_on_dask(client, config, todo, dtype, save)
            elif workers == 1 or len(todo) <= 1:
                for start, stop in todo:
                    shards.record(*compute_shard(config, start, stop, dtype, str(parts)))
                    bar.update(stop - start)
            else:
                run_process_pool(config, todo, dtype, shards, workers, bar)
        except WorkerDiedError:
            raise
        except UserInputError:
            if fresh:  # these parameters can never give a complete file: leave nothing that blocks the next run
                shards.remove()
            raise
        finally:
            bar.close()
        elapsed = time.perf_counter() - t0
    if todo:
        computed = n - done
        log.info("solved %d samples in %.1f s (%.2f samples/s)", computed, elapsed, computed / max(elapsed, 1e-9))

    attrs = _file_attrs(config)
    with DarcyWriter(
        path, n, config.resolution, attrs, dtype=dtype, complevel=complevel, verify=check_new_file
    ) as writer:
        for start, stop in tqdm(chunks, desc="writing", unit="chunk", disable=not progress):
            arrays = shards.read(start, stop)  # verified against its digest
            if arrays is None:  # changed on disk since it was saved: compute it again (warning already logged)
                arrays = chunk_arrays(config, start, stop, dtype)
                shards.record(start, stop, save_shard(parts, start, *arrays))
            writer.write(start, *arrays)
    shards.remove()  # after the file is in place; a kill from here on is finished by the rerun (_finished_earlier)
    return path
