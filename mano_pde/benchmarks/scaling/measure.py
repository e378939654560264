"""What runs in the fresh child process of the scaling benchmark: one (model, resolution, mode) configuration.

:func:`measure_config` builds the model and input, makes one warm-up call, then the timed calls, and measures
the peak memory (module docstring of :mod:`mano_pde.benchmarks.scaling`). :func:`_child_main` is the child's
entry point (``python -m mano_pde.benchmarks.scaling --_child-spec <json>``): it caps the address space, calls
:func:`measure_config` and prints the record on one ``@@RECORD@@`` line of stdout, which the parent
(:mod:`mano_pde.benchmarks.scaling.driver`) reads.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from mano_pde.errors import UserInputError

__all__ = ["MODES", "measure_config"]

MODES = ("inference", "train")

_CHILD_FLAG = "--_child-spec"


# --------------------------------------------------------------------------------------------------
# child process: one configuration
# --------------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_config(
    model: str,
    resolution: int,
    mode: str,
    *,
    builder: str | None = None,
    batch_size: int = 1,
    repeats: int = 3,
    time_budget: float = 60.0,
    threads: int | None = None,
    device: str = "auto",
    model_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure one configuration in the current process (the benchmark calls it in a fresh process).

    Parameters
    ----------
    model : str
        Registry name (:func:`mano_pde.models.list_models`), or a label if ``builder`` is given.
    resolution : int
        Grid side ``n`` (input ``[batch_size, 1, n, n]``).
    mode : {"inference", "train"}
        Forward pass without gradients, or one full optimisation step.
    builder : str, optional
        Registry name when ``model`` is a label (default: ``model``).
    batch_size : int, optional
        Default 1.
    repeats : int, optional
        Timed calls after one warm-up call (reduced so that they fit in ``time_budget`` seconds).
    time_budget : float, optional
        Seconds available for the timed calls. Default 60.
    threads : int, optional
        ``torch.set_num_threads`` value (default: torch's default).
    device : str, optional
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    model_kwargs : dict, optional
        Keywords for :func:`mano_pde.models.create_model`.
    seed : int, optional
        Seed of the weights and input.

    Returns
    -------
    dict
        Record with ``time_s`` (median), ``time_min_s``, ``times_s``, ``peak_mem_mb``, ``params``, ...
    """
    import torch
    from neuralop.losses import LpLoss

    from mano_pde.models import count_parameters, create_model

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = create_model(builder or model, in_channels=1, out_channels=1, **(model_kwargs or {})).to(dev)
    x = torch.randn(batch_size, 1, resolution, resolution, device=dev)
    y = torch.randn(batch_size, 1, resolution, resolution, device=dev)
    record: dict[str, Any] = {
        "model": model,
        "builder": builder or model,
        "resolution": resolution,
        "n_points": resolution * resolution,
        "mode": mode,
        "batch_size": batch_size,
        "device": device,
        "threads": torch.get_num_threads(),
        "params": count_parameters(net),
        "model_kwargs": model_kwargs or {},
    }
    if hasattr(net, "num_levels"):
        record["levels"] = net.num_levels(resolution, resolution)

    if mode == "inference":
        net.eval()

        def call() -> None:
            with torch.no_grad():
                net(x)

    elif mode == "train":
        net.train()
        loss_fn = LpLoss(d=2, p=2, reduction="sum")
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def call() -> None:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()

    else:
        raise UserInputError(f"mode must be one of {MODES}, got {mode!r}")

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    import gc

    gc.collect()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        record["memory_method"] = "torch.cuda.max_memory_allocated - allocated before"
    else:
        base = _status_kb("VmRSS")
        if _reset_peak_rss() and base is not None:
            record["memory_method"] = "VmHWM (reset via /proc/self/clear_refs) - VmRSS before, Linux"
        else:
            base = base or 0
            record["memory_method"] = "ru_maxrss - VmRSS before (upper bound if an earlier peak was higher)"

    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    call()
    sync()
    warmup, warmup_cpu = time.perf_counter() - t0, time.process_time() - c0
    # calls slower than the whole budget are measured once (the warm-up call, flagged as such)
    n_timed = 0 if warmup > time_budget else max(1, min(repeats, int(time_budget // max(warmup, 1e-9))))
    times, cpu_times = [], []
    for _ in range(n_timed):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)

    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    else:
        hwm = _status_kb("VmHWM") if "VmHWM" in record["memory_method"] else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max(0, hwm - base) / 1024
    if not times:
        times, cpu_times = [warmup], [warmup_cpu]
        record["single_cold_call"] = True
    times_sorted = sorted(times)
    record.update(
        status="ok",
        warmup_s=warmup,
        times_s=times,
        time_s=times_sorted[len(times) // 2],
        time_min_s=times_sorted[0],
        cpu_time_s=sorted(cpu_times)[len(cpu_times) // 2],
        malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        peak_mem_mb=peak,
    )
    return record


def _child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    limit_gb = spec.pop("memory_limit_gb", None)
    import torch

    on_cpu = spec.get("device") == "cpu" or (spec.get("device", "auto") == "auto" and not torch.cuda.is_available())
    if limit_gb and on_cpu:  # an address-space cap would break CUDA's large virtual reservations
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        record = measure_config(**spec)
    except (MemoryError, RuntimeError) as err:
        msg = str(err)
        oom = isinstance(err, MemoryError) or "memory" in msg.lower() or "alloc" in msg.lower()
        if not oom:
            raise
        record = {
            "model": spec["model"],
            "resolution": spec["resolution"],
            "mode": spec["mode"],
            "status": "oom",
            "error": msg.splitlines()[0][:300] if msg else type(err).__name__,
        }
    print("@@RECORD@@" + json.dumps(record), flush=True)
    return 0
