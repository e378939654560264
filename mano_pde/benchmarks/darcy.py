"""``mano-pde benchmark darcy``: the Darcy accuracy study, end to end, by one command.

The study is an experiment spec shipped with the package — ``mano_pde/experiments/specs/darcy-cpu.toml`` (default:
129² data, trained at 33², tested at 33², 65², 129², 2 CPU cores) or ``darcy-full.toml`` (``--full``: the FNO
paper's protocol, GPU) — run by :func:`mano_pde.experiments.run_experiment`: data (train and test sets from
different seeds) → every model trained on one coarse grid (arm ``single``) and on a mix of grids, mostly coarse
plus a few finer samples (arm ``multi``, after Sakarvadia et al. 2025, arXiv 2510.06646) → evaluation on the
training grid and on finer grids, ``direct`` (zero-shot) and ``resample`` (training grid + interpolation) →
tables, learning curves, plots, the spec's targets (met or missed), and the exact configuration, seeds and
versions (``OUT/study.json``, ``OUT/study.md``). ``--update-benchmarks BENCHMARKS.md`` replaces the study's section
of that file with the numbers just produced, so they are never edited by hand. ``--spec FILE`` runs another spec
the same way. Every step is resumable: rerunning the command reuses the data files and finished runs and resumes
interrupted ones.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..files import atomic_write_text

__all__ = ["MARK_BEGIN", "MARK_END", "run_study", "run_tuning", "update_benchmarks", "add_arguments", "run"]

MARK_BEGIN = "<!-- darcy-study:begin (written by `mano-pde benchmark darcy --update-benchmarks`) -->"
MARK_END = "<!-- darcy-study:end -->"


def run_study(spec: Any, output: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run a study spec (resumable); write ``OUT/study.json``, ``OUT/study.md`` and the learning curves.

    ``kwargs`` go to :func:`mano_pde.experiments.run_experiment` (``workers``, ``device``, ``progress``).
    """
    from ..experiments import run_experiment
    from ..experiments.report import experiment_markdown, plot_learning_curves

    out = Path(output)
    summary = run_experiment(spec, out, summary_name="study", **kwargs)
    if summary["validation"]:
        plot_learning_curves(summary["validation"], out / "results" / "learning_curves.png")
    atomic_write_text(out / "study.md", experiment_markdown(summary) + "\n")
    return summary


def run_tuning(spec: Any, output: str | Path, *, arm: str = "tune", **kwargs: Any) -> dict[str, Any]:
    """Train the spec's tuning arm and compare its variants on the validation split only.

    Writes ``OUT/tuning.json``, ``OUT/tuning.md`` and ``OUT/results/tuning_curves.png``. The runs'
    ``final_metrics.json`` also hold their test error (the trainer scores the test file once at the end); the
    tuning report does not read it.
    """
    from ..errors import UserInputError
    from ..experiments import run_experiment
    from ..experiments.report import plot_learning_curves, tuning_markdown

    if arm not in spec.arms:
        raise UserInputError(f"{spec.name} has no tuning arm {arm!r}; arms: {list(spec.arms)}")
    if not ({**spec.train, **spec.arms[arm].train}).get("n_val"):
        raise UserInputError("tuning compares runs on the validation split: set train.n_val > 0 in the spec")
    out = Path(output)
    summary = run_experiment(spec.select(arms=[arm]), out, summary_name="tuning", **kwargs)
    plot_learning_curves(summary["validation"], out / "results" / "tuning_curves.png")
    atomic_write_text(out / "tuning.md", tuning_markdown(summary, arm) + "\n")
    return summary


def update_benchmarks(path: Path, section: str) -> None:
    """Replace the study's section of BENCHMARKS.md (between its markers), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{MARK_BEGIN}\n{section}\n{MARK_END}"
    pattern = re.compile(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n## Darcy accuracy study (mano-pde benchmark darcy)\n\n" + block + "\n"
    atomic_write_text(path, text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="the FNO paper's protocol (spec darcy-full; GPU)")
    parser.add_argument("--spec", help="an experiment spec (TOML file or shipped name) instead of darcy-cpu/-full")
    parser.add_argument("-o", "--output", default=None, help="study folder (default runs/darcy-study-<cpu|full>)")
    parser.add_argument("--models", nargs="+", help="subset of the spec's models")
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (arms with their own keep them)")
    parser.add_argument("--arms", nargs="+", help="subset of arms (default: the spec's non-optional arms)")
    parser.add_argument("--workers", type=int, default=2, help="data-generation processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--update-benchmarks", metavar="FILE", help="write the results into this BENCHMARKS.md")
    parser.add_argument(
        "--tune",
        action="store_true",
        help="train the spec's tuning arm (`tune`) instead and compare its variants on the validation split only",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..experiments import load_spec
    from ..experiments.report import experiment_markdown

    spec = load_spec(args.spec or ("darcy-full" if args.full else "darcy-cpu"))
    out = Path(args.output or f"runs/darcy-study-{'full' if args.full else 'cpu'}")
    common = {"workers": args.workers, "device": args.device, "progress": not args.no_progress}
    if args.tune:
        run_tuning(spec.select(arms=list(spec.arms), models=args.models, epochs=args.epochs), out, **common)
        print((out / "tuning.md").read_text())
        return 0
    summary = run_study(spec.select(arms=args.arms, models=args.models, epochs=args.epochs), out, **common)
    plots = None
    if args.update_benchmarks:
        plots = copy_plots(out, Path(args.update_benchmarks).parent, list(summary["config"]["arms"]))
    section = experiment_markdown(summary, plots)
    print(section)
    if args.update_benchmarks:
        update_benchmarks(Path(args.update_benchmarks), section)
    return 0


def copy_plots(out: Path, dest_root: Path, arms: list[str]) -> list[str]:
    """Copy the evaluation plots of every arm next to BENCHMARKS.md (``docs/darcy-study/``); relative paths."""
    import shutil

    dest = dest_root / "docs" / "darcy-study"
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    curves = out / "results" / "learning_curves.png"
    if curves.exists():
        shutil.copyfile(curves, dest / "learning_curves.png")
        copied.append("docs/darcy-study/learning_curves.png")
    for arm in arms:
        for name in ("error_vs_resolution.png", "predictions.png"):
            src = out / "results" / arm / name
            if src.exists():
                shutil.copyfile(src, dest / f"{arm}-{name}")
                copied.append(f"docs/darcy-study/{arm}-{name}")
    return copied
