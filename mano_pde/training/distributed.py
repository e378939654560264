"""Data-parallel training with ``torch.distributed``: process group, batch sharding and reductions.

Launch ``mano-pde train`` under ``torchrun``::

    torchrun --standalone --nproc_per_node=4 -m mano_pde.cli train ... --batch-size 32 -o runs/x

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; when they
say ``WORLD_SIZE > 1`` the trainer joins the process group (``nccl`` on CUDA, one GPU per process:
``cuda:LOCAL_RANK``; ``gloo`` on the CPU), wraps the model in ``DistributedDataParallel`` and splits every
batch across the processes. A caller that initialised the process group itself (e.g. with
``torch.multiprocessing.spawn``) is used as is and keeps ownership of it.

How a batch is split, and why not ``DistributedSampler``
--------------------------------------------------------
``--batch-size`` stays the **global** batch: every process draws the same batches from ``(seed, epoch)``
(:func:`mano_pde.training.splits.epoch_batches`, homogeneous in grid) and takes its contiguous share
(:meth:`DistContext.shard`: ``batch_size / world_size`` samples; the last, partial batch of a grid is split
as evenly as possible). ``torch.utils.data.DistributedSampler`` does not fit: it shards one dataset's
indices per epoch, so it cannot keep a multi-resolution batch within one grid, and it pads the epoch by
repeating samples, which would change the loss. Splitting the single-process batch instead keeps the
optimisation the same run: each process scales its summed loss by ``world_size / global_batch`` and DDP
averages the gradients over the processes, which gives exactly ``(1 / global_batch) * sum of per-sample
gradients`` -- the single-process gradient (up to float reduction order). A process whose share of a short
last batch is empty still runs one sample with weight 0, because every process must join each gradient
all-reduce.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..device import resolve_device
from ..errors import UserInputError

__all__ = ["DistContext", "setup_distributed", "is_main_process", "TORCHRUN_VARS"]

log = logging.getLogger(__name__)

#: Environment variables set by ``torchrun`` for each process.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) data-parallel run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        This process's rank, the number of processes, and its rank on its node.
    device : torch.device
        The device this process trains on (``cuda:local_rank`` under DDP on GPUs).
    backend : str or None
        ``"gloo"`` or ``"nccl"``; ``None`` for single-process training.
    owns_group : bool
        Whether :func:`setup_distributed` initialised the process group (and :meth:`close` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch (sizes differ by at most one; may be empty)."""
        if not self.enabled:
            return indices
        return torch.tensor_split(indices, self.world_size)[self.rank]

    def barrier(self) -> None:
        """Wait for every process (no-op for one process)."""
        if self.enabled:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over the processes (float64; the values themselves for one process)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (picklable objects)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` under DDP (parameters broadcast from rank 0), else ``model``."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def close(self) -> None:
        """Destroy the process group if :func:`setup_distributed` created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise UserInputError(
            f"distributed training: environment variable {name}={value!r} is not an integer "
            "(launch with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)"
        ) from None


def is_main_process() -> bool:
    """Rank 0 of the current run, or not part of a distributed run (from the process group or ``RANK``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0").strip() in ("", "0")


def _check_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        raise UserInputError(
            f"--batch-size {batch_size} is the global batch and must be a multiple of the number of processes "
            f"({world_size}); use --batch-size {lower or world_size} or {lower + world_size}"
        )


def setup_distributed(device: str, batch_size: int) -> DistContext:
    """Join the data-parallel run this process belongs to, if any.

    Parameters
    ----------
    device : str
        The requested device (``auto``, ``cpu``, ``cuda``, ``cuda:N``). Under DDP on CUDA each process uses
        ``cuda:LOCAL_RANK`` whatever ``N``.
    batch_size : int
        The global batch size; it must be a multiple of the world size (checked before joining the group).

    Returns
    -------
    DistContext
        Single-process when no process group is initialised and ``WORLD_SIZE`` is unset or 1.

    Raises
    ------
    mano_pde.errors.UserInputError
        A malformed torchrun environment, or a batch size the world size does not divide.
    """
    requested = resolve_device(device)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        _check_batch(batch_size, world)
        backend = str(dist.get_backend())
        dev = torch.device("cuda", local_rank) if requested.type == "cuda" else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistContext(rank, world, local_rank, dev, backend, owns_group=False)
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1:
        return DistContext(device=requested)
    missing = [v for v in TORCHRUN_VARS if v not in os.environ]
    if missing:
        raise UserInputError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for distributed training but {', '.join(missing)} "
            "is not set; launch with torchrun (torchrun --nproc_per_node=N -m mano_pde.cli train ...)"
        )
    if not dist.is_available():
        raise UserInputError(
            "WORLD_SIZE > 1 asks for distributed training, but this torch build has no torch.distributed"
        )
    world, rank, local_rank = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    _check_batch(batch_size, world)
    if requested.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserInputError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices: start at most one "
                "process per GPU (--nproc_per_node)"
            )
        if requested.index is not None and requested.index != local_rank:
            log.warning("--device %s ignored under DDP: process %d uses cuda:%d", device, rank, local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(dev)
    else:
        dev, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    if rank == 0:
        log.info("distributed training: %d processes, backend %s", world, backend)
    return DistContext(rank, world, local_rank, dev, backend, owns_group=True)
