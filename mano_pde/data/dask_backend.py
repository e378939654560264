"""Compute Darcy generation chunks on a ``dask.distributed`` cluster (optional extra ``mano-pde[dist]``).

:func:`mano_pde.data.generate_darcy` with ``scheduler=ADDRESS`` (an existing cluster) or ``dask_workers=N``
(a local cluster started for the run) hands its missing chunks to :func:`compute_chunks_on_dask`.

Design
------
- **Tasks return arrays.** A task is one chunk ``(config, start, stop, dtype)`` and returns its ``a`` and
  ``u`` in the storage dtype (:func:`mano_pde.data.samples.chunk_arrays`); the client saves the shard
  atomically in ``OUT.parts/`` exactly as the process pool does. Workers therefore need no access to the
  output's filesystem, resume works whichever back end wrote the shards, and the netCDF file is written by
  the one code path of :func:`~mano_pde.data.generate_darcy`, so it is identical to the process pool's
  (given the same versions of numpy/scipy/mano_pde on the workers).
- **Pure, named tasks.** Each task's key is derived from the run's parameters and the chunk bounds
  (``mano-pde-darcy-<token>-<start>-<stop>``), and the task is a pure function of them. When a worker is
  lost, the scheduler recomputes the tasks it was running and any finished results it held that the client
  has not fetched yet (a task whose worker dies more than ``distributed.scheduler.allowed-failures`` times
  fails with ``KilledWorker``); a task raising an exception is retried ``retries`` times. A result is
  written only once the client has received all of it, so no sample is lost or written twice.
- **Bounded memory.** At most ``2 x`` (worker threads in the cluster, re-read as results arrive) chunks are
  in flight; the next chunk is submitted when a result has been received and saved.

Nothing here is imported by :mod:`mano_pde.data` at load time; ``dask`` is imported only when used.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import UserInputError
from .presets import DarcyConfig

__all__ = ["DaskGenerationError", "EXTRA", "require_distributed", "dask_client", "compute_chunks_on_dask"]

log = logging.getLogger(__name__)

#: How to install the optional dependency.
EXTRA = "pip install 'mano-pde[dist]'"
#: Retries of a chunk task that raised an exception (lost workers are handled by the scheduler).
DEFAULT_RETRIES = 3
#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 30


class DaskGenerationError(RuntimeError):
    """The dask cluster cannot be reached, or a chunk could not be computed on it."""


def require_distributed() -> Any:
    """The ``distributed`` module, or an ``ImportError`` naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"generation on dask (--scheduler / --dask-workers) needs dask.distributed, which cannot be imported "
            f"({exc}); install the optional extra: {EXTRA}"
        ) from None
    return distributed


def _chunk_key(token: str, start: int, stop: int) -> str:
    return f"mano-pde-darcy-{token}-{start:09d}-{stop:09d}"


