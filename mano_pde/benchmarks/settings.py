"""``mano-pde benchmark settings``: does a process-wide start-up setting earn its place as a default?

The rule (issue 19): a setting ships in :func:`mano_pde.process.configure_process` only if, on an idle machine
(load average below 1 when the benchmark starts; the output says what it was), it slows **no** model of the
registry by more than 5 % against a plain process, for training steps and inference, on every grid measured
(33², 129², 513² by default; global attention, quadratic, up to 129²) with 1 and 2 threads, and speeds up at
least one of them by more than 10 %.

Every figure is taken in a fresh process (:func:`mano_pde.benchmarks.scaling.driver._run_child`, the scaling
benchmark's child, :func:`~mano_pde.benchmarks.scaling.measure.measure_config`): the variants of one
configuration run one after the other and the whole matrix ``rounds`` times over, so that a change of load hits
the variants alike; the fastest call over the rounds counts. The children start from this process's environment
without its ``MALLOC_*``, ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``GLIBC_TUNABLES`` and ``MANO_PDE_ALLOCATOR``
variables, so ``plain`` is a process with nothing set, and each variant sets only its own settings (:data:`VARIANTS`).

Output: one table per thread count, rows (model, grid, mode), the plain process's time and each variant's time
as a ratio to it (``0.60`` = 40 % faster), then each variant's verdict under the rule; ``settings.json`` keeps
every record (times of every call, CPU time, peak memory, the settings the child found).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError
from mano_pde.files import atomic_write_text

__all__ = ["DEFAULT_MODELS", "DEFAULT_RESOLUTIONS", "VARIANTS", "add_arguments", "judge", "run", "run_settings"]

log = logging.getLogger(__name__)

#: Start-up settings that can be measured: ``None`` = what :func:`mano_pde.process.configure_process` does in
#: this version (what every ``mano-pde`` process runs); a dict = environment variables set before torch loads
#: and a malloc profile of :data:`mano_pde.process.PROFILES`.
VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": {"env": {}, "allocator": "default"},
    "shipped": None,
    "allocator": {"env": {}, "allocator": "tuned"},
    "omp-passive": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "allocator": "default"},
    "allocator+omp-passive": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "allocator": "tuned"},
}
DEFAULT_VARIANTS = ("plain", "shipped")
DEFAULT_MODELS = ("mano", "fno", "tfno", "window-attention", "global-attention")
DEFAULT_RESOLUTIONS = (33, 129, 513)
#: Largest grid global attention (O(N²) memory and time) is measured on.
GLOBAL_MAX = 129
#: Variables the children do not inherit: the settings under test are theirs alone.
_DROP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "GLIBC_TUNABLES", "MANO_PDE_ALLOCATOR", "THP_MEM_ALLOC_ENABLE")
#: The rule: no slow-down above 5 %, at least one speed-up above 10 %.
MAX_SLOWDOWN = 1.05
MIN_SPEEDUP = 1.10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``benchmark settings`` options to ``parser``."""
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="registry names (defaults each)")
    parser.add_argument("--resolutions", nargs="+", type=int, default=list(DEFAULT_RESOLUTIONS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch threads of the children")
    parser.add_argument("--modes", nargs="+", choices=("train", "inference"), default=["train", "inference"])
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(DEFAULT_VARIANTS),
        help="start-up settings to measure; plain (nothing set) is always measured",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 on grids up to 64, 1 on finer grids")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the matrix (fastest call counts)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per process (after one warm-up)")
    parser.add_argument("--time-budget", type=float, default=3.0, help="seconds for the timed calls of a process")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    parser.add_argument("--output-dir", default="results/settings", help="where settings.{json,md} go")


def _check(models, resolutions, threads, variants, batch_size, rounds, repeats, time_budget, timeout) -> None:
    from mano_pde.models.registry import list_models

    unknown = [m for m in models if m not in list_models()]
    if not models or unknown:
        raise UserInputError(f"--models takes registry names ({', '.join(list_models())}), got {list(models)}")
    for name, values in (("--resolutions", resolutions), ("--threads", threads)):
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise UserInputError(f"{name} takes positive integers, got {list(values)}")
    if any(n < 3 for n in resolutions):
        raise UserInputError(f"--resolutions must be at least 3 points, got {list(resolutions)}")
    wrong = [v for v in variants if v not in VARIANTS]
    if wrong:
        raise UserInputError(f"unknown variant(s) {wrong}; choose from {', '.join(VARIANTS)}")
    for name, value in (("--time-budget", time_budget), ("--timeout", timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UserInputError(f"{name} must be a positive number of seconds, got {value!r}")
    for name, value in (("--rounds", rounds), ("--repeats", repeats), ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserInputError(f"{name} must be an int >= 1, got {value!r}")


def _configurations(models, resolutions, modes, threads) -> list[tuple[str, int, str, int]]:
    return [
        (model, n, mode, t)
        for t in threads
        for model in models
        for n in resolutions
        if not (model == "global-attention" and n > GLOBAL_MAX)
        for mode in modes
    ]


def run_settings(
    models: Sequence[str] = DEFAULT_MODELS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    modes: Sequence[str] = ("train", "inference"),
    threads: Sequence[int] = (1, 2),
    variants: Sequence[str] = DEFAULT_VARIANTS,
    *,
    batch_size: int | None = None,
    rounds: int = 2,
    repeats: int = 5,
    time_budget: float = 3.0,
    timeout: float = 600.0,
    output_dir: str | Path | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Measure the matrix (module docstring) and judge every variant; returns ``{"records", "verdicts", ...}``."""
    from .scaling.driver import _merge_rounds, _run_child, machine_info

    variants = ["plain", *[v for v in dict.fromkeys(variants) if v != "plain"]]
    _check(models, resolutions, threads, variants, batch_size, rounds, repeats, time_budget, timeout)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if not load < 1.0:
        log.warning("load average %.2f at the start: the rule asks for an idle machine (below 1)", load)
    configs = _configurations(models, resolutions, modes, threads)
    runs: dict[tuple, list[dict[str, Any]]] = {}
    total, done = rounds * len(configs) * len(variants), 0
    for round_ in range(rounds):
        for model, n, mode, t in configs:
            for variant in variants:  # interleaved: the variants of one configuration back to back
                spec = {
                    "model": model,
                    "resolution": n,
                    "mode": mode,
                    "threads": t,
                    "batch_size": batch_size or (4 if n <= 64 else 1),
                    "repeats": repeats,
                    "time_budget": time_budget,
                    "device": "cpu",
                    "startup": VARIANTS[variant],
                }
                rec = _run_child(spec, timeout, drop=_DROP)
                rec.update(variant=variant, threads=t, round=round_)
                runs.setdefault((model, n, mode, t, variant), []).append(rec)
                done += 1
                log.info(
                    "[%d/%d] %s %d² %s %d thread(s) %s: %s",
                    done,
                    total,
                    model,
                    n,
                    mode,
                    t,
                    variant,
                    f"{rec['time_s'] * 1e3:.1f} ms" if rec.get("status") == "ok" else rec.get("error"),
                )
    records = []
    for key, recs in runs.items():
        merged = _merge_rounds(recs)
        merged.update(variant=key[4], threads=key[3])
        records.append(merged)
    result = {
        "benchmark": "settings",
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_start": load,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "rule": {"max_slowdown": MAX_SLOWDOWN, "min_speedup": MIN_SPEEDUP},
        "variant_settings": {v: VARIANTS[v] for v in variants},
        "records": records,
    }
    result["verdicts"] = judge(records)
    result["markdown"] = format_report(result)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "settings.json", json.dumps(result, indent=1, default=str) + "\n")
        atomic_write_text(out / "settings.md", result["markdown"])
    return result


def _ratios(records: list[dict[str, Any]]) -> dict[tuple, dict[str, float]]:
    """``{(model, n, mode, threads): {variant: time / plain time}}`` (measured pairs only)."""
    by_key: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault((r["model"], r["resolution"], r["mode"], r["threads"]), {})[r["variant"]] = r
    out = {}
    for key, recs in by_key.items():
        plain = recs.get("plain")
        if plain is None or plain.get("status") != "ok":
            continue
        out[key] = {
            v: r["time_s"] / plain["time_s"] for v, r in recs.items() if v != "plain" and r.get("status") == "ok"
        }
    return out


def judge(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each variant under the rule: the worst slow-down and best speed-up against plain, and whether it passes.

    A variant passes if its time is at most :data:`MAX_SLOWDOWN` times plain's everywhere and at most
    ``1 / MIN_SPEEDUP`` times plain's somewhere; a configuration it failed to run counts against it.
    """
    ratios = _ratios(records)
    variants = sorted({v for r in ratios.values() for v in r} | {r["variant"] for r in records} - {"plain"})
    verdicts = {}
    for v in variants:
        pairs = {k: r[v] for k, r in ratios.items() if v in r}
        failed = [k for k, r in ratios.items() if v not in r]
        if not pairs:
            verdicts[v] = {"passes": False, "reason": "not measured"}
            continue
        worst = max(pairs, key=pairs.get)
        best = min(pairs, key=pairs.get)
        passes = not failed and pairs[worst] <= MAX_SLOWDOWN and pairs[best] <= 1.0 / MIN_SPEEDUP
        verdicts[v] = {
            "passes": passes,
            "worst": {"config": list(worst), "ratio": pairs[worst]},
            "best": {"config": list(best), "ratio": pairs[best]},
            "slower_than_rule": sorted([list(k) for k, r in pairs.items() if r > MAX_SLOWDOWN]),
            "failed_configs": [list(k) for k in failed],
        }
    return verdicts


def _describe(key: Sequence) -> str:
    model, n, mode, t = key
    return f"{model} {n}² {mode}, {t} thread{'s' if t > 1 else ''}"


def format_report(result: dict[str, Any]) -> str:
    """Markdown: the settings, one ratio table per thread count, the verdicts."""
    records = result["records"]
    ratios = _ratios(records)
    plain = {
        (r["model"], r["resolution"], r["mode"], r["threads"]): r
        for r in records
        if r["variant"] == "plain" and r.get("status") == "ok"
    }
    variants = [v for v in result["variant_settings"] if v != "plain"]
    m = result["machine"]
    lines = [
        "## Start-up settings against a plain process",
        "",
        f"`{result['command']}`",
        "",
        f"{result['date']}; {m.get('cpu_model', '?')}, {m.get('nproc', '?')} cores; torch {m.get('torch', '?')}; "
        f"load average {result['load_average_start']:.2f} at the start, {result['load_average_end']:.2f} at the end.",
        "",
        "Variants: "
        + "; ".join(
            f"`{v}` = " + ("configure_process() of this version" if s is None else json.dumps(s, sort_keys=True))
            for v, s in result["variant_settings"].items()
        ),
        "",
        "Each cell: fastest call of the variant / fastest call of a plain process (fresh processes, variants "
        "interleaved, fastest over the rounds); below 1 is faster.",
    ]
    for t in sorted({k[3] for k in ratios}):
        lines += ["", f"### {t} thread{'s' if t > 1 else ''}", ""]
        lines += ["| model | grid | mode | batch | plain (ms) | " + " | ".join(variants) + " |"]
        lines += ["|---|---|---|---|---|" + "---|" * len(variants)]
        for key in sorted((k for k in ratios if k[3] == t), key=lambda k: (k[0], k[1], k[2])):
            cells = [f"{ratios[key][v]:.2f}" if v in ratios[key] else "failed" for v in variants]
            p = plain[key]
            lines.append(
                f"| {key[0]} | {key[1]}² | {key[2]} | {p['batch_size']} | {p['time_s'] * 1e3:.1f} | "
                + " | ".join(cells)
                + " |"
            )
    lines += ["", f"### Verdicts (≤ {MAX_SLOWDOWN:.2f}× everywhere and ≤ {1 / MIN_SPEEDUP:.2f}× somewhere)", ""]
    for v, verdict in result["verdicts"].items():
        if "worst" not in verdict:
            lines.append(f"- `{v}`: fails ({verdict['reason']})")
            continue
        slower = len(verdict["slower_than_rule"])
        lines.append(
            f"- `{v}`: **{'passes' if verdict['passes'] else 'fails'}**. Worst {verdict['worst']['ratio']:.2f}× "
            f"({_describe(verdict['worst']['config'])}), best {verdict['best']['ratio']:.2f}× "
            f"({_describe(verdict['best']['config'])}); {slower} configuration(s) slower than the rule allows"
            + (f", {len(verdict['failed_configs'])} failed to run" if verdict["failed_configs"] else "")
            + "."
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """The command: run the matrix, print the report. Returns the exit code."""
    command = getattr(args, "command_line", None) or "mano-pde benchmark settings " + " ".join(
        shlex.quote(a) for a in sys.argv[3:]
    )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run_settings(
        args.models,
        args.resolutions,
        args.modes,
        args.threads,
        args.variants,
        batch_size=args.batch_size,
        rounds=args.rounds,
        repeats=args.repeats,
        time_budget=args.time_budget,
        timeout=args.timeout,
        output_dir=args.output_dir,
        command=command,
    )
    sys.stdout.write(result["markdown"])
    if args.output_dir:
        sys.stdout.write(f"\nWrote {Path(args.output_dir) / 'settings.json'} and settings.md\n")
    return 0
