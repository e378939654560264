"""Scaling benchmark: time and peak memory of MANO vs global attention, window attention and FNO.

``mano-pde benchmark scaling`` (or ``python -m mano_pde.benchmarks.scaling``) measures, for every model
and square resolution ``n x n`` (32 ... 1024 by default), batch 1:

* **inference** -- one forward pass under ``torch.no_grad()`` in eval mode;
* **train** -- one optimisation step: forward, relative L2 loss (neuralop's ``LpLoss``), backward,
  Adam update.

Every (model, resolution, mode) configuration runs in a **fresh Python process**, so allocator caches,
autotuning and the memory of earlier configurations cannot leak into its numbers. In that process the
model and input are built, one warm-up call is made, then ``repeats`` timed calls (median and minimum
reported; fewer repeats when one call is slow, see ``--time-budget``).

Peak memory
-----------
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the first call.
* CPU: torch has no peak-allocation counter on CPU and ``tracemalloc`` does not see its allocations, so
  the honest measurement is the operating system's: the process's peak resident set size (``VmHWM``,
  reset through ``/proc/self/clear_refs`` right before the first call; ``ru_maxrss`` if that is not
  permitted) minus its resident set size at that moment (``VmRSS``, after the model, the optimizer and
  the input exist). This is the extra physical memory the calls needed -- activations, autograd
  buffers, optimizer state created by the first step, workspace and allocator slack -- and excludes the
  interpreter, torch and the weights.

Allocator
---------
glibc's ``malloc`` serves allocations above its mmap threshold (at most 32 MB) with fresh ``mmap``
pages and returns them on ``free``, so every large tensor is page-faulted and zeroed again on every
call. A 64-channel activation is 4 MB at 128 x 128 (reused from the heap, no faults) but 67 MB at
512 x 512 (faulted on every call): time then grows faster than the work, for an allocator reason.
``--allocator heap`` (the default) runs each child with ``MALLOC_MMAP_MAX_=0`` and a very large
``MALLOC_TRIM_THRESHOLD_`` so that freed memory is reused at every size, the effect PyTorch's CPU
performance guide gets from jemalloc/tcmalloc; ``--allocator system`` leaves glibc's defaults. The
setting applies to every model alike and is recorded in the outputs.

A configuration that exceeds the per-configuration ``--timeout`` is reported as ``timeout`` (and larger
resolutions of that model and mode are not attempted, nor are those whose time per call, extrapolated
from the two previous sizes, would exceed it); one that runs out of memory (the child's address space is
capped at ``--memory-limit-gb``) is reported as ``oom``. Neither stops the run.

Models are registry names, optionally labelled: ``fno-small=fno`` measures the registry's ``fno`` under
the label ``fno-small`` with the keywords ``--model-kwargs`` gives for that label.

Outputs (in ``--output-dir``): ``scaling.json`` (records + machine info, torch version, date, command),
``scaling.md`` (tables and the evaluation of the MANO targets) and ``scaling.png`` (log-log plot).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError
from mano_pde.files import atomic_savefig, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL_KWARGS",
    "add_arguments",
    "format_report",
    "machine_info",
    "measure_config",
    "run",
    "run_scaling_benchmark",
]

DEFAULT_MODELS = ("mano", "global-attention", "window-attention", "fno", "fno-small=fno")
DEFAULT_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
MODES = ("inference", "train")

#: Model configurations measured by default (keyed by label): the attention models share width, depth and
#: heads (only the token mixer differs); ``fno`` is the registry's FNO-paper Darcy preset (neuralop's FNO,
#: 2.37 M parameters); ``fno-small`` is the same FNO with ``n_modes=(8, 6)``, 0.27 M parameters, about
#: MANO's 0.28 M (the parameter-matched comparison).
DEFAULT_MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "mano": dict(hidden_channels=64, n_layers=4, n_heads=4, window_size=8),
    "global-attention": dict(hidden_channels=64, n_layers=4, n_heads=4),
    "window-attention": dict(hidden_channels=64, n_layers=4, n_heads=4, window_size=8),
    "fno": dict(),
    "fno-small": dict(n_modes=[8, 6]),
    "tfno": dict(),
}

#: Child-process environment for ``--allocator heap`` (see the module docstring).
HEAP_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}

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


def _run_child(spec: dict[str, Any], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mano_pde.benchmarks.scaling", _CHILD_FLAG, json.dumps(spec)]
    base = {"model": spec["model"], "resolution": spec["resolution"], "mode": spec["mode"]}
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    child_env.update(env or {})
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env)
    except subprocess.TimeoutExpired:
        return {**base, "status": "timeout", "error": f"no result within the {timeout:.0f} s timeout"}
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("@@RECORD@@"):
            record = json.loads(line[len("@@RECORD@@") :])
            record["process_wall_s"] = wall
            return record
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    killed = proc.returncode < 0 or proc.returncode == 137
    return {
        **base,
        "status": "oom" if killed else "error",
        "error": f"exit code {proc.returncode}: " + " | ".join(tail),
    }


# --------------------------------------------------------------------------------------------------
# parent: the whole benchmark
# --------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model, core count, RAM, OS, Python/torch/neuralop versions and load average."""
    from mano_pde.provenance import machine_info as machine
    from mano_pde.provenance import package_versions

    info = machine()
    info.update({k: v for k, v in package_versions(("torch", "neuraloperator")).items() if k != "python"})
    return info


