"""What an experiment's summary says, as markdown and plots: results per arm, learning curves, targets.

Everything here reads the summary of :func:`mano_pde.experiments.run_experiment` (or its ``*.json`` file) and the
runs' own files; nothing trains or evaluates.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..files import atomic_savefig

__all__ = [
    "learning_curve",
    "validation_summary",
    "plot_learning_curves",
    "experiment_markdown",
    "validation_markdown",
    "coordinates_markdown",
    "targets_markdown",
    "tuning_markdown",
    "experiment_minutes",
    "comparisons",
    "study_markdown",
    "still_improving",
]

#: ``mano_pde.training.trainer.FINAL_METRICS`` (not imported: this module must not load torch).
FINAL_METRICS = "final_metrics.json"
METHODS = ("direct", "ref-grid", "resample")
METHODS_NOTE = (
    "`*` training grid; `direct` = model applied on the test grid (zero-shot on finer grids), `ref-grid` = MANO "
    "applied on the test grid with its multipole windows kept at their training-grid physical size (zero-shot, same "
    "weights; `MultipoleAttention` reference-grid mode), `resample` = model run on its training grid and its "
    "prediction interpolated (bilinear)."
)
#: What the verdict table says of a comparison over per-sample errors that are not all finite (a test field of zero
#: norm makes its relative error 0/0): the bootstrap refuses them, the report goes on.
NOT_FINITE = "not computed (non-finite per-sample errors)"
#: A run whose best validation epoch lies in this last fraction of its epochs was still improving.
LATE_FRACTION = 0.1


def learning_curve(run_dir: str | Path) -> dict[str, list[float]]:
    """A run's per-epoch log as columns: ``epoch``, ``train_loss`` and the held-out errors.

    With a validation split (``n_val > 0``) the held-out columns are ``val_rel_l2_{r}`` (the learning curves
    on validation data), else ``test_rel_l2_{r}``.

    Parameters
    ----------
    run_dir : path-like
        A run directory of :func:`mano_pde.training.train`.

    Returns
    -------
    dict
        Column name to per-epoch values (``epoch`` as integers).
    """
    with open(Path(run_dir) / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [k for k in (rows[0] if rows else {}) if k == "epoch" or k == "train_loss" or "_rel_l2_" in k]
    return {k: [int(r[k]) if k == "epoch" else float(r[k]) for r in rows] for k in keep}


def validation_summary(run_dir: str | Path) -> dict[str, Any]:
    """Learning curve and final metrics of a run trained with a validation split (``final_metrics.json``; for a run
    whose test file the experiment's evaluation scores, the validation summary of its ``log.csv``)."""
    from ..training.logs import read_log, validation_metrics

    curve = learning_curve(run_dir)
    path = Path(run_dir) / FINAL_METRICS
    if path.is_file():
        return {"learning_curve": curve, **json.loads(path.read_text())}
    fields = [k for k in curve if k.startswith("val_rel_l2_")]
    return {"learning_curve": curve, **validation_metrics(read_log(Path(run_dir) / "log.csv"), fields)}


def plot_learning_curves(runs: dict[str, dict], path: Path) -> Path:
    """One plot of every run's validation error per epoch (mean over its training grids); ``multi`` dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors: dict[str, str] = {}
    shown: set[str] = set()
    for key, v in runs.items():
        arm, model = key.split("/", 1)
        model = model.split("/", 1)[0]  # a seeded run's label ends in /seed<k>: one colour and legend entry per model
        curve = v["learning_curve"]
        fields = [k for k in curve if k.startswith("val_rel_l2_")]
        ys = [sum(vals) / len(fields) for vals in zip(*(curve[f] for f in fields), strict=True)]
        color = colors.setdefault(model, f"C{len(colors)}")
        label = f"{model} ({arm})"
        ax.plot(
            curve["epoch"], ys, "--" if arm == "multi" else "-", color=color, label=None if label in shown else label
        )
        shown.add(label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation relative L2 (mean over training grids)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path


def experiment_minutes(summary: dict[str, Any]) -> float:
    """Wall time of an uninterrupted experiment: data generation + every run's training + evaluation, minutes."""
    return (summary["data"]["generation_s"] + sum(summary["train_wall_s"].values()) + summary["eval_wall_s"]) / 60


def _test_grids(cfg: dict[str, Any]) -> list[int]:
    grids = {s for arm in cfg["arms"].values() if arm.get("evaluate") for s in arm["evaluate"]["resolutions"]}
    return sorted(grids)


def _data_lines(cfg: dict[str, Any]) -> list[str]:
    """One description per generated data entry (generator parameters with their defaults filled in)."""
    from ..data.presets import DarcyConfig

    out = []
    for key, entry in cfg["data"].items():
        gen = entry.get("generate")
        if gen is None:
            out.append(f"`{key}` = `{entry['path']}`")
            continue
        c = DarcyConfig(**gen)
        law = f"a ∈ {{{c.high:g}, {c.low:g}}}" if c.permeability_map == "piecewise" else f"a = exp({c.sigma:g} g)"
        out.append(
            f"`{key}`: {c.n_samples} samples at {c.resolution}² (seed {c.seed}; α = {c.alpha:g}, τ = {c.tau:g}, "
            f"{law}, f = {c.forcing:g}, {c.face_average} faces)"
        )
    return out


def _arm_configs(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The training configuration of each arm that ran (its first run's; the arm's runs differ only in model)."""
    out: dict[str, dict[str, Any]] = {}
    for label, run in summary["runs"].items():
        out.setdefault(label.split("/", 1)[0], run["config"])
    return out


def _training_line(summary: dict[str, Any]) -> str:
    arms = _arm_configs(summary)
    if not arms:
        return ""
    first = next(iter(arms.values()))
    cfg = summary["config"]
    per_model = any(m.get("train") for m in cfg["models"].values())
    seeds = cfg.get("seeds")
    parts = []
    for name, c in arms.items():
        mix = " + ".join(f"{n} at {r}²" for n, r in zip(c["n_train"], c["resolutions"], strict=True))
        parts.append(f"arm `{name}`: {mix}" + (f", {c['epochs']} epochs" if c["epochs"] != first["epochs"] else ""))
    optimiser = (
        "batch size and Adam learning rate per model (see the chosen configurations), Adam weight decay "
        if per_model
        else f"batch {first['batch_size']}, Adam lr {first['lr']} (weight decay "
    )
    return (
        f" Training: {first['epochs']} epochs, {optimiser}{first['weight_decay']}{'' if per_model else ')'}, "
        f"{first['scheduler']} schedule, relative {first['loss'].upper()} loss, "
        + (f"model seeds {seeds}" if seeds else f"model seed {first['seed']}")
        + "; "
        + "; ".join(parts)
        + "."
    )


def _header_lines(summary: dict[str, Any]) -> list[str]:
    """Command, wall time, machine, data and training: the first lines of every experiment report."""
    v = summary["versions"]
    return [
        f"Command: `{summary['command']}` — {summary['date']}.",
        f"Wall time of the whole experiment: {experiment_minutes(summary):.1f} min = data generation "
        f"{summary['data']['generation_s']:.0f} s + training {sum(summary['train_wall_s'].values()) / 60:.1f} min "
        f"(sum of the runs' logged epoch times) + evaluation {summary['eval_wall_s'] / 60:.1f} min; this invocation "
        f"took {summary['total_wall_s'] / 60:.1f} min (finished runs and data files are reused).",
        f"Machine: {v.get('platform')}, torch {v.get('torch')}, neuraloperator {v.get('neuraloperator')}, device "
        f"{v.get('device')}, {v.get('torch_num_threads')} threads.",
        "Data (Darcy): " + "; ".join(_data_lines(summary["config"])) + "." + _training_line(summary),
    ]


def experiment_markdown(summary: dict[str, Any], plots: list[str] | None = None) -> str:
    """An experiment's report: results per arm, parameters, timings, validation, targets, provenance, plots."""
    cfg, recs = summary["config"], summary["records"]
    tests = _test_grids(cfg)
    lines = [
        *_header_lines(summary),
        "",
        "Relative L2 error on the test set (mean over samples); " + METHODS_NOTE,
        "",
        "| arm | model | parameters | train time | method | " + " | ".join(f"{s}²" for s in tests) + " |",
        "|" + "---|" * (5 + len(tests)),
    ]
    for arm in cfg["arms"]:
        for model in summary["parameters"]:
            for method in METHODS:
                cells = {
                    r["test_resolution"]: r
                    for r in recs
                    if r["arm"] == arm and r["run"] == model and r["method"] == method
                }
                if not cells:
                    continue
                trained = next(iter(cells.values()))["train_resolutions"]
                star = method == "direct"  # resample at a training grid still runs at the coarsest one
                vals = [
                    f"{cells[s]['rel_l2_mean']:.4f}{'*' if star and s in trained else ''}" if s in cells else "–"
                    for s in tests
                ]
                lines.append(
                    f"| {arm} | {model} | {summary['parameters'][model]:,} | "
                    f"{summary['train_wall_s'][f'{arm}/{model}'] / 60:.1f} min | {method} | " + " | ".join(vals) + " |"
                )
    lines += validation_markdown(summary)
    lines += coordinates_markdown(summary)
    lines += _inference_lines(summary, tests)
    lines += targets_markdown(summary)
    if plots:
        lines += ["", "Plots (error vs. grid; one test sample's fields and errors), per arm:", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", f"Full records (per-sample statistics, seeds, versions, configs): `{summary['output']}`."]
    return "\n".join(lines)


def _inference_lines(summary: dict[str, Any], tests: list[int]) -> list[str]:
    recs = summary["records"]
    first = next(iter(summary["config"]["arms"]))
    lines = [
        "",
        "Inference time per sample (seconds):",
        "",
        "| model | " + " | ".join(f"{s}²" for s in tests) + " |",
        "|" + "---|" * (1 + len(tests)),
    ]
    for model in summary["parameters"]:
        for method in ("direct", "ref-grid"):
            cells = {
                r["test_resolution"]: r
                for r in recs
                if r["arm"] == first and r["run"] == model and r["method"] == method
            }
            if cells:
                label = model if method == "direct" else f"{model} ({method})"
                lines.append(
                    f"| {label} | "
                    + " | ".join(f"{cells[s]['inference_s_per_sample']:.4f}" if s in cells else "–" for s in tests)
                    + " |"
                )
    return lines


def coordinates_markdown(summary: dict[str, Any]) -> list[str]:
    """Lines of the coordinate table: each ``<model>-periodic-grid`` run (neuralop's ``i / s`` embedding) beside the
    same model with node coordinates (``i / (s - 1)``), direct errors of the first arm; empty without such pairs."""
    tests = _test_grids(summary["config"])
    first = next(iter(summary["config"]["arms"]))
    cells: dict[tuple[str, int], float] = {
        (r["run"], r["test_resolution"]): r["rel_l2_mean"]
        for r in summary["records"]
        if r["arm"] == first and r["method"] == "direct"
    }
    pairs = [(k.removesuffix("-periodic-grid"), k) for k in summary["parameters"] if k.endswith("-periodic-grid")]
    pairs = [(node, grid) for node, grid in pairs if node in summary["parameters"]]
    if not pairs:
        return []
    lines = [
        "",
        "Coordinates: direct error with neuralop's periodic grid embedding (node `i` of `s` at `i / s`, the "
        "embedding before this fix) → with node coordinates (`i / (s − 1)`, the same value for the same node at "
        f"every grid); same data, seeds and training otherwise (arm `{first}`).",
        "",
        "| model | " + " | ".join(f"{s}² before → after" for s in tests) + " |",
        "|" + "---|" * (1 + len(tests)),
    ]
    for node, grid in pairs:
        vals = []
        for t in tests:
            a, b = cells.get((grid, t)), cells.get((node, t))
            vals.append("–" if a is None or b is None else f"{a:.4f} → {b:.4f}")
        lines.append(f"| {node} | " + " | ".join(vals) + " |")
    return lines


def validation_markdown(summary: dict[str, Any]) -> list[str]:
    """Lines of the validation table (best epoch vs last epoch per run); empty without a validation split."""
    runs = summary.get("validation") or {}
    if not runs:
        return []
    n_val = next(iter(_arm_configs(summary).values()))["n_val"]
    lines = [
        "",
        f"Validation: {n_val} samples of the training file right after each arm's training "
        f"block, scored every epoch (learning curves: `val_rel_l2_<grid>` in each run's `log.csv`; also in the "
        "summary JSON); the test file is scored once per run, after the last epoch. The evaluated weights are the last "
        "epoch's; the best epoch shows whether a run had plateaued (error: mean over the training grids).",
        "",
        "| arm | model | best val epoch | best val rel. L2 | last-epoch val rel. L2 | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for key, v in runs.items():
        arm, model = key.split("/", 1)
        val_fields = [k for k in v["learning_curve"] if k.startswith("val_rel_l2_")]
        last = sum(v[f] for f in val_fields) / len(val_fields)
        lines.append(
            f"| {arm} | {model} | {v['best_val_epoch']} | {v['best_val_rel_l2']:.4f} | {last:.4f} | {v['epoch']} |"
        )
    return lines


def targets_markdown(summary: dict[str, Any]) -> list[str]:
    """The spec's targets checked against this summary's numbers (``left ≤ factor × right``), met or missed."""
    cfg = summary["config"]
    targets = cfg.get("targets") or []
    if not targets:
        return []

    def cell(arm: str, run: str, side: dict[str, Any]) -> float | None:
        for r in summary["records"]:
            if (r["arm"], r["run"], r["method"], r["test_resolution"]) == (arm, run, side["method"], side["grid"]):
                return r["rel_l2_mean"]
        return None

    lines = []
    for t in targets:
        left, right, factor = t["left"], t["right"], float(t.get("factor", 1.0))
        if "run" in left:
            runs = [left["run"]]
        else:
            runs = [k for k in summary["parameters"] if cfg["models"][k]["model"] == left["model"]]
        for run in runs:
            other = run if right.get("run") == "self" else right["run"]
            a, b = cell(t["arm"], run, left), cell(t["arm"], other, right)
            if a is None or b is None:
                lines.append(f"- not checked: `{run}` {t['label']} (a result is missing from this run)")
                continue
            verdict = "met" if a <= factor * b else "**missed**"
            lines.append(f"- {verdict}: `{run}` {t['label']} ({a:.4f} vs {factor * b:.4f})")
    if not lines:  # e.g. a run of other models than the targets name
        return []
    return ["", "Targets (declared in the experiment spec; mean relative L2 on the test set):", "", *lines]


def tuning_markdown(summary: dict[str, Any], arm: str) -> str:
    """The report of a tuning arm: variants, parameters, train time and the validation table only."""
    cfg = summary["config"]
    kw = _arm_configs(summary)[arm]
    lines = [
        f"Command: `{summary['command']}` — {summary['date']}. {kw['epochs']} epochs per variant at "
        f"{'/'.join(f'{r}²' for r in kw['resolutions'])}, {kw['n_train']} training samples; compared on the "
        "validation split only.",
        "",
        "| variant | options | parameters | train time |",
        "|---|---|---|---|",
    ]
    for key in cfg["arms"][arm]["models"]:
        lines.append(
            f"| {key} | `{json.dumps(cfg['models'][key])}` | {summary['parameters'][key]:,} | "
            f"{_train_minutes(summary, arm, key):.1f} min |"
        )
    lines += validation_markdown(summary)
    return "\n".join(lines)


def _train_minutes(summary: dict[str, Any], arm: str, model: str) -> float:
    """Logged training minutes of the run ``arm/model``; of a seeded experiment, the mean over its seeds' runs
    (``arm/model/seed<k>``); NaN when it has no run."""
    times = [
        v for k, v in summary["train_wall_s"].items() if k == f"{arm}/{model}" or k.startswith(f"{arm}/{model}/seed")
    ]
    return sum(times) / len(times) / 60 if times else float("nan")


# ---------------------------------------------------------------------------------------------- seeded studies
def _per_seed(summary: dict[str, Any]) -> dict[tuple, dict[int, dict[str, Any]]]:
    """Records of a seeded experiment by ``(arm, model key, method, grid)`` and seed."""
    out: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in summary["records"]:
        out.setdefault((r["arm"], r["run"], r["method"], r["test_resolution"]), {})[int(r["seed"])] = r
    return out


def _mean_std(values: list[float]) -> str:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def comparisons(summary: dict[str, Any], *, n_boot: int = 4000, seed: int = 0) -> list[dict[str, Any]]:
    """The comparisons a seeded study states (its ``compare`` table), each with a paired bootstrap interval and a
    Student-t interval over seeds (:func:`mano_pde.experiments.statistics.compare`).

    Per arm: ``compare.model`` against every other model of the arm, ``direct`` at the arm's (coarsest) training
    grid — seeds unpaired; and every zero-shot method (``direct``, ``ref-grid``) of every model against the same
    runs' ``resample`` at each ``compare.zero_shot`` grid — seeds paired. Samples are always paired (the same test
    samples); see :func:`mano_pde.experiments.statistics.compare`. A comparison whose per-sample errors
    are not all finite has no interval: its entry holds ``not_computed`` (:data:`NOT_FINITE`) instead.
    """
    import numpy as np

    from .statistics import compare as compare_sides

    cfg = summary["config"]
    compare = cfg.get("compare") or {}
    cells = _per_seed(summary)
    out = []

    def add(label: str, arm: str, left: tuple, right: tuple, paired: bool) -> None:
        a, b = cells.get((arm, *left)), cells.get((arm, *right))
        if not a or not b:
            return
        seeds_a, seeds_b = sorted(a), sorted(b)
        if paired:
            seeds_a = seeds_b = sorted(set(a) & set(b))
        if {tuple(a[s]["test_indices"]) for s in seeds_a} != {tuple(b[s]["test_indices"]) for s in seeds_b}:
            return  # not the same test samples: no paired comparison
        errors_a = [a[s]["rel_l2_per_sample"] for s in seeds_a]
        errors_b = [b[s]["rel_l2_per_sample"] for s in seeds_b]
        if not all(np.isfinite(np.asarray(e, dtype=float)).all() for e in errors_a + errors_b):  # a zero-norm field
            out.append(
                {"label": label, "arm": arm, "left": list(left), "right": list(right), "not_computed": NOT_FINITE}
            )
            return
        stats = compare_sides(
            errors_a,
            errors_b,
            paired_seeds=paired,
            n_boot=n_boot,
            seed=seed,
        )
        out.append({"label": label, "arm": arm, "left": list(left), "right": list(right), **stats})

    ref = compare.get("model")
    for arm in cfg["arms"]:
        keys = list(dict.fromkeys(k for (a, k, _, _) in cells if a == arm))
        if not keys:
            continue
        some = next(iter(next(v for (a, *_), v in cells.items() if a == arm).values()))
        grid = min(some["train_resolutions"])
        if ref in keys:
            for other in keys:
                if other != ref:
                    add(f"{ref} vs {other} at {grid}²", arm, (ref, "direct", grid), (other, "direct", grid), False)
        for key in keys:
            for g in compare.get("zero_shot", []):
                for method in ("direct", "ref-grid"):
                    label = f"{key} {method} vs its resample at {g}²"
                    add(label, arm, (key, method, g), (key, "resample", g), True)
    return out


def still_improving(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per run with a validation split: best epoch, epochs, whether the best lies in the last ``LATE_FRACTION``
    of the run (still improving) and the gain over that last part (relative, of the best error)."""
    rows = []
    for label, v in (summary.get("validation") or {}).items():
        curve = v["learning_curve"]
        fields = [k for k in curve if k.startswith("val_rel_l2_")]
        errs = [sum(vals) / len(fields) for vals in zip(*(curve[f] for f in fields), strict=True)]
        n = int(v["epoch"])
        cut = max(1, int(round(n * (1 - LATE_FRACTION))))
        before = min(errs[:cut]) if errs[:cut] else errs[0]
        best = min(errs)
        rows.append(
            {
                "run": label,
                "best_val_epoch": int(v["best_val_epoch"]),
                "epochs": n,
                "still_improving": int(v["best_val_epoch"]) > cut,
                "late_gain": (before - best) / best if best else 0.0,
            }
        )
    return rows


def _seed_cell(c: dict[str, Any]) -> str:
    if c.get("seed_low") is None:
        return "–"
    return f"[{c['seed_low']:+.4f}, {c['seed_high']:+.4f}]"


def study_markdown(summary: dict[str, Any], tuning: str | None = None) -> str:
    """The report of a seeded study: mean ± std over seeds, the verdict table (paired bootstrap intervals), whether
    the schedule was long enough, the tuned configurations and (``tuning``) the search's records."""
    cfg = summary["config"]
    seeds = cfg.get("seeds") or []
    tests = _test_grids(cfg)
    cells = _per_seed(summary)
    verdicts = comparisons(summary)
    lines = [
        *_header_lines(summary),
        f"Model seeds {seeds} (initialisation and batch order; data fixed): one run per model, arm and seed.",
        "",
        "Verdicts: paired difference of the mean relative L2 (left − right) over seeds × test samples, with a 95 % "
        "bootstrap interval that resamples seeds and test samples (pigeonhole bootstrap; seeds paired only between "
        "methods of the same runs) and a 95 % Student-t interval over the seeds' mean errors (paired t for the same "
        "runs, Welch otherwise): with 3 seeds the bootstrap alone is too narrow in the seed factor "
        "(`mano_pde.experiments.statistics`). `better` = both intervals lie below 0 (left has the lower error), "
        "`worse` = both above 0, `within noise` = otherwise.",
        "",
        "| arm | comparison | left | right | difference [bootstrap 95 %] | seeds t 95 % | relative | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in verdicts:
        if c.get("not_computed"):
            lines.append(f"| {c['arm']} | {c['label']} | – | – | {c['not_computed']} | – | – | – |")
            continue
        lines.append(
            f"| {c['arm']} | {c['label']} | {c['left_mean']:.4f} | {c['right_mean']:.4f} | {c['difference']:+.4f} "
            f"[{c['low']:+.4f}, {c['high']:+.4f}] | {_seed_cell(c)} | {100 * c['relative']:+.1f} % | "
            f"**{c['verdict']}** |"
        )
    lines += [
        "",
        f"Relative L2 error on the test set: mean ± std over the {len(seeds)} seeds of each run's mean over the "
        "test samples; " + METHODS_NOTE,
        "",
        "| arm | model | parameters | train time per seed | method | " + " | ".join(f"{s}²" for s in tests) + " |",
        "|" + "---|" * (5 + len(tests)),
    ]
    for arm in cfg["arms"]:
        for model in summary["parameters"]:
            for method in METHODS:
                row = {g: cells.get((arm, model, method, g)) for g in tests}
                if not any(row.values()):
                    continue
                trained = next(iter(next(c for c in row.values() if c).values()))["train_resolutions"]
                star = method == "direct"
                vals = [
                    "–"
                    if not c
                    else _mean_std([r["rel_l2_mean"] for r in c.values()]) + ("*" if star and g in trained else "")
                    for g, c in row.items()
                ]
                lines.append(
                    f"| {arm} | {model} | {summary['parameters'][model]:,} | "
                    f"{_train_minutes(summary, arm, model):.1f} min | {method} | " + " | ".join(vals) + " |"
                )
    late = still_improving(summary)
    if late:
        flagged = [r for r in late if r["still_improving"]]
        lines += [
            "",
            f"Long enough? A run whose best validation epoch lies in the last {100 * LATE_FRACTION:.0f} % of its "
            "epochs was still improving; `late gain` = how much lower its best validation error is than the best "
            f"before that last part. Still improving: {len(flagged)} of {len(late)} runs"
            + (": " + ", ".join(f"`{r['run']}`" for r in flagged) if flagged else "")
            + ".",
            "",
            "| run | best val epoch | epochs | still improving | late gain |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['run']} | {r['best_val_epoch']} | {r['epochs']} | {'yes' if r['still_improving'] else 'no'} | "
            f"{100 * r['late_gain']:.1f} % |"
            for r in late
        ]
    tuned = {k: m["tuned"] for k, m in cfg["models"].items() if m.get("tuned") and k in summary["parameters"]}
    if tuned:
        lines += [
            "",
            "Configurations chosen by the equal-budget search on the validation split (`tuning/`):",
            "",
            "| model | kwargs | train | trial | val rel. L2 (trial) |",
            "|---|---|---|---|---|",
        ]
        for k, t in tuned.items():
            m = cfg["models"][k]
            lines.append(
                f"| {k} | `{json.dumps(m['kwargs'], sort_keys=True)}` | `{json.dumps(m.get('train', {}))}` | "
                f"{t['trial']} | {t['val_rel_l2']:.4f} |"
            )
        lines += _ranking_lines(summary, tuned)
    if tuning:
        lines += ["", "### Tuning records", "", tuning]
    lines += ["", f"Full records (per-sample errors of every run, configs, versions): `{summary['output']}`."]
    return "\n".join(lines)


def _ranking_lines(summary: dict[str, Any], tuned: dict[str, dict[str, Any]]) -> list[str]:
    """Whether the final runs (first arm, last-epoch validation error, mean over seeds) rank the tuned models as
    the search did (a proxy search must be confirmed by the final runs)."""
    first = next(iter(summary["config"]["arms"]))
    final: dict[str, list[float]] = {}
    for label, v in (summary.get("validation") or {}).items():
        arm, model = label.split("/")[:2]
        if arm != first or model not in tuned:
            continue
        curve = v["learning_curve"]
        fields = [k for k in curve if k.startswith("val_rel_l2_")]
        final.setdefault(model, []).append(sum(curve[f][-1] for f in fields) / len(fields))
    models = [m for m in tuned if m in final]
    if len(models) < 2:
        return []
    by_search = sorted(models, key=lambda m: tuned[m]["val_rel_l2"])
    by_final = sorted(models, key=lambda m: sum(final[m]) / len(final[m]))
    verdict = "the same ranking" if by_search == by_final else "**a different ranking**"
    return [
        "",
        f"Ranking on validation — search: {' < '.join(by_search)}; final runs (arm `{first}`, last epoch, mean over "
        f"seeds): {' < '.join(by_final)} ({verdict}).",
    ]
