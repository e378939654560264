"""What runs in the fresh child process of the scaling benchmark: one (model, resolution, mode) configuration.

:func:`measure_config` builds the model and input, makes one warm-up call, then the timed calls, and measures
the peak memory (module docstring of :mod:`mano_pde.benchmarks.scaling`). :func:`_child_main` is the child's
entry point (``python -m mano_pde.benchmarks.scaling --_child-spec <json>``): it applies the start-up
allocator settings of the ``mano-pde`` processes (:func:`mano_pde.process.configure_process`), caps the
address space, calls :func:`measure_config` (or :func:`measure_gemm`) and prints the record on one
``@@RECORD@@`` line of stdout, which the parent (:mod:`mano_pde.benchmarks.scaling.driver`) reads.

Variants: ``precision="bf16"`` runs the forward pass under ``torch.autocast(device, dtype=torch.bfloat16)``
(weights, gradients and optimizer state stay fp32, the loss is computed in fp32); ``compile=True`` measures
``torch.compile(model, dynamic=False)`` (:func:`mano_pde.acceleration.compile_model`, inductor, as
``train --compile`` runs it); its first call compiles, and ``compile_s`` (first call minus the fastest later
call) states the compile time apart from the step time.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from mano_pde.errors import UserInputError
from mano_pde.process import allocator_state, configure_allocator, configure_process, threads_state

from .flops import main_gemm_shapes, model_flops

__all__ = ["MODES", "PRECISIONS", "measure_config", "measure_gemm"]

MODES = ("inference", "train")
PRECISIONS = ("fp32", "bf16")

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


def _malloc_trim() -> bool:
    """Return the free memory of glibc's heaps to the kernel (``malloc_trim(0)``); False off glibc."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        return False
    return True


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
    precision: str = "fp32",
    compile: bool = False,
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
    precision : {"fp32", "bf16"}, optional
        ``"bf16"``: forward under ``torch.autocast(device, dtype=torch.bfloat16)``, fp32 weights and loss.
    compile : bool, optional
        Measure ``torch.compile(model)`` (the first call compiles; ``compile_s`` in the record).

    Returns
    -------
    dict
        Record with ``time_s`` (fastest timed call), ``time_median_s``, ``times_s``, ``peak_mem_mb``,
        ``params``, ``flops`` (multipole-attention models, :func:`~.flops.model_flops`), ...
    """
    import torch
    from neuralop.losses import LpLoss

    from mano_pde.acceleration import bf16_autocast, compile_model
    from mano_pde.models import count_parameters, create_model

    if precision not in PRECISIONS:
        raise UserInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
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
        "precision": precision,
        "compiled": bool(compile),
        "variant": variant_name(precision, compile),
    }
    if hasattr(net, "num_levels"):
        record["levels"] = net.num_levels(resolution, resolution)
    flops = model_flops(net, resolution, resolution, batch_size)
    if flops is not None:
        record["flops"] = flops
    run = compile_model(net, dev) if compile else net  # what `train --compile` runs (dynamic=False)
    autocast = bf16_autocast(dev, enabled=precision == "bf16")

    if mode == "inference":
        net.eval()

        def call() -> None:
            with torch.no_grad(), autocast:
                run(x)

    elif mode == "train":
        net.train()
        loss_fn = LpLoss(d=2, p=2, reduction="sum")
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def call() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast:
                out = run(x)
            loss = loss_fn(out.float(), y)
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
    if compile and dev.type == "cpu" and "VmHWM" in record["memory_method"]:
        # compilation's own memory is no per-call cost: the peak of a compiled model counts from after it, with
        # the memory the first call freed handed back to the kernel (malloc_trim), so the next call pays it again
        gc.collect()
        trimmed = _malloc_trim()
        base = _status_kb("VmRSS") or base
        _reset_peak_rss()
        record["memory_method"] += "; compiled: reset after the first (compiling) call" + (
            ", freed heap returned by malloc_trim(0)" if trimmed else ""
        )
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
        time_s=times_sorted[0],
        time_min_s=times_sorted[0],
        time_median_s=times_sorted[len(times) // 2],
        cpu_time_s=min(cpu_times),
        malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        allocator=allocator_state(),
        omp_wait=threads_state(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        peak_mem_mb=peak,
    )
    if compile:
        record["compile_s"] = max(0.0, warmup - times_sorted[0]) if not record.get("single_cold_call") else None
    return record


def variant_name(precision: str, compile: bool) -> str:
    """Column name of a variant: ``fp32`` (eager), ``bf16``, ``fp32-compiled``, ``bf16-compiled``."""
    return f"{precision}-compiled" if compile else precision


def measure_gemm(
    model: str,
    resolution: int,
    *,
    builder: str | None = None,
    batch_size: int = 1,
    threads: int | None = None,
    precision: str = "fp32",
    model_kwargs: dict[str, Any] | None = None,
    min_time: float = 0.3,
    square: int = 1024,
    **_ignored: Any,
) -> dict[str, Any]:
    """This machine's ``torch.matmul`` throughput for the shapes of a model's main GEMMs (CPU).

    The shapes are :func:`~.flops.main_gemm_shapes` of the model at ``resolution x resolution``; each product
    runs in ``precision`` (both operands fp32 or bf16) after one warm-up, repeated for at least ``min_time``
    seconds (at least 3 times), and its fastest call counts. ``gflops`` is the throughput of the products run
    back to back (sum of FLOPs / sum of fastest times), ``square_gflops`` that of one ``square^3`` product.
    """
    import torch

    from mano_pde.models import create_model

    if precision not in PRECISIONS:
        raise UserInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if threads:
        torch.set_num_threads(threads)
    net = create_model(builder or model, in_channels=1, out_channels=1, **(model_kwargs or {}))
    shapes = main_gemm_shapes(net, resolution, resolution, batch_size)
    record: dict[str, Any] = {
        "model": model,
        "resolution": resolution,
        "mode": "gemm",
        "precision": precision,
        "variant": precision,
        "threads": torch.get_num_threads(),
        "allocator": allocator_state(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    if shapes is None:
        return {**record, "status": "n/a", "error": "no GEMM shapes for this model"}
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    shapes.append({"name": f"square {square}", "a": [square, square], "b": [square, square], "flops": 2 * square**3})
    for s in shapes:
        a, b = torch.randn(s["a"], dtype=dtype), torch.randn(s["b"], dtype=dtype)
        torch.matmul(a, b)
        best, spent, count = float("inf"), 0.0, 0
        while count < 3 or spent < min_time:
            t0 = time.perf_counter()
            torch.matmul(a, b)
            dt = time.perf_counter() - t0
            best, spent, count = min(best, dt), spent + dt, count + 1
        s.update(time_s=best, gflops=s["flops"] / best / 1e9)
    main = shapes[:-1]
    record.update(
        status="ok",
        gemms=main,
        gflops=sum(s["flops"] for s in main) / sum(s["time_s"] for s in main) / 1e9,
        square_gflops=shapes[-1]["gflops"],
    )
    return record


def _apply_startup(startup: dict[str, Any] | None) -> None:
    """The child's start-up settings, before torch is imported: ``None`` = those of every ``mano-pde`` process
    (:func:`~mano_pde.process.configure_process`); a dict (``mano-pde benchmark settings``) = its ``"env"``
    variables, then the malloc profile ``"allocator"`` (``"default"``: glibc's defaults, nothing set)."""
    if startup is None:
        configure_process()
        return
    os.environ.update(startup.get("env", {}))
    configure_allocator(startup.get("allocator", "default"))


def _child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    _apply_startup(spec.pop("startup", None))
    limit_gb = spec.pop("memory_limit_gb", None)
    import torch

    on_cpu = spec.get("device") == "cpu" or (spec.get("device", "auto") == "auto" and not torch.cuda.is_available())
    if limit_gb and on_cpu:  # an address-space cap would break CUDA's large virtual reservations
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        record = measure_gemm(**spec) if spec.get("mode") == "gemm" else measure_config(**spec)
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