def _check_settings(models, resolutions, modes, batch_size, repeats, time_budget, timeout, threads) -> None:
    """Refuse settings that cannot be measured, before any child process starts (raises UserInputError)."""
    from mano_pde.models.registry import list_models

    known = list_models()
    if not models:
        raise UserInputError(f"give at least one model; registry names: {', '.join(known)}")
    unknown = [m for m in models if _parse_model(m)[1] not in known]
    if unknown:
        raise UserInputError(
            f"unknown model(s) {', '.join(map(repr, unknown))}: --models takes registry names ({', '.join(known)}), "
            "optionally labelled as label=registry_name"
        )
    bad = [n for n in resolutions if isinstance(n, bool) or not isinstance(n, int) or n < 2]
    if not resolutions or bad:
        raise UserInputError(f"--resolutions takes grid sides n >= 2 (n x n inputs), got {list(resolutions)}")
    wrong = [m for m in modes if m not in MODES]
    if not modes or wrong:
        raise UserInputError(f"--modes takes {' and/or '.join(MODES)}, got {list(modes)}")
    for name, value in (("--batch-size", batch_size), ("--repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"{name} must be an int >= 1, got {value!r}")
    for name, value in (("--time-budget", time_budget), ("--timeout", timeout)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserInputError(f"{name} must be a positive number of seconds, got {value!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserInputError(f"--threads must be an int >= 1, got {threads!r}")


def run_scaling_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    modes: Sequence[str] = MODES,
    *,
    batch_size: int = 1,
    repeats: int = 3,
    time_budget: float = 60.0,
    timeout: float = 900.0,
    threads: int | None = None,
    device: str = "auto",
    memory_limit_gb: float | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    allocator: str = "heap",
    output_dir: str | Path | None = "results/scaling",
    command: str | None = None,
) -> dict[str, Any]:
    """Run every configuration in a fresh process and write ``scaling.{json,md,png}``.

    Parameters
    ----------
    models, resolutions, modes
        What to measure: registry names or ``label=registry_name``, grid sides ``n`` for ``n x n``
        inputs, ``inference`` and/or ``train``.
    batch_size, repeats, time_budget, threads, device
        See :func:`measure_config`; ``threads`` defaults to the number of CPUs.
    timeout : float, optional
        Seconds per configuration (process start and model build included). Default 900.
    memory_limit_gb : float, optional
        Address-space cap of each child (default: 90 % of RAM), so that an out-of-memory configuration
        fails inside the child and is reported as ``oom``.
    model_kwargs : dict, optional
        Per-label keyword overrides merged into :data:`DEFAULT_MODEL_KWARGS`.
    allocator : {"heap", "system"}, optional
        glibc malloc setting of the children (module docstring). Default ``"heap"``.
    output_dir : str or Path or None, optional
        Where the outputs go (``None``: not written).
    command : str, optional
        Command line recorded in the outputs.

    Returns
    -------
    dict
        ``{"records": [...], "machine": {...}, "settings": {...}, "targets": [...], "markdown": str}``.
    """
    _check_settings(models, resolutions, modes, batch_size, repeats, time_budget, timeout, threads)
    threads = threads or os.cpu_count() or 1
    if allocator not in ("heap", "system"):
        raise UserInputError(f"allocator must be 'heap' or 'system', got {allocator!r}")
    env = dict(HEAP_ALLOCATOR_ENV) if allocator == "heap" else {}
    info = machine_info()
    if memory_limit_gb is None and info.get("ram_gb"):
        memory_limit_gb = 0.9 * info["ram_gb"]
    builders = dict(_parse_model(m) for m in models)
    labels = list(builders)
    kwargs_by_model = {m: dict(DEFAULT_MODEL_KWARGS.get(m, {})) for m in labels}
    for m, extra in (model_kwargs or {}).items():
        kwargs_by_model.setdefault(m, {}).update(extra)
    settings = {
        "models": labels,
        "builders": builders,
        "allocator": allocator,
        "allocator_env": env,
        "resolutions": list(resolutions),
        "modes": list(modes),
        "batch_size": batch_size,
        "repeats": repeats,
        "time_budget_s": time_budget,
        "timeout_s": timeout,
        "threads": threads,
        "device": device,
        "memory_limit_gb": memory_limit_gb,
        "model_kwargs": kwargs_by_model,
    }
    started = _dt.datetime.now().astimezone()
    records: list[dict[str, Any]] = []
    for mode in modes:
        for model in labels:
            failed_at: int | None = None
            done: list[dict[str, Any]] = []
            for n in sorted(resolutions):
                predicted = _extrapolate(done, n)
                if failed_at is not None:
                    rec = {
                        "model": model,
                        "resolution": n,
                        "mode": mode,
                        "status": "skipped",
                        "error": f"not run: {failed_at}x{failed_at} already failed",
                    }
                elif predicted is not None and 2 * predicted[0] > timeout:
                    rec = {
                        "model": model,
                        "resolution": n,
                        "mode": mode,
                        "status": "skipped",
                        "predicted_time_s": predicted[0],
                        "error": f"not run: warm-up + 1 call extrapolated to {2 * predicted[0]:.0f} s "
                        f"(time ~ N^{predicted[1]:.2f} from the two previous sizes) > timeout {timeout:.0f} s",
                    }
                    failed_at = n
                else:
                    spec = dict(
                        model=model,
                        builder=builders[model],
                        resolution=n,
                        mode=mode,
                        batch_size=batch_size,
                        repeats=repeats,
                        time_budget=time_budget,
                        threads=threads,
                        device=device,
                        model_kwargs=kwargs_by_model[model],
                        memory_limit_gb=memory_limit_gb,
                    )
                    rec = _run_child(spec, timeout, env)
                    if rec["status"] in ("timeout", "oom"):
                        failed_at = n
                    elif rec["status"] == "ok":
                        done.append(rec)
                rec.setdefault("n_points", n * n)
                records.append(rec)
                logger.info("%s", _describe(rec))
    finished = _dt.datetime.now().astimezone()
    result = {
        "records": records,
        "machine": info,
        "machine_load_after": machine_info().get("load_average"),
        "settings": settings,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "command": command or "python -m mano_pde.benchmarks.scaling",
    }
    result["targets"] = evaluate_targets(records)
    result["markdown"] = format_report(result)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {k: v for k, v in result.items() if k != "markdown"}
        atomic_write_text(out / "scaling.json", json.dumps(record, indent=2))
        atomic_write_text(out / "scaling.md", result["markdown"])
        try:
            plot(records, out / "scaling.png", title=f"{info.get('cpu_model', '')}, torch threads = {threads}")
            result["plot"] = str(out / "scaling.png")
        except ImportError:  # pragma: no cover - matplotlib is a dependency, but stay robust
            logger.warning("matplotlib not available: no plot written")
    return result


def _parse_model(item: str) -> tuple[str, str]:
    """``"label=registry_name"`` or ``"registry_name"`` -> ``(label, registry_name)``."""
    label, _, builder = item.partition("=")
    return label.strip(), (builder or label).strip()


def _extrapolate(done: list[dict[str, Any]], n: int) -> tuple[float, float] | None:
    """Time per call at ``n x n`` extrapolated from the last two measured sizes (exponent >= 1)."""
    if len(done) < 2:
        return None
    a, b = done[-2], done[-1]
    if a["time_s"] <= 0 or b["time_s"] <= 0:
        return None
    slope = max(1.0, math.log(b["time_s"] / a["time_s"]) / math.log(b["n_points"] / a["n_points"]))
    return b["time_s"] * (n * n / b["n_points"]) ** slope, slope


def _describe(rec: dict[str, Any]) -> str:
    head = f"{rec['model']:>17s} {rec['mode']:>9s} {rec['resolution']:>5d}^2"
    if rec.get("status") == "ok":
        return f"{head}: {rec['time_s'] * 1e3:10.1f} ms  {rec['peak_mem_mb']:9.1f} MB"
    return f"{head}: {rec.get('status')} ({rec.get('error', '')})"


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _find(records, model, mode, n):
    for r in records:
        if r["model"] == model and r["mode"] == mode and r["resolution"] == n:
            return r
    return None


def evaluate_targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the issue's targets against the measured records (``met`` is None if not measurable)."""
    targets: list[dict[str, Any]] = []
    ok = lambda r: r is not None and r.get("status") == "ok"  # noqa: E731

    for mode in MODES:
        a, b = _find(records, "mano", mode, 128), _find(records, "mano", mode, 512)
        for key, label in (("time_s", "time"), ("peak_mem_mb", "peak memory")):
            t = {"target": f"MANO {mode} {label} 128^2 -> 512^2 grows <= 18x (linear: 16x)"}
            if ok(a) and ok(b) and a[key] > 0:
                ratio = b[key] / a[key]
                detail = f"{ratio:.1f}x"
                if key == "time_s" and a.get("cpu_time_s"):
                    detail += f"; CPU time {b['cpu_time_s'] / a['cpu_time_s']:.1f}x"
                t.update(value=ratio, met=ratio <= 18.0, detail=detail)
            else:
                t.update(value=None, met=None, detail="not measured")
            targets.append(t)

    for mode in MODES:
        m, g = _find(records, "mano", mode, 256), _find(records, "global-attention", mode, 256)
        t = {"target": f"MANO >= 50x faster than global attention at 256^2 ({mode})"}
        if ok(m) and ok(g):
            ratio = g["time_s"] / m["time_s"]
            t.update(value=ratio, met=ratio >= 50.0, detail=f"{ratio:.0f}x")
        elif ok(m) and g is not None and g.get("status") in ("timeout", "skipped", "oom"):
            t.update(value=None, met=True, detail=f"global attention: {g['status']} ({g.get('error', '')})")
        else:
            t.update(value=None, met=None, detail="not measured")
        targets.append(t)

    for label in ("fno", "fno-small"):
        m, f = _find(records, "mano", "train", 128), _find(records, label, "train", 128)
        if f is None and label != "fno":
            continue
        t = {"target": f"MANO training step <= 1.5x FNO's at 128^2, comparable parameter count (vs `{label}`)"}
        if ok(m) and ok(f):
            ratio = m["time_s"] / f["time_s"]
            t.update(
                value=ratio,
                met=ratio <= 1.5,
                detail=f"{ratio:.2f}x (params: MANO {m['params']:,}, {label} {f['params']:,})",
            )
        else:
            t.update(value=None, met=None, detail="not measured")
        targets.append(t)
    return targets


def _fmt_cell(r, key, scale, digits):
    if r is None:
        return "--"
    if r.get("status") != "ok":
        return r.get("status", "?")
    mark = "*" if r.get("single_cold_call") and key != "peak_mem_mb" else ""
    return f"{r[key] * scale:.{digits}f}{mark}"


def format_report(result: dict[str, Any]) -> str:
    """Markdown: settings, machine, per-mode tables of time and memory, and the targets."""
    records, info, s = result["records"], result["machine"], result["settings"]
    models, resolutions = s["models"], sorted(s["resolutions"])
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"- Date: {result['started']} to {result['finished']}",
        f"- Machine: {info.get('cpu_model', '?')}, nproc = {info.get('nproc')}, RAM {info.get('ram_gb')} GB; "
        f"load average before {info.get('load_average')}, after {result.get('machine_load_after')}",
        f"- torch {info.get('torch')}, neuraloperator {info.get('neuraloperator')}, Python {info.get('python')}; "
        f"device {s['device']}, torch threads {s['threads']}, batch {s['batch_size']}",
        f"- Timing: median of up to {s['repeats']} calls after one warm-up, each configuration in a fresh "
        f"process, timeout {s['timeout_s']:.0f} s; memory: peak RSS increase over the pre-call RSS (CPU); "
        f"allocator: {s.get('allocator', 'system')} {json.dumps(s.get('allocator_env', {}))}",
        "",
    ]
    params = {}
    for r in records:
        if r.get("status") == "ok":
            params[r["model"]] = r["params"]
    lines.append(
        "Models: "
        + "; ".join(
            f"`{m}` ({s.get('builders', {}).get(m, m)}) {params.get(m, 0):,} params "
            f"{json.dumps(s['model_kwargs'].get(m, {}))}"
            for m in models
        )
    )
    lines.append("")
    for mode in s["modes"]:
        for key, label, scale, digits in (
            ("time_s", "wall time [ms]", 1e3, 1),
            ("cpu_time_s", "CPU time of the process [ms]", 1e3, 1),
            ("peak_mem_mb", "peak memory [MB]", 1, 1),
        ):
            lines.append(f"**{mode}, {label}**")
            lines.append("")
            lines.append("| n x n | " + " | ".join(models) + " |")
            lines.append("|---:|" + "---:|" * len(models))
            for n in resolutions:
                cells = [_fmt_cell(_find(records, m, mode, n), key, scale, digits) for m in models]
                lines.append(f"| {n}x{n} | " + " | ".join(cells) + " |")
            lines.append("")
    if any(r.get("single_cold_call") for r in records):
        lines.append("`*`: one call longer than the time budget: the warm-up call itself is the measurement.")
        lines.append("")
    notes = [r for r in records if r.get("status") not in ("ok", None)]
    if notes:
        lines.append("Not measured:")
        lines.append("")
        for r in notes:
            lines.append(
                f"- {r['model']} {r['mode']} {r['resolution']}x{r['resolution']}: {r['status']} -- {r.get('error', '')}"
            )
        lines.append("")
    lines.append("Targets:")
    lines.append("")
    for t in result["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: **{verdict}** ({t['detail']})")
    lines.append("")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Log-log plot of time and peak memory against the number of grid points (one panel per mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), sharex=True)
    models = list(dict.fromkeys(r["model"] for r in records))
    for col, mode in enumerate(MODES):
        for row, (key, ylabel, scale) in enumerate(
            (("time_s", "time [s]", 1.0), ("peak_mem_mb", "peak memory [MB]", 1.0))
        ):
            ax = axes[row, col]
            for model in models:
                pts = [
                    (r["n_points"], r[key] * scale)
                    for r in records
                    if r["model"] == model and r["mode"] == mode and r.get("status") == "ok" and r[key] > 0
                ]
                if pts:
                    xs, ys = zip(*sorted(pts), strict=True)
                    ax.plot(xs, ys, marker="o", label=model)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{mode}: {ylabel.split(' [')[0]}")
            ax.set_ylabel(ylabel)
            if row == 1:
                ax.set_xlabel("grid points H x W")
            panel = [
                (r["n_points"], r[key]) for r in records if r["mode"] == mode and r.get("status") == "ok" and r[key] > 0
            ]
            if len(panel) > 1:
                x0 = min(p[0] for p in panel)
                x1 = max(p[0] for p in panel)
                y0 = min(p[1] for p in panel)
                for slope, style in ((1, ":"), (2, "--")):
                    ax.plot(
                        [x0, x1], [y0, y0 * (x1 / x0) ** slope], "k" + style, lw=0.8, alpha=0.5, label=f"O(N^{slope})"
                    )
                ax.set_ylim(bottom=y0 / 2, top=max(p[1] for p in panel) * 2)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.suptitle(f"mano-pde benchmark scaling (batch 1){' -- ' + title if title else ''}")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``benchmark scaling`` options to ``parser``."""
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="registry names to measure, optionally labelled as label=registry_name",
    )
    parser.add_argument(
        "--resolutions", nargs="+", type=int, default=list(DEFAULT_RESOLUTIONS), help="grid sides n (n x n)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="what to measure")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up call")
    parser.add_argument(
        "--time-budget", type=float, default=60.0, help="seconds for the timed calls of one configuration"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration (fresh process)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: number of CPUs)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--memory-limit-gb", type=float, default=None, help="address-space cap per configuration (default 90%% RAM)"
    )
    parser.add_argument(
        "--model-kwargs",
        type=json.loads,
        default=None,
        help='JSON per-model overrides, e.g. \'{"mano": {"hidden_channels": 32}}\'',
    )
    parser.add_argument(
        "--allocator",
        choices=("heap", "system"),
        default="heap",
        help="glibc malloc of the measuring processes: heap = reuse freed memory (no mmap), system = defaults",
    )
    parser.add_argument("--output-dir", default="results/scaling", help="where scaling.{json,md,png} go")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; prints the markdown report. Returns the exit code."""
    command = getattr(args, "command_line", None) or " ".join(
        [Path(sys.argv[0]).name, *(shlex.quote(a) for a in sys.argv[1:])]
    )
    if not logging.getLogger().handlers:  # progress lines on stderr when the caller set up no logging
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run_scaling_benchmark(
        models=args.models,
        resolutions=args.resolutions,
        modes=args.modes,
        batch_size=args.batch_size,
        repeats=args.repeats,
        time_budget=args.time_budget,
        timeout=args.timeout,
        threads=args.threads,
        device=args.device,
        memory_limit_gb=args.memory_limit_gb,
        model_kwargs=args.model_kwargs,
        allocator=args.allocator,
        output_dir=args.output_dir,
        command=command,
    )
    sys.stdout.write(result["markdown"])
    if args.output_dir:
        sys.stdout.write(f"\nWrote {Path(args.output_dir) / 'scaling.json'}, scaling.md, scaling.png\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [_CHILD_FLAG]:
        return _child_main(argv[1])
    parser = argparse.ArgumentParser(prog="python -m mano_pde.benchmarks.scaling", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_line = "python -m mano_pde.benchmarks.scaling " + " ".join(shlex.quote(a) for a in argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
