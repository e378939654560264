"""Tables and plots of evaluation records."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..files import atomic_savefig

__all__ = ["results_table", "plot_error_vs_resolution", "plot_predictions"]


def results_table(records: list[dict]) -> str:
    """Markdown table: one row per run and method, one column per test grid; ``*`` marks the training grid.

    Cells hold the mean relative L2 error ± its standard deviation over the test samples.
    """
    resolutions = sorted({r["test_resolution"] for r in records})
    rows: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in records:
        rows[(r["run"], r["model"], tuple(r["train_resolutions"]), r["method"])][r["test_resolution"]] = r
    head = "| run | model | trained on | method | " + " | ".join(f"{s}²" for s in resolutions) + " |"
    sep = "|" + "---|" * (4 + len(resolutions))
    lines = [
        "Relative L2 error (mean ± std over test samples); `*` = training grid. "
        "`direct`: model applied on the test grid (zero-shot when the grid differs); "
        "`resample`: model run on its training grid, prediction interpolated to the test grid; "
        "`ref-grid` (MANO): direct, with multipole windows kept at their training-grid physical size.",
        "",
        head,
        sep,
    ]
    for (run, model, trained, method), cells in rows.items():
        vals = []
        for s in resolutions:
            c = cells.get(s)
            if c is None:
                vals.append("–")
            else:
                mark = "*" if s in trained else ""
                vals.append(f"{c['rel_l2_mean']:.4f} ± {c['rel_l2_std']:.4f}{mark}")
        trained_s = ", ".join(f"{t}²" for t in trained)
        lines.append(f"| {run} | {model} | {trained_s} | {method} | " + " | ".join(vals) + " |")
    n = {r["n_test"] for r in records}
    lines.append("")
    lines.append(f"Test samples per cell: {', '.join(map(str, sorted(n)))}.")
    modes = sorted({(r.get("precision", "fp32"), bool(r.get("compiled"))) for r in records})
    if modes != [("fp32", False)]:
        shown = "; ".join(p + (" autocast" if p == "bf16" else "") + (", torch.compile" if c else "") for p, c in modes)
        lines.append(f"Inference: {shown} (weights fp32, errors computed in fp32).")
    return "\n".join(lines)


def plot_error_vs_resolution(records: list[dict], path: Path) -> None:
    """Log-log plot of mean relative L2 against test grid, one line per run and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    series: dict[tuple, list] = defaultdict(list)
    for r in records:
        series[(r["run"], r["method"])].append((r["test_resolution"], r["rel_l2_mean"], r["train_resolution"]))
    colors = {}
    for (run, method), pts in sorted(series.items()):
        pts.sort()
        color = colors.setdefault(run, f"C{len(colors) % 10}")
        xs, ys, train = zip(*pts, strict=True)
        style = {"direct": "-o", "resample": "--s"}.get(method, ":^")
        ax.plot(xs, ys, style, color=color, label=f"{run} ({method})", markersize=4)
        if method == "direct" and train[0] in xs:
            ax.plot([train[0]], [ys[xs.index(train[0])]], "*", color=color, markersize=14)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = sorted({r["test_resolution"] for r in records})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("test grid points per direction")
    ax.set_ylabel("relative L2 error (mean)")
    ax.set_title("Zero-shot resolution transfer (★ training grid)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def plot_predictions(fields: dict, examples: dict, path: Path, train_res: dict[str, int]) -> None:
    """Permeability, true pressure, each run's prediction and its error at the training and finest grids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = sorted(fields)
    first_train = next(iter(train_res.values()))
    shown = sorted({r for r in (first_train, resolutions[-1]) if r in fields})
    runs = list(examples)
    cols = 2 + 2 * len(runs)
    fig, axes = plt.subplots(
        len(shown), cols, figsize=(2.3 * cols, 2.3 * len(shown) + 0.4), squeeze=False, constrained_layout=True
    )
    for i, res in enumerate(shown):
        a, u = fields[res]["a"], fields[res]["u"]
        panels = [(a, f"a ({res}²)", "viridis", None), (u, "u true", "magma", (u.min(), u.max()))]
        for run in runs:
            pred = examples[run][res]["direct"]
            err = np.abs(pred - u)
            panels.append((pred, f"{run}", "magma", (u.min(), u.max())))
            panels.append((err, f"|error| {np.linalg.norm(pred - u) / np.linalg.norm(u):.3f}", "Reds", None))
        for j, (img, title, cmap, lim) in enumerate(panels):
            ax = axes[i, j]
            im = ax.imshow(
                img,
                origin="lower",
                cmap=cmap,
                extent=(0, 1, 0, 1),
                vmin=None if lim is None else lim[0],
                vmax=None if lim is None else lim[1],
            )
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle("One held-out sample: prediction applied directly on each grid", fontsize=9)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
