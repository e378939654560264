"""The parent side of the scaling benchmark: :func:`run_scaling_benchmark` checks the settings, runs every
(model, resolution, mode) in a fresh process (:func:`_run_child`; there, :mod:`.measure` measures), reports
timeouts and out-of-memory failures, skips sizes extrapolated past the timeout, collects the records and
writes ``scaling.{json,md,png}`` (:mod:`.report`)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError
from mano_pde.files import atomic_write_text

from .measure import _CHILD_FLAG, MODES
from .report import format_report, plot, scaling_ratios

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_RESOLUTIONS",
    "HEAP_ALLOCATOR_ENV",
    "machine_info",
    "run_scaling_benchmark",
]

DEFAULT_MODELS = ("mano", "global-attention", "window-attention", "fno", "fno-small=fno")
DEFAULT_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)

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

#: Child-process environment for ``--allocator heap`` (see the docstring of :mod:`mano_pde.benchmarks.scaling`).
HEAP_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}


# --------------------------------------------------------------------------------------------------
# child process: launching one configuration
# --------------------------------------------------------------------------------------------------
def _run_child(spec: dict[str, Any], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    # the package's __main__ passes _CHILD_FLAG on to measure._child_main (``-m ...scaling.measure`` would run
    # measure a second time as __main__, after the package imported it, and put runpy's RuntimeWarning on stderr)
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
        See :func:`~mano_pde.benchmarks.scaling.measure.measure_config`; ``threads`` defaults to the number of CPUs.
    timeout : float, optional
        Seconds per configuration (process start and model build included). Default 900.
    memory_limit_gb : float, optional
        Address-space cap of each child (default: 90 % of RAM), so that an out-of-memory configuration
        fails inside the child and is reported as ``oom``.
    model_kwargs : dict, optional
        Per-label keyword overrides merged into :data:`DEFAULT_MODEL_KWARGS`.
    allocator : {"heap", "system"}, optional
        glibc malloc setting of the children (docstring of :mod:`mano_pde.benchmarks.scaling`). Default ``"heap"``.
    output_dir : str or Path or None, optional
        Where the outputs go (``None``: not written).
    command : str, optional
        Command line recorded in the outputs.

    Returns
    -------
    dict
        ``{"records": [...], "machine": {...}, "settings": {...}, "ratios": [...], "markdown": str}``
        (``ratios``: :func:`~mano_pde.benchmarks.scaling.report.scaling_ratios`).
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
    result["ratios"] = scaling_ratios(records)
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
