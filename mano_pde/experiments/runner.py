"""The experiment runner: generate the data, train (resuming or reusing), evaluate, summarise — for any spec.

One rule decides what happens to a run (:func:`run_status`): its folder's ``config.json`` must describe the
same run as the spec (:meth:`~mano_pde.training.TrainConfig.digest`, device excepted) — a folder holding another
run is refused, naming the differences — and the run is *finished* when its verified resume state has all its
epochs (and, with a validation split, its test score ``final_metrics.json`` unless the arm's evaluation scores the
test file instead); else it is resumed. Data files are
reused when they hold the spec's sample stream (same seed and generator parameters) with enough samples.
Every step is resumable: rerunning the same command after an interruption finishes the work.

A spec with ``seeds`` trains every run once per seed (``<run_dir>/seed<k>``, :attr:`PlannedRun.seed`) and scores
each run on its own, once (the trainer leaves the test file alone, :attr:`PlannedRun.score_test`;
:func:`evaluate_run`: a complete, intact evaluation of the same run, data file, grids and samples is read back); a
spec without ``seeds`` runs exactly as before (one run per model, the arm's runs scored together).

``mano-pde demo``, ``examples/03_zero_shot_resolution.py`` and ``mano-pde benchmark darcy`` are specs run
by :func:`run_experiment`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserInputError
from ..files import atomic_write_text, check_inside, remove_stale_temps
from .spec import DataSpec, EvalSpec, ExperimentSpec

if TYPE_CHECKING:
    from ..training import TrainConfig

__all__ = [
    "PlannedRun",
    "plan_runs",
    "data_paths",
    "ensure_data",
    "run_status",
    "evaluate_run",
    "evaluation_dir",
    "run_experiment",
    "check_experiment_folder",
]

log = logging.getLogger(__name__)

#: Per-folder record of how long each generated data file took (seconds, by file name).
GENERATION_TIMES = "generation_s.json"


@dataclass(frozen=True)
class PlannedRun:
    """One training run of an experiment: its arm, its key in ``spec.models``, its folder and configuration."""

    arm: str
    key: str
    run_dir: Path
    config: TrainConfig
    #: the model seed of a seeded experiment (``spec.seeds``); ``None``: the one run of ``train.seed``
    seed: int | None = None
    #: whether the trainer scores the test file after the last epoch (``final_metrics.json``); ``False`` for the
    #: runs of a seeded experiment whose arm evaluation scores it (:func:`evaluate_run`): the test file is scored
    #: once per run
    score_test: bool = True

    @property
    def label(self) -> str:
        return f"{self.arm}/{self.key}" + ("" if self.seed is None else f"/seed{self.seed}")


def data_paths(spec: ExperimentSpec, output: str | Path) -> dict[str, Path]:
    """Every data entry's path (relative paths are under ``output``)."""
    return {k: Path(output) / d.path for k, d in spec.data.items()}


def _darcy_config(entry: DataSpec) -> Any:
    from ..data import DarcyConfig

    return DarcyConfig(**entry.generate)  # checked when the spec was built (ExperimentSpec._check_generate)


