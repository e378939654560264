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
#: Column names of the variants (eager fp32 / bf16 / compiled / both).
VARIANT_LABELS = {"fp32": "eager fp32", "bf16": "bf16", "fp32-compiled": "compiled", "bf16-compiled": "bf16+compiled"}


def _find(records, model, mode, n, variant="fp32"):
    for r in records:
        if r["model"] == model and r["mode"] == mode and r["resolution"] == n and r.get("variant", "fp32") == variant:
            return r
    return None


def _ok(r) -> bool:
    return r is not None and r.get("status") == "ok"


def _variants(records) -> list[str]:
    present = {r.get("variant", "fp32") for r in records if r.get("mode") in MODES}
    return [v for v in VARIANT_LABELS if v in present] or ["fp32"]


def _gflops(r) -> float | None:
    """Achieved GFLOP/s of a record (analytic FLOPs of its mode over its time), None without a FLOP count."""
    if not _ok(r) or not r.get("flops") or r["time_s"] <= 0:
        return None
    return r["flops"]["forward" if r["mode"] == "inference" else "train"] / r["time_s"] / 1e9


def scaling_ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth, speed and arithmetic ratios of MANO from the measured records (``value`` None if not measurable).

    Parameters
    ----------
    records : list of dict
        Records of :func:`mano_pde.benchmarks.scaling.run_scaling_benchmark`.

    Returns
    -------
    list of dict
        ``{"quantity": str, "value": float or None, "detail": str}`` for: MANO's time and peak-memory growth
        from 128^2 to 512^2 (each mode and variant), global attention's time over MANO's at 256^2 (each mode),
        MANO's training-step time over FNO's (``fno`` and, if measured, ``fno-small``) at 128^2, and, where
        measured, each variant's speed-up over eager fp32 at 128^2 and the achieved GFLOP/s over the GEMM
        throughput of the same precision at 128^2.
    """
    ratios: list[dict[str, Any]] = []
    variants = _variants(records)
    for mode in MODES:
        for variant in variants:
            a, b = _find(records, "mano", mode, 128, variant), _find(records, "mano", mode, 512, variant)
            tag = "" if variant == "fp32" else f" [{VARIANT_LABELS[variant]}]"
            for key, label in (("time_s", "time"), ("peak_mem_mb", "peak memory")):
                t = {"quantity": f"MANO {mode} {label} growth 128^2 -> 512^2 (grid points: 16x){tag}"}
                if _ok(a) and _ok(b) and a[key] > 0:
                    ratio = b[key] / a[key]
                    detail = f"{ratio:.1f}x"
                    if key == "time_s" and a.get("cpu_time_s"):
                        detail += f"; CPU time {b['cpu_time_s'] / a['cpu_time_s']:.1f}x"
                    t.update(value=ratio, detail=detail)
                elif variant != "fp32":
                    continue
                else:
                    t.update(value=None, detail="not measured")
                ratios.append(t)

    for mode in MODES:
        m, g = _find(records, "mano", mode, 256), _find(records, "global-attention", mode, 256)
        t = {"quantity": f"global attention time / MANO time at 256^2 ({mode})"}
        if _ok(m) and _ok(g):
            ratio = g["time_s"] / m["time_s"]
            t.update(value=ratio, detail=f"{ratio:.0f}x")
        elif _ok(m) and g is not None and g.get("status") in ("timeout", "skipped", "oom"):
            t.update(value=None, detail=f"global attention: {g['status']} ({g.get('error', '')})")
        else:
            t.update(value=None, detail="not measured")
        ratios.append(t)

    for label in ("fno", "fno-small"):
        m, f = _find(records, "mano", "train", 128), _find(records, label, "train", 128)
        if f is None and label != "fno":
            continue
        t = {"quantity": f"MANO training step time / `{label}`'s at 128^2"}
        if _ok(m) and _ok(f):
            ratio = m["time_s"] / f["time_s"]
            t.update(value=ratio, detail=f"{ratio:.2f}x (params: MANO {m['params']:,}, {label} {f['params']:,})")
        else:
            t.update(value=None, detail="not measured")
        ratios.append(t)

    for mode in MODES:
        base = _find(records, "mano", mode, 128)
        for variant in variants[1:]:
            r = _find(records, "mano", mode, 128, variant)
            if _ok(base) and _ok(r):
                speedup = base["time_s"] / r["time_s"]
                detail = f"{speedup:.2f}x ({base['time_s'] * 1e3:.1f} ms -> {r['time_s'] * 1e3:.1f} ms)"
                if r.get("compile_s") is not None:
                    detail += f", compile time {r['compile_s']:.1f} s"
                quantity = f"MANO {mode} speed-up of {VARIANT_LABELS[variant]} over eager fp32 at 128^2"
                ratios.append({"quantity": quantity, "value": speedup, "detail": detail})
        for variant in variants:
            r = _find(records, "mano", mode, 128, variant)
            achieved = _gflops(r)
            gemm = _find(records, "mano", "gemm", 128, r.get("precision", "fp32")) if r else None
            if achieved is not None and _ok(gemm):
                share = achieved / gemm["gflops"]
                ratios.append(
                    {
                        "quantity": f"MANO {mode} achieved / GEMM throughput ({r['precision']}) at 128^2 "
                        f"[{VARIANT_LABELS[variant]}]",
                        "value": share,
                        "detail": f"{100 * share:.0f} % ({achieved:.1f} of {gemm['gflops']:.1f} GFLOP/s; "
                        f"square GEMM {gemm['square_gflops']:.1f})",
                    }
                )
    return ratios


def _fmt_cell(r, key, scale, digits):
    if r is None:
        return "--"
    if r.get("status") != "ok":
        return r.get("status", "?")
    if r.get(key) is None:
        return "--"
    mark = "*" if r.get("single_cold_call") and key != "peak_mem_mb" else ""
    return f"{r[key] * scale:.{digits}f}{mark}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|---:|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _arithmetic_tables(records, resolutions, variants) -> list[str]:
    """Per model with FLOP counts and mode: GFLOP per call, achieved GFLOP/s per variant, GEMM throughput."""
    lines: list[str] = []
    precisions = [p for p in ("fp32", "bf16") if any(v.startswith(p) for v in variants)]
    models = list(dict.fromkeys(r["model"] for r in records if r.get("flops")))
    for model in models:
        for mode in MODES:
            if not any(r.get("flops") and r["model"] == model and r["mode"] == mode for r in records):
                continue
            header = ["n x n", "GFLOP per call"]
            header += [f"{VARIANT_LABELS[v]} GFLOP/s" for v in variants]
            header += [f"GEMM {p} (MANO's shapes)" for p in precisions] + [f"GEMM {p} (square)" for p in precisions]
            header += [f"{VARIANT_LABELS[v]} % of GEMM {v.split('-')[0]}" for v in variants]
            rows = []
            for n in resolutions:
                recs = [_find(records, model, mode, n, v) for v in variants]
                flops = next((r["flops"] for r in recs if _ok(r) and r.get("flops")), None)
                if flops is None:
                    continue
                gemm = {p: _find(records, model, "gemm", n, p) for p in precisions}
                row = [f"{n}x{n}", f"{flops['forward' if mode == 'inference' else 'train'] / 1e9:.2f}"]
                row += [f"{g:.1f}" if (g := _gflops(r)) is not None else "--" for r in recs]
                row += [f"{gemm[p]['gflops']:.1f}" if _ok(gemm[p]) else "--" for p in precisions]
                row += [f"{gemm[p]['square_gflops']:.1f}" if _ok(gemm[p]) else "--" for p in precisions]
                for v, r in zip(variants, recs, strict=True):
                    g, ref = _gflops(r), gemm.get(v.split("-")[0])
                    row.append(f"{100 * g / ref['gflops']:.0f} %" if g is not None and _ok(ref) else "--")
                rows.append(row)
            lines += _table(f"{model} {mode}: achieved arithmetic throughput", header, rows)
    if models:
        lines += [
            "FLOPs: products only (`mano_pde/benchmarks/scaling/flops.py`; a training step = 3 x forward minus the "
            "lifting's input gradient). GEMM: `torch.matmul` throughput of the level-0 Q/K/V, attention, output and "
            "MLP products of one block, run back to back (fastest of repeated calls), and of one 1024^3 product.",
            "",
        ]
    return lines


def format_report(result: dict[str, Any]) -> str:
    """Markdown: settings, machine, per-mode tables of time and memory (a column per model and variant), the
    variants' speed-ups and compile times, the achieved GFLOP/s beside the GEMM throughput, and the ratios.

    The ratios are ``result["ratios"]`` (:func:`scaling_ratios`), computed from the records if absent.
    """
    records, info, s = result["records"], result["machine"], result["settings"]
    models, resolutions = s["models"], sorted(s["resolutions"])
    variants = s.get("variants") or _variants(records)
    allocators = {json.dumps(r["allocator"], sort_keys=True) for r in records if r.get("allocator")}
    if allocators:
        allocator = "children applied " + "; ".join(sorted(allocators))
    else:
        allocator = f"{s.get('allocator', 'system')} {json.dumps(s.get('allocator_env', {}))}"
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"- Date: {result['started']} to {result['finished']}",
        f"- Machine: {info.get('cpu_model', '?')}, nproc = {info.get('nproc')}, RAM {info.get('ram_gb')} GB; "
        f"load average before {info.get('load_average')}, after {result.get('machine_load_after')}",
        f"- torch {info.get('torch')}, neuraloperator {info.get('neuraloperator')}, Python {info.get('python')}; "
        f"device {s['device']}, torch threads {s['threads']}, batch {s['batch_size']}",
        f"- Timing: fastest of up to {s['repeats']} calls after one warm-up, each configuration in a fresh "
        f"process ({s.get('rounds', 1)} round(s), variants interleaved), timeout {s['timeout_s']:.0f} s; memory: "
        f"peak RSS increase over the pre-call RSS (CPU); allocator: {allocator}",
        f"- Variants: {', '.join(VARIANT_LABELS.get(v, v) for v in variants)}",
        "",
    ]
    params = {}
    for r in records:
        if r.get("status") == "ok" and "params" in r:
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
    columns = [(m, v) for m in models for v in variants]
    names = [m if len(variants) == 1 else f"{m} {VARIANT_LABELS.get(v, v)}" for m, v in columns]
    for mode in s["modes"]:
        for key, label, scale, digits in (
            ("time_s", "wall time [ms]", 1e3, 1),
            ("cpu_time_s", "CPU time of the process [ms]", 1e3, 1),
            ("peak_mem_mb", "peak memory [MB]", 1, 1),
        ):
            rows = [
                [f"{n}x{n}", *(_fmt_cell(_find(records, m, mode, n, v), key, scale, digits) for m, v in columns)]
                for n in resolutions
            ]
            lines += _table(f"{mode}, {label}", ["n x n", *names], rows)
        if len(variants) > 1:
            rows, comp = [], []
            for n in resolutions:
                row, crow = [f"{n}x{n}"], [f"{n}x{n}"]
                for m in models:
                    base = _find(records, m, mode, n)
                    for v in variants[1:]:
                        r = _find(records, m, mode, n, v)
                        row.append(f"{base['time_s'] / r['time_s']:.2f}x" if _ok(base) and _ok(r) else "--")
                        if v.endswith("compiled"):
                            crow.append(_fmt_cell(r, "compile_s", 1, 1))
                rows.append(row)
                comp.append(crow)
            header = ["n x n", *(f"{m} {VARIANT_LABELS[v]}" for m in models for v in variants[1:])]
            lines += _table(f"{mode}, speed-up over eager fp32 (time ratio)", header, rows)
            compiled = [v for v in variants if v.endswith("compiled")]
            if compiled:
                header = ["n x n", *(f"{m} {VARIANT_LABELS[v]}" for m in models for v in compiled)]
                title = (
                    f"{mode}, compile time [s] (first call minus the fastest call, first round; not in the times above)"
                )
                lines += _table(title, header, comp)
    lines += _arithmetic_tables(records, resolutions, variants)
    if any(r.get("single_cold_call") for r in records):
        lines.append("`*`: one call longer than the time budget: the warm-up call itself is the measurement.")
        lines.append("")
    notes = [r for r in records if r.get("status") not in ("ok", None)]
    if notes:
        lines.append("Not measured:")
        lines.append("")
        for r in notes:
            lines.append(
                f"- {r['model']} {r['mode']} {r.get('variant', 'fp32')} {r['resolution']}x{r['resolution']}: "
                f"{r['status']} -- {r.get('error', '')}"
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
    series = list(dict.fromkeys((r["model"], r.get("variant", "fp32")) for r in records if r["mode"] in MODES))
    for col, mode in enumerate(MODES):
        for row, (key, ylabel, scale) in enumerate(
            (("time_s", "time [s]", 1.0), ("peak_mem_mb", "peak memory [MB]", 1.0))
        ):
            ax = axes[row, col]
            for model, variant in series:
                pts = [
                    (r["n_points"], r[key] * scale)
                    for r in records
                    if r["model"] == model
                    and r.get("variant", "fp32") == variant
                    and r["mode"] == mode
                    and r.get("status") == "ok"
                    and r[key] > 0
                ]
                if pts:
                    xs, ys = zip(*sorted(pts), strict=True)
                    label = model if variant == "fp32" else f"{model} {VARIANT_LABELS.get(variant, variant)}"
                    ax.plot(xs, ys, marker="o", label=label)
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
