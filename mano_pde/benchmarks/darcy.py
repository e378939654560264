"""``mano-pde benchmark darcy``: the Darcy accuracy study, end to end, by one command.

The study is an experiment spec shipped with the package — ``mano_pde/experiments/specs/darcy-seeded.toml``
(default: the seeded, equal-budget-tuned study below), ``darcy-cpu.toml`` (``--spec darcy-cpu``: the earlier
single-seed study with hand-picked settings) or ``darcy-full.toml`` (``--full``: the FNO paper's protocol, GPU) —
run by :func:`mano_pde.experiments.run_experiment`: data (train and test sets from
different seeds) → every model trained on one coarse grid (arm ``single``) and on a mix of grids, mostly coarse
plus a few finer samples (arm ``multi``, after Sakarvadia et al. 2025, arXiv 2510.06646) → evaluation on the
training grid and on finer grids, ``direct`` (zero-shot) and ``resample`` (training grid + interpolation) →
tables, learning curves, plots, the spec's targets (met or missed), and the exact configuration, seeds and
versions (``OUT/study.json``, ``OUT/study.md``). ``--update-benchmarks BENCHMARKS.md`` replaces the study's section
of that file with the numbers just produced, so they are never edited by hand. ``--spec FILE`` runs another spec
the same way. Every step is resumable: rerunning the command reuses the data files and finished runs and resumes
interrupted ones.

The seeded study (:func:`run_benchmark`; a spec with ``seeds`` and a ``tuning`` table), one command, resumable
wherever it stops (kill it at any moment and rerun the same command):

1. data: 288 training samples (256 + 32 validation) and 64 test samples at 129², different seeds;
2. tuning (:mod:`mano_pde.experiments.tuning`, Optuna): per model family the same budget — 16 trained trials of
   10 epochs at 33² on the validation split, ≤ 150k parameters — stored in ``OUT/tuning/optuna.sqlite3`` (resumes
   per trial and per epoch); the chosen configurations go into ``OUT/study-spec.toml`` (with a comment saying how
   they were chosen; ``--write-spec FILE`` writes it elsewhere too, e.g. over the shipped spec);
3. final runs: every tuned model × seeds 0, 1, 2 × arms ``single`` (256 at 33²) and ``multi`` (256 at 33² + 32 at
   65²), 80 epochs (resumes per epoch);
4. evaluation of each final run once (33², 65², 129²: direct, ref-grid for MANO, resample; reused when complete),
   with per-sample errors;
5. report ``OUT/study.md``: verdict table (paired bootstrap intervals over seeds × test samples and Student-t
   intervals over seeds), mean ± std over seeds, the best-validation-epoch check, chosen configurations and every
   trial (``OUT/tuning/trials.{csv,md}``).

Estimated cost on 2 CPU cores (per-epoch times of the earlier study at 33² with 256 samples: FNO 3 s, TFNO 5 s,
window attention 15 s, MANO 17 s, global attention 25 s; tuned models may be larger or smaller): tuning about
3 h (5 families × 16 trials × 10 epochs, less with pruning), final single-resolution runs about 5 h (3 seeds),
the multi-resolution arm about 4 h (1.5× the epoch cost; global attention is left out of it: its O(N²)
attention at 65² costs 16× per sample), evaluation a few minutes — 10–14 h in all, over several sessions.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..files import atomic_write_text

__all__ = [
    "MARK_BEGIN",
    "MARK_END",
    "run_benchmark",
    "run_study",
    "run_tuning",
    "update_benchmarks",
    "add_arguments",
    "run",
]

MARK_BEGIN = "<!-- darcy-study:begin (written by `mano-pde benchmark darcy --update-benchmarks`) -->"
MARK_END = "<!-- darcy-study:end -->"


def run_study(spec: Any, output: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run a study spec (resumable); write ``OUT/study.json``, ``OUT/study.md`` and the learning curves.

    ``kwargs`` go to :func:`mano_pde.experiments.run_experiment` (``workers``, ``device``, ``progress``).
    """
    from ..experiments import run_experiment
    from ..experiments.report import plot_learning_curves

    out = Path(output)
    summary = run_experiment(spec, out, summary_name="study", **kwargs)
    if summary["validation"]:
        plot_learning_curves(summary["validation"], out / "results" / "learning_curves.png")
    atomic_write_text(out / "study.md", study_report(summary, out) + "\n")
    return summary


