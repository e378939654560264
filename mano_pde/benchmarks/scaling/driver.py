"""The parent side of the scaling benchmark: :func:`run_scaling_benchmark` checks the settings, runs every
(model, resolution, mode, variant) in a fresh process (:func:`_run_child`; there, :mod:`.measure` measures),
the variants of one size one after the other and ``rounds`` times over (interleaved, so that a load change on a
shared machine hits them alike; the fastest call over the rounds counts), reports timeouts and out-of-memory
failures, skips sizes extrapolated past the timeout, measures the GEMM throughput of MANO's shapes, collects the
records and writes ``scaling.{json,md,png}`` (:mod:`.report`)."""

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

from .measure import _CHILD_FLAG, MODES, PRECISIONS, variant_name
from .report import format_report, plot, scaling_ratios

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOCATOR_ALIASES",
    "DEFAULT_MODELS",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_RESOLUTIONS",
    "DEFAULT_THREADS",
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

#: torch threads of the measuring processes (the 2 cores of the reference machine).
DEFAULT_THREADS = 2

#: Older ``--allocator`` names: ``system`` = glibc's defaults, ``heap`` = the ``MALLOC_MMAP_MAX_=0`` setting.
ALLOCATOR_ALIASES = {"system": "default", "heap": "no-mmap"}


# --------------------------------------------------------------------------------------------------
# child process: launching one configuration
# --------------------------------------------------------------------------------------------------
def _run_child(
    spec: dict[str, Any], timeout: float, env: dict[str, str] | None = None, drop: Sequence[str] = ()
) -> dict[str, Any]:
    """Run one configuration in a fresh process (``env``: variables set on top of this process's, without
    its ``MALLOC_*`` variables, the start-up settings this process made and the variables named in ``drop``:
    the allocator and thread settings are the children's own)."""
    # the package's __main__ passes _CHILD_FLAG on to measure._child_main (``-m ...scaling.measure`` would run
    # measure a second time as __main__, after the package imported it, and put runpy's RuntimeWarning on stderr)
    cmd = [sys.executable, "-m", "mano_pde.benchmarks.scaling", _CHILD_FLAG, json.dumps(spec)]
    base = {k: spec[k] for k in ("model", "resolution", "mode")}
    base["variant"] = spec.get("variant") or variant_name(spec.get("precision", "fp32"), spec.get("compile", False))
    from mano_pde.process import threads_state

    # the children make their own start-up settings: drop those this process made (and MALLOC_* variables)
    own = set((threads_state() or {}).get("env", {}))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in own and k not in drop}
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