def check_experiment_folder(output: str | Path) -> Path:
    """The experiment folder ``-o``: a new or existing folder, never an existing file (checked before any work).

    Raises
    ------
    mano_pde.errors.UserInputError
        ``output`` is an existing file (or its nearest existing ancestor is).
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"the experiment folder -o {out} is an existing file, not a folder; choose another -o")
    parent = Path(os.path.abspath(out)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"cannot create the experiment folder -o {out}: {parent} is a file; choose another -o")
    return out


def plan_runs(spec: ExperimentSpec, output: str | Path, *, device: str = "auto") -> list[PlannedRun]:
    """Every run of the spec's non-optional arms with its full, validated :class:`~mano_pde.training.TrainConfig`.

    Nothing is written: bad hyperparameters fail here, before any data is generated (:func:`run_experiment` also
    builds every model once, which checks the model keywords).
    """
    from ..training import TrainConfig

    paths = data_paths(spec, output)
    runs = []
    for arm_name in spec.default_arms():
        arm = spec.arms[arm_name]
        for key in arm.models:
            m = spec.models[key]
            kw = {**spec.train, **m.train, **arm.train}
            for ref in ("data", "test_data"):
                if kw.get(ref) is not None:
                    kw[ref] = str(paths[kw[ref]])
            if "data" not in kw:
                raise UserInputError(f"{spec.name}: no training data for {arm_name}/{key} (set train.data)")
            where = f"{spec.name}: arms.{arm_name}.run_dir"
            for seed in spec.seeds if spec.seeds is not None else [None]:
                extra = {} if seed is None else {"seed": seed}
                try:
                    config = TrainConfig(model=m.model, model_kwargs=dict(m.kwargs), device=device, **kw, **extra)
                except TypeError as exc:
                    raise UserInputError(f"{spec.name}: training keywords of {arm_name}/{key}: {exc}") from None
                run_dir = check_inside(output, _run_dir(Path(), arm.run_dir, arm_name, key, seed), where)
                score_test = seed is None or arm.evaluate is None
                runs.append(PlannedRun(arm_name, key, run_dir, config, seed, score_test))
    return runs


def _run_dir(output: str | Path, template: str, arm: str, key: str, seed: int | None) -> Path:
    """A run's folder: the arm's template; a seeded run in its ``{seed}`` or else a ``seed<k>`` subfolder."""
    if seed is None:
        return Path(output) / template.format(arm=arm, model=key)
    if "{seed}" in template:
        return Path(output) / template.format(arm=arm, model=key, seed=seed)
    return Path(output) / template.format(arm=arm, model=key) / f"seed{seed}"


def _needed_data(spec: ExperimentSpec, runs: list[PlannedRun]) -> dict[str, int]:
    """Data entries the selected arms use, with the samples each must hold (0: whatever it holds)."""
    need: dict[str, int] = {}
    for arm_name, key in dict.fromkeys((r.arm, r.key) for r in runs):
        arm = spec.arms[arm_name]
        kw = {**spec.train, **spec.models[key].train, **arm.train}  # as plan_runs merges them
        refs = [kw.get("data"), kw.get("test_data"), arm.evaluate.data if arm.evaluate is not None else None]
        for ref in refs:
            if ref is not None:
                need.setdefault(ref, 0)
    for key in need:
        gen = spec.data[key].generate
        if gen is not None:
            need[key] = int(gen.get("n_samples", 0))
    return need


def ensure_data(
    spec: ExperimentSpec, output: str | Path, *, runs: list[PlannedRun], workers: int = 2, progress: bool = True
) -> tuple[dict[str, Path], float]:
    """Generate the data files the runs need (or check the existing ones); their paths and generation seconds.

    An existing file is reused only if it holds the spec's sample stream (seed and generator parameters) and at
    least the spec's ``n_samples``; otherwise the error names the file and the fix.
    """
    from ..data import generate_darcy, open_darcy, same_sample_stream
    from ..data.generate import finish_interrupted
    from ..data.schema import SCHEMA

    paths = data_paths(spec, output)
    used = {}
    total = 0.0
    for key, n in _needed_data(spec, runs).items():
        entry, path = spec.data[key], paths[key]
        if entry.generate is not None:  # a file the runner writes: inside the experiment folder
            check_inside(output, entry.path, f"{spec.name}: data.{key}.path")
        times_path = path.parent / GENERATION_TIMES
        remove_stale_temps(times_path.parent, (GENERATION_TIMES,))  # of a run killed while recording the times
        times = json.loads(times_path.read_text()) if times_path.is_file() else {}
        if entry.generate is None:
            if not path.is_file():
                raise UserInputError(f"data file {path} (data.{key}) does not exist and the spec does not generate it")
        elif path.exists():
            dc = _darcy_config(entry)
            # a run killed while removing this file's .parts (or releasing its lock): finish its clean-up, as the
            # rerun of `generate` does (nothing is touched unless the file is that run's complete result)
            finish_interrupted(dc, path)
            with open_darcy(path) as ds:
                have, attrs = int(ds.sizes["sample"]), dict(ds.attrs)
            wanted = {"mano_pde_schema": SCHEMA, "resolution": dc.resolution, **dc.to_attrs()}
            if not same_sample_stream(attrs, wanted):
                raise UserInputError(
                    f"{path} (data.{key}) was made with other generator parameters than the spec's "
                    f"({entry.generate}); delete it (and the runs trained on it) or use another -o"
                )
            if have < n:
                raise UserInputError(
                    f"{path} holds {have} samples but the {spec.name} experiment needs {n} (data.{key}); it was made "
                    "by an earlier version of the experiment: delete it (and the runs) or use another -o"
                )
        else:
            log.info("generating %s", path)
            t0 = time.perf_counter()
            generate_darcy(_darcy_config(entry), path, workers=workers, progress=progress)
            times[path.name] = time.perf_counter() - t0
            atomic_write_text(times_path, json.dumps(times, indent=2) + "\n")
        used[key] = path
        total += float(times.get(path.name, 0.0))
    return used, total


def run_status(run: PlannedRun) -> str:
    """``"new"``, ``"resume"`` or ``"finished"`` — the one rule by which runs are reused (module docstring).

    Raises
    ------
    mano_pde.errors.UserInputError
        The folder holds a run with another configuration (the message lists the differences).
    """
    from ..training import TrainConfig
    from ..training.manifest import restore_config_file
    from ..training.runs import is_run_dir, run_is_intact
    from ..training.state import load_train_state
    from ..training.trainer import FINAL_METRICS

    restore_config_file(run.run_dir, run.config)  # a damaged config.json that run.json proves to be this run's
    if not (run.run_dir / "config.json").is_file():
        return "new"
    saved = TrainConfig.load(run.run_dir / "config.json")
    diff = saved.differences(run.config)
    if diff:
        raise UserInputError(
            f"{run.run_dir} holds another run than {run.label} of this experiment ("
            + ", ".join(f"{k}: saved {a!r}, wanted {b!r}" for k, (a, b) in diff.items())
            + "); use another -o folder, or delete that run folder to train it again"
        )
    try:
        state = load_train_state(run.run_dir, map_location="cpu", warn=False)
    except (UserInputError, FileNotFoundError):
        return "resume"  # the trainer falls back to the previous state or says why it cannot
    # damaged weights or run files: resumed, which restores them from the verified state
    finished = int(state["epoch"]) >= run.config.epochs and is_run_dir(run.run_dir) and run_is_intact(run.run_dir)
    if run.config.n_val and run.score_test and not (run.run_dir / FINAL_METRICS).is_file():
        finished = False
    return "finished" if finished else "resume"


def _train_wall(run_dir: Path) -> float:
    import csv

    with open(run_dir / "log.csv", newline="") as fh:
        return sum(float(r["epoch_time_s"]) for r in csv.DictReader(fh))


def count_parameters_of(model: str, kwargs: dict[str, Any]) -> int:
    """Parameters of a registry model built with ``kwargs`` (on the CPU)."""
    from ..models import count_parameters, create_model

    return count_parameters(create_model(model, **kwargs))


def evaluation_dir(run: PlannedRun, evaluation: EvalSpec, output: str | Path) -> Path:
    """Where a seeded run's evaluation goes: the arm's output folder, then ``<model>/seed<k>``."""
    rel = Path(evaluation.output.format(arm=run.arm)) / run.key / f"seed{run.seed}"
    return check_inside(output, rel, f"the evaluation folder of {run.label}")


def evaluate_run(
    run: PlannedRun, data: Path, evaluation: EvalSpec, output: str | Path, *, device: str = "auto"
) -> tuple[list[dict[str, Any]], float]:
    """Score one (seeded) run on the test file — once: a complete earlier evaluation of the same run, data file,
    grids and test samples whose ``results.json`` matches the SHA-256 its marker recorded is read back instead (a
    damaged one is evaluated again). Its records (``arm``, ``run`` = model key, ``seed``) and the seconds
    spent (0 when reused)."""
    from ..evaluation import evaluate

    folder = evaluation_dir(run, evaluation, output)
    records = _earlier_records(run, data, evaluation, folder)
    if records is not None:
        log.info("reusing the evaluation of %s in %s", run.label, folder)
    seconds = 0.0
    if records is None:
        t0 = time.perf_counter()
        records = evaluate(
            [run.run_dir],
            data,
            list(evaluation.resolutions),
            folder,
            device=device,
            n_test=evaluation.n_test,
            plots=False,
        )
        seconds = time.perf_counter() - t0
    for r in records:
        r.update(arm=run.arm, run=run.key, seed=run.seed)
    return records, seconds


def _earlier_records(run: PlannedRun, data: Path, evaluation: EvalSpec, folder: Path) -> list[dict[str, Any]] | None:
    """The records of a complete earlier evaluation in ``folder`` of the same run on the same data file, grids and
    test samples; ``None`` (evaluate again) when there is none, it differs, or its ``results.json`` does not match
    the SHA-256 its ``results.complete.json`` recorded (changed or damaged after it was written)."""
    from ..evaluation.evaluate import COMPLETE_MARKER
    from ..files import sha256_file

    marker, results = folder / COMPLETE_MARKER, folder / "results.json"
    if not (marker.is_file() and results.is_file()):
        return None
    try:
        if sha256_file(results) != json.loads(marker.read_text())["files"]["results.json"]:
            log.warning(
                "%s changed after its evaluation was written (SHA-256): evaluating %s again", results, run.label
            )
            return None
        saved = json.loads(results.read_text())
        meta, recs = saved["meta"], saved["records"]
        runs = [_identity(r.get("config") or {}) for r in meta["runs"].values()]
        same_data = Path(meta["data"]).resolve() == Path(data).resolve()
        same_run = runs == [_identity(run.config.to_dict())]
        same_grids = meta["resolutions"] == sorted({int(r) for r in evaluation.resolutions})
        same_samples = evaluation.n_test is None or all(r["n_test"] == evaluation.n_test for r in recs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # JSON errors are ValueErrors
        log.warning(
            "the earlier evaluation in %s is damaged (%s: %s): evaluating again", folder, type(exc).__name__, exc
        )
        return None
    return recs if same_data and same_run and same_grids and same_samples and recs else None


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration without its runtime fields (device, compile)."""
    from ..training import TrainConfig

    return {k: v for k, v in config.items() if k not in TrainConfig.RUNTIME_FIELDS}


