"""Markdown report and log-log plot of the scaling benchmark's records.

:func:`format_report` turns the result of :func:`mano_pde.benchmarks.scaling.run_scaling_benchmark` into the
``scaling.md`` tables, :func:`scaling_ratios` computes the growth and speed ratios it lists (measurements only,
no pass/fail verdicts), and :func:`plot` draws ``scaling.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mano_pde.files import atomic_savefig

from .measure import MODES

__all__ = ["format_report", "plot", "scaling_ratios"]


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _find(records, model, mode, n):
    for r in records:
        if r["model"] == model and r["mode"] == mode and r["resolution"] == n:
            return r
    return None


def scaling_ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth and speed ratios of MANO computed from the measured records (``value`` is None if not measurable).

    Parameters
    ----------
    records : list of dict
        Records of :func:`mano_pde.benchmarks.scaling.run_scaling_benchmark`.

    Returns
    -------
    list of dict
        ``{"quantity": str, "value": float or None, "detail": str}`` for: MANO's time and peak-memory growth
        from 128^2 to 512^2 (each mode), global attention's time over MANO's at 256^2 (each mode) and MANO's
        training-step time over FNO's (``fno`` and, if measured, ``fno-small``) at 128^2.
    """
    ratios: list[dict[str, Any]] = []
    ok = lambda r: r is not None and r.get("status") == "ok"  # noqa: E731

    for mode in MODES:
        a, b = _find(records, "mano", mode, 128), _find(records, "mano", mode, 512)
        for key, label in (("time_s", "time"), ("peak_mem_mb", "peak memory")):
            t = {"quantity": f"MANO {mode} {label} growth 128^2 -> 512^2 (grid points: 16x)"}
            if ok(a) and ok(b) and a[key] > 0:
                ratio = b[key] / a[key]
                detail = f"{ratio:.1f}x"
                if key == "time_s" and a.get("cpu_time_s"):
                    detail += f"; CPU time {b['cpu_time_s'] / a['cpu_time_s']:.1f}x"
                t.update(value=ratio, detail=detail)
            else:
                t.update(value=None, detail="not measured")
            ratios.append(t)

    for mode in MODES:
        m, g = _find(records, "mano", mode, 256), _find(records, "global-attention", mode, 256)
        t = {"quantity": f"global attention time / MANO time at 256^2 ({mode})"}
        if ok(m) and ok(g):
            ratio = g["time_s"] / m["time_s"]
            t.update(value=ratio, detail=f"{ratio:.0f}x")
        elif ok(m) and g is not None and g.get("status") in ("timeout", "skipped", "oom"):
            t.update(value=None, detail=f"global attention: {g['status']} ({g.get('error', '')})")
        else:
            t.update(value=None, detail="not measured")
        ratios.append(t)

    for label in ("fno", "fno-small"):
        m, f = _find(records, "mano", "train", 128), _find(records, label, "train", 128)
        if f is None and label != "fno":
            continue
        t = {"quantity": f"MANO training step time / `{label}`'s at 128^2"}
        if ok(m) and ok(f):
            ratio = m["time_s"] / f["time_s"]
            t.update(value=ratio, detail=f"{ratio:.2f}x (params: MANO {m['params']:,}, {label} {f['params']:,})")
        else:
            t.update(value=None, detail="not measured")
        ratios.append(t)
    return ratios


def _fmt_cell(r, key, scale, digits):
    if r is None:
        return "--"
    if r.get("status") != "ok":
        return r.get("status", "?")
    mark = "*" if r.get("single_cold_call") and key != "peak_mem_mb" else ""
    return f"{r[key] * scale:.{digits}f}{mark}"


def format_report(result: dict[str, Any]) -> str:
    """Markdown: settings, machine, per-mode tables of time and memory, and the ratios.

    The ratios are ``result["ratios"]`` (:func:`scaling_ratios`), computed from the records if absent.
    """
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
    lines.append("Ratios:")
    lines.append("")
    ratios = result["ratios"] if "ratios" in result else scaling_ratios(records)
    for t in ratios:
        lines.append(f"- {t['quantity']}: {t['detail']}")
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