@contextlib.contextmanager
def dask_client(
    scheduler: str | Any | None = None,
    n_workers: int | None = None,
    env: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> Iterator[Any]:
    """A ``distributed.Client`` for the run, closed on exit unless the caller passed it in.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        Address of an existing scheduler (``"tcp://host:8786"``), or a connected client (yielded as is and
        left open).
    n_workers : int, optional
        Without ``scheduler``: start a local cluster of this many single-threaded worker processes.
    env : callable
        Context manager in force while a local cluster lives (e.g. single-threaded BLAS for its workers,
        which inherit the environment whenever they are (re)started).

    Raises
    ------
    ImportError
        ``dask.distributed`` is not installed.
    DaskGenerationError
        The address is malformed or its host unknown (checked before a client exists: a client that fails
        inside its constructor stalls the interpreter for a minute when it is garbage-collected), or the
        scheduler does not answer within :data:`CONNECT_TIMEOUT` seconds.
    """
    distributed = require_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler  # the caller's: left open
        return
    if scheduler is not None:
        _check_address(scheduler)
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise DaskGenerationError(f"cannot connect to the dask scheduler at {scheduler!r}: {exc}") from None
        log.info("dask: connected to %s (%d worker threads)", scheduler, sum(client.nthreads().values()))
        try:
            yield client
        finally:
            client.close()
        return
    # One BLAS thread per worker process; the nanny spawns (and re-spawns) workers with this environment.
    with (
        env(),
        distributed.LocalCluster(
            n_workers=int(n_workers or 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        log.info("dask: local cluster of %d workers, dashboard %s", int(n_workers or 1), client.dashboard_link)
        yield client


def _check_address(scheduler: Any) -> None:
    """Refuse a scheduler address that is not ``[scheme://]host:port`` or whose host does not resolve."""
    from distributed.comm import resolve_address

    if not isinstance(scheduler, str):
        raise DaskGenerationError(
            f"the dask scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
            f"got {type(scheduler).__name__}"
        )
    try:
        resolve_address(scheduler)
    except (ValueError, OSError) as exc:
        raise DaskGenerationError(
            f"cannot connect to the dask scheduler at {scheduler!r}: {exc}; give its address as tcp://HOST:PORT"
        ) from None


def compute_chunks_on_dask(
    client: Any,
    config: DarcyConfig,
    chunks: Sequence[tuple[int, int]],
    dtype: str,
    save: Callable[[int, int, np.ndarray, np.ndarray], None],
    *,
    retries: int = DEFAULT_RETRIES,
) -> None:
    """Compute ``chunks`` on a dask cluster and hand each result to ``save`` as it arrives.

    Parameters
    ----------
    client : distributed.Client
        A client of the cluster (see :func:`dask_client`).
    config : DarcyConfig
        The generator parameters.
    chunks : sequence of (start, stop)
        Sample ranges to compute.
    dtype : {"float32", "float64"}
        Storage precision of the returned arrays.
    save : callable
        ``save(start, stop, a, u)``, called in the client process, once per chunk, in completion order.
    retries : int
        Retries of a task that raised an exception.

    Raises
    ------
    DaskGenerationError
        A chunk failed after its retries, or the workers running it kept dying. The chunks already handed
        to ``save`` are not affected.
    """
    from dask.base import tokenize

    distributed = require_distributed()
    from .samples import chunk_arrays

    fields = {k: getattr(config, k) for k in config.__dataclass_fields__}
    token = tokenize(fields, dtype)
    todo = iter(chunks)
    in_flight: dict[str, tuple[Any, int, int]] = {}  # key -> (future, start, stop)
    running = distributed.as_completed(loop=client.loop)

    def window() -> int:
        return max(2, 2 * sum(client.nthreads().values()))

    def submit_next() -> bool:
        nxt = next(todo, None)
        if nxt is None:
            return False
        start, stop = nxt
        key = _chunk_key(token, start, stop)
        fut = client.submit(chunk_arrays, config, start, stop, dtype, key=key, pure=True, retries=retries)
        in_flight[key] = (fut, start, stop)
        running.add(fut)
        return True

    try:
        limit = window()
        while len(in_flight) < limit and submit_next():
            pass
        for fut in running:
            _, start, stop = in_flight.pop(fut.key)
            try:
                a, u = fut.result()
            except UserInputError:  # the parameters give values the storage dtype cannot hold: no retry helps
                raise
            except Exception as exc:  # task error after retries, KilledWorker, cancelled, ...
                raise DaskGenerationError(
                    f"chunk of samples {start}-{stop - 1} failed on the dask cluster: {type(exc).__name__}: "
                    f"{exc}. The chunks saved so far are kept; rerun the same command to resume"
                ) from exc
            finally:
                fut.release()  # the client holds the arrays now: let the worker free them
            save(start, stop, a, u)
            limit = window()
            while len(in_flight) < limit and submit_next():
                pass
    finally:
        if in_flight:  # interrupted or failed: drop what is still queued (other clients' interest is kept)
            client.cancel([f for f, _, _ in in_flight.values()])