def run_experiment(
    spec: ExperimentSpec,
    output: str | Path,
    *,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
    summary_name: str | None = "experiment",
) -> dict[str, Any]:
    """Run ``spec`` into ``output`` (resumable) and return its summary.

    Parameters
    ----------
    spec : ExperimentSpec
        What to run: its non-optional arms (see :meth:`ExperimentSpec.select` to narrow it or to choose an
        optional arm).
    output : path-like
        The experiment folder (relative data paths, run folders and results live under it).
    workers : int
        Data-generation processes.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``; not part of a run's identity.
    progress : bool
        Progress bars.
    summary_name : str, optional
        Write the summary to ``output/<summary_name>.json`` (``None``: don't).

    Returns
    -------
    dict
        ``config`` (the spec), ``command``, ``date``, ``versions``, ``parameters`` (per model key), ``output``,
        ``data`` (paths by entry, ``generation_s``), ``runs`` (folder, status, training configuration and its
        digest per ``arm/model``), ``train_wall_s`` (logged epoch times per ``arm/model``), ``validation``
        (learning curve and final metrics of runs with a validation split), ``eval_wall_s``, ``records`` (the
        evaluator's records, each with its ``arm``) and ``total_wall_s``.
    """
    import numbers

    from ..data.generate import check_worker_count
    from ..device import resolve_device
    from ..evaluation import evaluate
    from ..provenance import run_versions
    from ..training import train
    from .report import validation_summary

    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise UserInputError(f"workers (--workers) must be an int >= 1, got {workers!r}")
    check_worker_count(int(workers))  # before the experiment folder exists
    resolve_device(device)  # an unknown or unavailable device fails now, not after the data are generated
    t_start = time.perf_counter()
    out = check_experiment_folder(output)
    spec = spec.select()  # the arms that run (the summary records what ran)
    runs = plan_runs(spec, out, device=device)  # every configuration validated before any work
    keys = list(dict.fromkeys(r.key for r in runs))
    summary: dict[str, Any] = {
        "config": spec.to_dict(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": run_versions(resolve_device(device)),
        "parameters": {k: count_parameters_of(spec.models[k].model, spec.models[k].kwargs) for k in keys},
        "output": str(out),
    }
    out.mkdir(parents=True, exist_ok=True)
    if summary_name:  # the summary of a run killed while writing it (its process is gone)
        remove_stale_temps(out, (f"{summary_name}.json",))
    files, t_data = ensure_data(spec, out, runs=runs, workers=workers, progress=progress)
    summary.update(
        data={**{k: str(p) for k, p in files.items()}, "generation_s": t_data},
        runs={},
        train_wall_s={},
        validation={},
        eval_wall_s=0.0,
        records=[],
    )
    for arm_name in spec.default_arms():
        arm = spec.arms[arm_name]
        arm_runs = [r for r in runs if r.arm == arm_name]
        for run in arm_runs:
            status = run_status(run)
            if status == "finished":
                log.info("reusing finished run %s", run.run_dir)
            else:
                train(run.config, run.run_dir, resume=status == "resume", progress=progress, score_test=run.score_test)
            summary["runs"][run.label] = {
                **({} if run.seed is None else {"arm": run.arm, "model": run.key, "seed": run.seed}),
                "dir": str(run.run_dir),
                "status": status,
                "config_digest": run.config.digest(),
                "config": run.config.to_dict(),
            }
            summary["train_wall_s"][run.label] = _train_wall(run.run_dir)
            if run.config.n_val:
                summary["validation"][run.label] = validation_summary(run.run_dir)
        if arm.evaluate is None or not arm_runs:
            continue
        if spec.seeds is not None:  # one evaluation per run, each reused once complete
            for run in arm_runs:
                records, seconds = evaluate_run(run, files[arm.evaluate.data], arm.evaluate, out, device=device)
                summary["eval_wall_s"] += seconds
                summary["records"].extend(records)
            continue
        t_eval = time.perf_counter()
        where = f"{spec.name}: arms.{arm_name}.evaluate.output"
        records = evaluate(
            [r.run_dir for r in arm_runs],
            files[arm.evaluate.data],
            list(arm.evaluate.resolutions),
            check_inside(out, arm.evaluate.output.format(arm=arm_name), where),
            device=device,
            n_test=arm.evaluate.n_test,
        )
        summary["eval_wall_s"] += time.perf_counter() - t_eval
        for r in records:
            r["arm"] = arm_name
        summary["records"].extend(records)
    summary["total_wall_s"] = time.perf_counter() - t_start
    if summary_name:
        atomic_write_text(out / f"{summary_name}.json", json.dumps(summary, indent=2) + "\n")
    return summary