def _check_settings(models, resolutions, modes, batch_size, repeats, rounds, time_budget, timeout, threads) -> None:
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
    for name, value in (("--batch-size", batch_size), ("--repeats", repeats), ("--rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"{name} must be an int >= 1, got {value!r}")
    for name, value in (("--time-budget", time_budget), ("--timeout", timeout)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserInputError(f"{name} must be a positive number of seconds, got {value!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserInputError(f"--threads must be an int >= 1, got {threads!r}")


def _allocator_env(allocator: str | None) -> dict[str, str]:
    """Children's environment for ``allocator`` (``None``: this process's ``MANO_PDE_ALLOCATOR``, if any)."""
    from mano_pde.process import ENV_VAR, PROFILES

    if allocator is None:
        return {}
    profile = ALLOCATOR_ALIASES.get(allocator, allocator)
    if profile not in PROFILES:
        choices = ", ".join([*PROFILES, *ALLOCATOR_ALIASES])
        raise UserInputError(f"--allocator must be one of {choices} (or left out), got {allocator!r}")
    return {ENV_VAR: profile}


def _variants(bf16: bool, compile: bool) -> list[tuple[str, bool]]:
    """``(precision, compiled)`` columns: eager fp32, then bf16, compiled, both (as asked for)."""
    out = [("fp32", False)]
    if bf16:
        out.append(("bf16", False))
    if compile:
        out.append(("fp32", True))
    if bf16 and compile:
        out.append(("bf16", True))
    return out


def _merge_rounds(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from the rounds of one configuration: the fastest call, the smallest peak, all calls kept."""
    ok = [r for r in recs if r.get("status") == "ok"]
    if not ok:
        return recs[-1]
    if len(ok) == 1 and len(recs) == 1:
        return ok[0]
    if ok[0]["mode"] == "gemm":
        best = dict(max(ok, key=lambda r: r["gflops"]))
        best["square_gflops"] = max(r["square_gflops"] for r in ok)
    else:
        best = dict(min(ok, key=lambda r: r["time_s"]))
        best["cpu_time_s"] = min(r["cpu_time_s"] for r in ok)
        best["peak_mem_mb"] = min(r["peak_mem_mb"] for r in ok)
        best["times_s"] = [t for r in ok for t in r["times_s"]]
        if best.get("compiled"):
            # the first round compiles with inductor's on-disk cache as found; later rounds find it warm
            best["compile_s_rounds"] = [r.get("compile_s") for r in ok]
            best["compile_s"] = ok[0].get("compile_s")
    best["rounds"] = len(ok)
    return best


def run_scaling_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    modes: Sequence[str] = MODES,
    *,
    batch_size: int = 1,
    repeats: int = 3,
    rounds: int = 1,
    time_budget: float = 60.0,
    timeout: float = 900.0,
    threads: int | None = DEFAULT_THREADS,
    device: str = "auto",
    memory_limit_gb: float | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    bf16: bool = False,
    compile: bool = False,
    gemm: bool = True,
    allocator: str | None = None,
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
        See :func:`~mano_pde.benchmarks.scaling.measure.measure_config`; ``threads`` defaults to 2.
    rounds : int, optional
        Runs of every configuration, interleaved with the other variants of the same size; the fastest call
        over all rounds is reported. Default 1.
    timeout : float, optional
        Seconds per configuration (process start and model build included). Default 900.
    memory_limit_gb : float, optional
        Address-space cap of each child (default: 90 % of RAM), so that an out-of-memory configuration
        fails inside the child and is reported as ``oom``.
    model_kwargs : dict, optional
        Per-label keyword overrides merged into :data:`DEFAULT_MODEL_KWARGS`.
    bf16, compile : bool, optional
        Also measure the bf16-autocast, compiled and (both set) compiled bf16 variants beside eager fp32.
    gemm : bool, optional
        Measure ``torch.matmul`` throughput of MANO's main GEMM shapes at every resolution (each precision).
    allocator : str, optional
        Allocator profile of the children (:data:`mano_pde.process.PROFILES`, or ``system`` / ``heap``);
        default ``None``: their start-up default (``MANO_PDE_ALLOCATOR`` if set, else ``tuned``).
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
    threads = DEFAULT_THREADS if threads is None else threads
    _check_settings(models, resolutions, modes, batch_size, repeats, rounds, time_budget, timeout, threads)
    env = _allocator_env(allocator)
    info = machine_info()
    if memory_limit_gb is None and info.get("ram_gb"):
        memory_limit_gb = 0.9 * info["ram_gb"]
    builders = dict(_parse_model(m) for m in models)
    labels = list(builders)
    kwargs_by_model = {m: dict(DEFAULT_MODEL_KWARGS.get(m, {})) for m in labels}
    for m, extra in (model_kwargs or {}).items():
        kwargs_by_model.setdefault(m, {}).update(extra)
    variants = _variants(bf16, compile)
    settings = {
        "models": labels,
        "builders": builders,
        "allocator": allocator or "start-up default",
        "allocator_env": env,
        "resolutions": list(resolutions),
        "modes": list(modes),
        "variants": [variant_name(p, c) for p, c in variants],
        "batch_size": batch_size,
        "repeats": repeats,
        "rounds": rounds,
        "time_budget_s": time_budget,
        "timeout_s": timeout,
        "threads": threads,
        "device": device,
        "memory_limit_gb": memory_limit_gb,
        "model_kwargs": kwargs_by_model,
    }
    common = dict(batch_size=batch_size, repeats=repeats, time_budget=time_budget, threads=threads, device=device)
    common["memory_limit_gb"] = memory_limit_gb
    started = _dt.datetime.now().astimezone()
    records: list[dict[str, Any]] = []
    for mode in modes:
        for model in labels:
            failed_at: dict[str, int] = {}
            done: dict[str, list[dict[str, Any]]] = {variant_name(p, c): [] for p, c in variants}
            for n in sorted(resolutions):
                runs: dict[str, list[dict[str, Any]]] = {}
                for _ in range(rounds):
                    for precision, compiled in variants:
                        name = variant_name(precision, compiled)
                        skip = _skip_reason(failed_at.get(name), done[name], n, timeout)
                        if skip is not None:
                            runs[name] = [{"model": model, "resolution": n, "mode": mode, "variant": name, **skip}]
                            continue
                        spec = dict(model=model, builder=builders[model], resolution=n, mode=mode, **common)
                        spec.update(model_kwargs=kwargs_by_model[model], precision=precision, compile=compiled)
                        runs.setdefault(name, []).append(_run_child(spec, timeout, env))
                for precision, compiled in variants:
                    name = variant_name(precision, compiled)
                    rec = _merge_rounds(runs[name])
                    extrapolated = rec["status"] == "skipped" and "extrapolated" in rec.get("error", "")
                    if rec["status"] in ("timeout", "oom") or extrapolated:
                        failed_at.setdefault(name, n)
                    elif rec["status"] == "ok":
                        done[name].append(rec)
                    rec.setdefault("n_points", n * n)
                    records.append(rec)
                    logger.info("%s", _describe(rec))
    if gemm:
        records += _measure_gemms(records, labels, builders, kwargs_by_model, variants, rounds, common, timeout, env)
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


def _skip_reason(failed_at: int | None, done: list[dict[str, Any]], n: int, timeout: float) -> dict[str, Any] | None:
    """Why size ``n`` is not run (a smaller one failed, or its time extrapolates past the timeout), or None."""
    if failed_at is not None:
        return {"status": "skipped", "error": f"not run: {failed_at}x{failed_at} already failed"}
    predicted = _extrapolate(done, n)
    if predicted is not None and 2 * predicted[0] > timeout:
        return {
            "status": "skipped",
            "predicted_time_s": predicted[0],
            "error": f"not run: warm-up + 1 call extrapolated to {2 * predicted[0]:.0f} s "
            f"(time ~ N^{predicted[1]:.2f} from the two previous sizes) > timeout {timeout:.0f} s",
        }
    return None


def _measure_gemms(records, labels, builders, kwargs_by_model, variants, rounds, common, timeout, env):
    """GEMM throughput of the main products of every multipole-attention model, per measured size and precision."""
    precisions = [p for p in PRECISIONS if any(v[0] == p for v in variants)]
    out = []
    for model in labels:
        sizes = sorted({r["resolution"] for r in records if r["model"] == model and r.get("flops")})
        for n in sizes:
            runs: dict[str, list[dict[str, Any]]] = {p: [] for p in precisions}
            for _ in range(rounds):
                for precision in precisions:
                    spec = dict(model=model, builder=builders[model], resolution=n, mode="gemm", **common)
                    spec.update(model_kwargs=kwargs_by_model[model], precision=precision, variant=precision)
                    runs[precision].append(_run_child(spec, timeout, env))
            for precision in precisions:
                rec = _merge_rounds(runs[precision])
                rec.setdefault("n_points", n * n)
                out.append(rec)
                logger.info("%s", _describe(rec))
    return out


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
    head = f"{rec['model']:>17s} {rec['mode']:>9s} {rec.get('variant', 'fp32'):>13s} {rec['resolution']:>5d}^2"
    if rec.get("status") == "ok" and rec["mode"] == "gemm":
        return f"{head}: GEMM {rec['gflops']:8.1f} GFLOP/s (MANO's shapes), {rec['square_gflops']:8.1f} (square)"
    if rec.get("status") == "ok":
        return f"{head}: {rec['time_s'] * 1e3:10.1f} ms  {rec['peak_mem_mb']:9.1f} MB"
    return f"{head}: {rec.get('status')} ({rec.get('error', '')})"
