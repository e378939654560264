"""The local process pool of ``generate --workers N``: single-threaded workers that die with their parent.

Each task computes one chunk and saves its shard itself (atomically); the main process records the shard's
digest in the manifest (:class:`~mano_pde.data.shards.ShardFolder`). Workers end when the main process is
gone, also after ``SIGKILL`` (:func:`_die_with_parent`), and a worker that dies (killed, out of memory) is
reported as :class:`WorkerDiedError` with the hint to rerun, which resumes from the saved shards.

Interruptions (Ctrl-C, ``SIGTERM``, a task's error) stop the pool at once: workers ignore ``SIGINT`` (a
Ctrl-C in the terminal reaches the whole process group, and a worker would otherwise report it as the error of
its task and go on with the queued ones), the main process terminates the workers instead of waiting for the
chunks in flight and queued (whose shards are half-written temporaries at most, removed by the next run), then
records every chunk that finished, also one whose shard was saved but whose result had not arrived yet.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..files import sha256_file
from .presets import DarcyConfig
from .samples import chunk_arrays
from .shards import ShardFolder, save_shard

__all__ = ["WorkerDiedError", "run_process_pool", "compute_shard", "single_threaded_children"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def compute_shard(config: DarcyConfig, start: int, stop: int, dtype: str, parts: str) -> tuple[int, int, str]:
    """Process-pool task: compute one chunk, save it atomically as a shard; return its range and SHA-256."""
    a, u = chunk_arrays(config, start, stop, dtype)
    return start, stop, save_shard(Path(parts), start, a, u)


def _die_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this worker when the main process is gone (even after ``SIGKILL``).

    On Linux the kernel sends ``SIGKILL`` when the parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a
    daemon thread also checks once a second whether the parent is still there. ``SIGINT`` is ignored: the main
    process decides what an interruption stops (module docstring).
    """
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class WorkerDiedError(UserInputError):
    """A pool worker died while solving (killed, or out of memory); the saved shards are kept.

    Reported like a user error (one line, exit 2): the fix is to rerun the same command, which resumes.
    """


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
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


def run_process_pool(
    config: DarcyConfig, todo: list[tuple[int, int]], dtype: str, shards: ShardFolder, workers: int, bar: Any
) -> None:
    """Compute ``todo`` on a local process pool; each task saves its own shard, the main process records it."""
    from concurrent.futures.process import BrokenProcessPool

    # The pool starts its processes lazily, so the environment stays set for its whole life.
    with single_threaded_children():
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(todo)),
            mp_context=get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        pending = set()
        try:
            pending = {pool.submit(compute_shard, config, s0, s1, dtype, str(shards.path)) for s0, s1 in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    start, stop, digest = fut.result()
                    pending.discard(fut)
                    shards.record(start, stop, digest)
                    bar.update(stop - start)
        except BrokenProcessPool:
            saved = sum(v["stop"] - k for k, v in shards.shards.items())
            raise WorkerDiedError(
                f"a worker process died while solving (killed, or out of memory); {saved} of {config.n_samples} "
                f"samples are saved in {shards.path}: rerun the same command to resume"
                + (" (with fewer --workers if memory ran out)" if workers > 1 else "")
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM, a chunk's error: stop the rest now, keep what finished
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            _record_finished(pending, shards, bar)
            _adopt_saved(todo, shards, bar)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _record_finished(futures: set, shards: ShardFolder, bar: Any) -> None:
    """Record the shards of the tasks that finished without error but were not recorded yet."""
    for fut in futures:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            start, stop, digest = fut.result()
            shards.record(start, stop, digest)
            bar.update(stop - start)


def _adopt_saved(todo: list[tuple[int, int]], shards: ShardFolder, bar: Any) -> None:
    """Record the shards that workers of this run saved but whose result never reached this process.

    A shard under its final name is complete (saved atomically) and, for a chunk of ``todo``, was written by
    this run's workers (``ShardFolder.missing`` deleted any older one), so its digest is taken from the file.
    """
    for start, stop in todo:
        path = shards.shard_path(start)
        if start not in shards.shards and path.is_file():
            shards.record(start, stop, sha256_file(path))
            bar.update(stop - start)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers now (Python < 3.14 has no public ``terminate_workers``)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:  # pragma: no cover - Python 3.14+
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