def study_report(summary: dict[str, Any], output: str | Path, plots: list[str] | None = None) -> str:
    """The study's markdown: :func:`~mano_pde.experiments.report.study_markdown` for a seeded spec (with the
    tuning records of ``output/tuning/trials.md`` when present), else
    :func:`~mano_pde.experiments.report.experiment_markdown`."""
    from ..experiments.report import experiment_markdown, study_markdown

    if summary["config"].get("seeds") is None:
        return experiment_markdown(summary, plots)
    trials = Path(output) / "tuning" / "trials.md"
    return study_markdown(summary, trials.read_text().strip() if trials.is_file() else None)


def run_benchmark(
    spec: Any, output: str | Path, *, write_spec: str | Path | None = None, **kwargs: Any
) -> dict[str, Any]:
    """The whole study: data → tuning (if the spec has a ``tuning`` table) → final runs → evaluation → report.

    The chosen configurations are applied to the spec, which is written to ``OUT/study-spec.toml`` (and to
    ``write_spec``) with a comment saying how they were chosen; ``kwargs`` go to :func:`run_study`.
    """
    from ..experiments.tuning import apply_tuning, run_search, spec_to_toml

    out = Path(output)
    if spec.tuning is not None and any(spec.models[k].tuned is None for k in spec.tuning.models):
        chosen = run_search(spec, out, **kwargs)
        spec = apply_tuning(spec, chosen)
        t = spec.tuning
        header = (
            f"{spec.name}: the configurations of {', '.join(chosen)} were chosen by `mano-pde benchmark darcy`'s\n"
            f"equal-budget search on the validation split (Optuna TPE seed {t.seed}, median pruning; {t.trials} "
            f"trials of {t.epochs} epochs per model, <= {t.max_parameters:,} parameters); records: tuning/."
        )
        text = spec_to_toml(spec, header)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "study-spec.toml", text)
        if write_spec:
            atomic_write_text(Path(write_spec), text)
    return run_study(spec, out, **kwargs)


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
    parser.add_argument("--spec", help="an experiment spec (TOML file or shipped name) instead of darcy-seeded/-full")
    parser.add_argument(
        "-o", "--output", default=None, help="study folder (default runs/darcy-study-<spec name without darcy->)"
    )
    parser.add_argument("--models", nargs="+", help="subset of the spec's models")
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (arms with their own keep them)")
    parser.add_argument("--arms", nargs="+", help="subset of arms (default: the spec's non-optional arms)")
    parser.add_argument("--workers", type=int, default=2, help="data-generation processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--update-benchmarks",
        metavar="FILE",
        help="write the results into this BENCHMARKS.md (an existing file, or a new one in an existing folder: its "
        "study section is replaced) and copy the plots to docs/darcy-study/ in FILE's folder; both are checked before "
        "the study runs",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="run only the tuning stage: the spec's Optuna search (its `tuning` table) or, for a spec without one, "
        "its tuning arm (`tune`), compared on the validation split only",
    )
    parser.add_argument(
        "--write-spec",
        metavar="FILE",
        help="also write the spec with the tuned configurations (and how they were chosen) to FILE",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..data.generate import check_worker_count
    from ..errors import UserInputError
    from ..experiments import load_spec
    from ..experiments.runner import check_experiment_folder

    spec = load_spec(args.spec or ("darcy-full" if args.full else "darcy-seeded"))
    out = Path(args.output or f"runs/darcy-study-{spec.name.removeprefix('darcy-')}")
    check_experiment_folder(out)
    if args.workers < 1:
        raise UserInputError(f"--workers must be >= 1, got {args.workers}")
    check_worker_count(args.workers)  # the tuning stage generates the data before the runner would check
    # every file the command writes besides -o, checked before the study runs (hours later is too late)
    if args.write_spec:
        check_writable_file(args.write_spec, "--write-spec", "study-spec.toml")
    if args.update_benchmarks:
        arms = args.arms or spec.default_arms()
        check_writable_file(args.update_benchmarks, "--update-benchmarks", "BENCHMARKS.md")
        check_plots_folder(Path(args.update_benchmarks), arms)
    common = {"workers": args.workers, "device": args.device, "progress": not args.no_progress}
    if args.tune and spec.tuning is not None:
        from ..experiments.tuning import run_search

        run_search(spec.select(models=args.models), out, **common)
        print((out / "tuning" / "trials.md").read_text())
        return 0
    if args.tune:
        run_tuning(spec.select(arms=list(spec.arms), models=args.models, epochs=args.epochs), out, **common)
        print((out / "tuning.md").read_text())
        return 0
    selected = spec.select(arms=args.arms, models=args.models, epochs=args.epochs)
    summary = run_benchmark(selected, out, write_spec=args.write_spec, **common)
    plots = None
    if args.update_benchmarks:
        plots = copy_plots(out, Path(args.update_benchmarks), list(summary["config"]["arms"]))
    section = study_report(summary, out, plots)
    print(section)
    if args.update_benchmarks:
        update_benchmarks(Path(args.update_benchmarks), section)
    return 0


#: Where ``--update-benchmarks FILE`` copies the plots, relative to FILE's folder (the section links them so).
PLOTS_FOLDER = ("docs", "darcy-study")


def _plots(out: Path, arms: list[str]) -> list[tuple[Path, str]]:
    """(source, name in the plots folder) of every plot the study may have written."""
    plots = [(out / "results" / "learning_curves.png", "learning_curves.png")]
    for arm in arms:
        plots += [
            (out / "results" / arm / name, f"{arm}-{name}") for name in ("error_vs_resolution.png", "predictions.png")
        ]
    return plots


def check_writable_file(text: str | Path, option: str, example: str) -> Path:
    """A file the command will (re)write: an existing regular file, or a new one in an existing, writable folder.

    Raises
    ------
    mano_pde.errors.UserInputError
        Naming the option, the path and what to give instead.
    """
    import os

    from ..errors import UserInputError
    from ..files import check_file_name

    path = check_file_name(text, option, example)
    folder = Path(os.path.abspath(path)).parent
    if path.is_dir():
        raise UserInputError(f"{option} {path} is a folder, not a file; give a file such as {path / example}")
    if path.exists() and not path.is_file():
        raise UserInputError(f"{option} {path} is not a regular file (a device or pipe); give a file such as {example}")
    if path.is_file() and not os.access(path, os.R_OK):
        raise UserInputError(f"{option} {path} cannot be read (permission denied); give a file you can read")
    if not folder.is_dir():
        raise UserInputError(f"{option} {path}: the folder {folder} does not exist; create it or give another file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(f"{option} {path}: the folder {folder} is not writable (permission denied)")
    return path


def check_plots_folder(benchmarks: Path, arms: list[str]) -> Path:
    """The folder ``docs/darcy-study`` beside the BENCHMARKS file, checked: it (and ``docs``) is a real folder or
    can be created there, never a link or file that would lead the copies elsewhere, and no plot name is a folder."""
    import os

    from ..errors import UserInputError

    root = Path(os.path.abspath(benchmarks)).parent
    dest = root.joinpath(*PLOTS_FOLDER)
    fix = f"--update-benchmarks {benchmarks} copies the plots to {dest}"
    for folder in (root / PLOTS_FOLDER[0], dest):
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise UserInputError(f"{fix}, but {folder} is {'a link' if folder.is_symlink() else 'a file'}, not a "
                                 "folder; remove it or give a BENCHMARKS file in another folder")  # fmt: skip
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise UserInputError(f"{fix}, but {folder} is not writable (permission denied)")
    for _, name in _plots(Path(), arms):
        if (dest / name).is_dir():
            raise UserInputError(f"{fix}, but {dest / name} is a folder; remove it")
    return dest


def copy_plots(out: Path, benchmarks: Path, arms: list[str]) -> list[str]:
    """Copy the evaluation plots of every arm to ``docs/darcy-study/`` in the folder of the BENCHMARKS file
    ``benchmarks`` (checked by :func:`check_plots_folder`); their paths relative to that folder."""
    from ..files import atomic_write_bytes

    dest = check_plots_folder(benchmarks, arms)
    copied = []
    for src, name in _plots(out, arms):
        if src.exists():
            dest.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(dest / name, src.read_bytes())  # replaces a link planted at the name, not its target
            copied.append("/".join((*PLOTS_FOLDER, name)))
    return copied
