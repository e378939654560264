"""Equal-budget hyperparameter search on the validation split, with Optuna (the ``tune`` extra).

Every model the spec's ``tuning`` table lists gets the same budget: ``trials`` trained trials of ``epochs`` epochs
each (on the experiment's training grid and samples, or on the proxy ``resolutions``/``n_train``), and the same
parameter cap ``max_parameters`` — counted on the built model *before* training; a configuration over the cap (or
one the model refuses) is recorded as pruned without training and does not use up a trial. The search:

* Optuna's TPE sampler, seeded: before each trial the sampler is re-created with the seed ``(tuning.seed, number
  of trials so far)``, so a resumed search draws what the uninterrupted one would have drawn from the same history;
* Optuna's median pruner on the per-epoch validation curve (mean relative L2 over the training grids): a trial
  whose curve lies above the median of the earlier trials at the same epoch stops there;
* the trial's objective: the validation error of its last epoch (the weights a final run keeps). The test file is
  never scored (``train(..., score_test=False)``);
* one SQLite file ``OUT/tuning/optuna.sqlite3`` (one Optuna study per model key) and each trial's run folder
  ``OUT/tuning/runs/<model>/trial-<digest>``: a search killed at any moment resumes — a trial that was running is
  marked failed and queued again with the same parameters, and its training resumes from its last epoch (the
  epochs it already trained are reported from its verified resume state);
* a trial whose training diverges (non-finite loss, held-out error, weights or learning rate:
  :class:`~mano_pde.training.trainer.NonFiniteTrainingError`) is recorded as failed, with the reason in its
  ``note``: it uses up a trial, the search goes on, and it is not queued again (a rerun would diverge the same way).

:func:`run_search` tunes every listed model and writes the records (``trials.csv``, ``trials.md``,
``chosen.json``); :func:`apply_tuning` puts the chosen configurations into the spec (each model's ``kwargs``,
``train`` = learning rate and batch size, and a ``tuned`` record); :func:`spec_to_toml` writes such a spec as a
TOML file with a comment saying how the configurations were chosen.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserInputError
from ..files import atomic_write_text, check_inside
from .runner import count_parameters_of, data_paths, ensure_data, plan_runs
from .search_spaces import check_space, model_kwargs, space_size
from .spec import ExperimentSpec, ModelSpec

if TYPE_CHECKING:
    from ..training import TrainConfig

__all__ = [
    "STORAGE",
    "require_optuna",
    "trial_config",
    "tune_model",
    "run_search",
    "apply_tuning",
    "spec_to_toml",
    "trials_table",
]

log = logging.getLogger(__name__)

#: The Optuna storage of a search, in its folder (one study per model key).
STORAGE = "optuna.sqlite3"
#: Why a trial did not train (``note`` user attribute) — such trials do not use up the budget.
_NOT_TRAINED = ("over the parameter cap", "refused by the model")


def require_optuna() -> Any:
    """Import Optuna or say how to install it."""
    try:
        import optuna
    except ImportError:
        raise UserInputError(
            'the hyperparameter search needs Optuna, an optional dependency: pip install "mano-pde[tune]"'
        ) from None
    return optuna


def trial_config(spec: ExperimentSpec, key: str, params: dict[str, Any], output: Path, device: str) -> TrainConfig:
    """The training configuration of one trial of model ``key`` with the search parameters ``params``."""
    from ..training import TrainConfig

    t, m = spec.tuning, spec.models[key]
    kwargs, train = model_kwargs(m.model, params)
    kw = {**spec.train, **m.train, "epochs": t.epochs, "seed": t.seed, **train}
    if t.resolutions:
        kw["resolutions"] = list(t.resolutions)
    if t.n_train:
        kw["n_train"] = list(t.n_train)
    elif t.resolutions and len(t.resolutions) != len(kw.get("n_train", [])):
        kw["n_train"] = [max(kw["n_train"])]
    paths = data_paths(spec, output)
    for ref in ("data", "test_data"):
        if kw.get(ref) is not None:
            kw[ref] = str(paths[kw[ref]])
    return TrainConfig(model=m.model, model_kwargs={**m.kwargs, **kwargs}, device=device, **kw)


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name, choices in space.items():
        if name == "lr":
            params[name] = trial.suggest_float(name, float(choices[0]), float(choices[1]), log=True)
        else:
            params[name] = trial.suggest_categorical(name, list(choices))
    return params


def _counts(study: Any) -> dict[str, int]:
    """Trials by outcome; ``used`` is the budget spent (trained trials: complete, pruned by the median rule or
    failed: stopped by a non-finite loss, weight or learning rate)."""
    from optuna.trial import TrialState

    out = {"complete": 0, "pruned": 0, "not_trained": 0, "failed": 0, "interrupted": 0}
    for tr in study.get_trials(deepcopy=False):
        note = tr.user_attrs.get("note")
        if tr.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif tr.state == TrialState.PRUNED:
            out["not_trained" if note in _NOT_TRAINED else "pruned"] += 1
        elif tr.state == TrialState.FAIL:
            out["failed" if note else "interrupted"] += 1
    out["used"] = out["complete"] + out["pruned"] + out["failed"]
    return out


def _recover_interrupted(study: Any) -> None:
    """Trials left running by a killed search: mark them failed and queue their parameters again."""
    from optuna.trial import TrialState

    for tr in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.info("trial %d of %s was interrupted: it runs again with the same parameters", tr.number, study.study_name)
        study.tell(tr.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(tr.params), skip_if_exists=False)


def _val_error(row: dict[str, Any]) -> float:
    vals = [float(v) for k, v in row.items() if k.startswith("val_rel_l2_")]
    return sum(vals) / len(vals)


def _trained_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The log rows of the epochs a trial's run folder has finished: those of its verified resume state (the rows
    the trainer resumes from), not ``log.csv``, which may have changed or been cut short since it was written."""
    from ..training.logs import read_log
    from ..training.state import has_train_state, load_train_state

    if not has_train_state(run_dir):
        return []
    state = load_train_state(run_dir, map_location="cpu", warn=False)
    epoch = int(state["epoch"])
    # states of runs older than the log in the state: log.csv, checked to hold every epoch (as the trainer does)
    return [dict(r) for r in state["log"][:epoch]] if "log" in state else read_log(run_dir / "log.csv", epoch)


def _train_trial(trial: Any, config: TrainConfig, run_dir: Path, progress: bool) -> float:
    """Train (or resume) one trial, reporting each epoch's validation error; its last epoch's error."""
    import optuna

    from ..training import train

    done_rows = _trained_rows(run_dir)

    def on_epoch(row: dict[str, Any]) -> None:
        value = _val_error(row)
        trial.report(value, int(row["epoch"]))
        done_rows.append(row)
        if int(row["epoch"]) < config.epochs and trial.should_prune():  # a finished trial is complete
            raise optuna.TrialPruned(f"epoch {row['epoch']}: validation error {value:.4f} above the median")

    replay, done_rows = done_rows, []
    for row in replay:  # epochs trained before an interruption count as they did
        on_epoch(row)
    if len(done_rows) < config.epochs:
        # resume also a folder killed before its config.json was written (the trainer then starts it afresh)
        train(config, run_dir, resume=run_dir.exists(), progress=progress, on_epoch=on_epoch, score_test=False)
    return _val_error(done_rows[-1])


def tune_model(
    spec: ExperimentSpec, key: str, output: str | Path, *, device: str = "auto", progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the search of model ``key`` until it has ``tuning.trials`` trained trials.

    ``output`` is the experiment folder (data paths are resolved from it); the search lives in
    ``output/tuning``. Returns the chosen configuration (see :func:`apply_tuning`) with the search's counts.
    """
    optuna = require_optuna()
    from optuna.trial import TrialState

    from ..models import model_signature
    from ..training.trainer import NonFiniteTrainingError, NonFiniteWeightsError

    t, m = spec.tuning, spec.models[key]
    space = check_space(m.model, t.space.get(key, {}), f"tuning.space.{key}")
    folder = Path(output) / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / STORAGE).absolute()}")
    study = optuna.create_study(study_name=key, storage=storage, direction="minimize", load_if_exists=True)
    _recover_interrupted(study)
    while (counts := _counts(study))["used"] < t.trials:
        n = len(study.trials)
        if counts["not_trained"] > 50 * t.trials:
            raise UserInputError(
                f"tuning {key}: {counts['not_trained']} sampled configurations were over the parameter cap "
                f"({t.max_parameters:,}) or refused: narrow tuning.space.{key} or raise tuning.max_parameters"
            )
        study = optuna.load_study(
            study_name=key,
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=t.seed * 1_000_003 + n, n_startup_trials=max(1, t.trials // 3)),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=max(1, t.trials // 4), n_warmup_steps=max(1, t.epochs // 3)
            ),
        )
        trial = study.ask()
        params = _suggest(trial, space)
        config = trial_config(spec, key, params, Path(output), device)
        build = dict(config.model_kwargs)
        if "image_size" in model_signature(m.model):
            build.setdefault("image_size", max(config.resolutions))
        try:
            n_params = count_parameters_of(m.model, build)
        except UserInputError as exc:  # e.g. a window that the grid cannot hold
            trial.set_user_attr("note", "refused by the model")
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.PRUNED)
            continue
        trial.set_user_attr("n_parameters", n_params)
        if n_params > t.max_parameters:
            trial.set_user_attr("note", "over the parameter cap")
            study.tell(trial, state=TrialState.PRUNED)
            continue
        trial_dir = Path("tuning", "runs", key, f"trial-{config.digest()[:12]}")
        run_dir = check_inside(output, trial_dir, f"the run folder of a trial of {key}")  # keys are free TOML keys
        trial.set_user_attr("run_dir", str(run_dir.relative_to(folder)))
        log.info("tuning %s: trial %d %s (%d parameters)", key, trial.number, params, n_params)
        try:
            value = _train_trial(trial, config, run_dir, progress)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except NonFiniteTrainingError as exc:  # diverged: failed (it counts), never queued again
            diverged = "weights" if isinstance(exc, NonFiniteWeightsError) else "loss"
            trial.set_user_attr("note", f"non-finite {diverged}")
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            continue
        study.tell(trial, value)
    best = _best(study, key)
    kwargs, train = model_kwargs(m.model, best.params)
    return {
        "model": m.model,
        "kwargs": {**m.kwargs, **kwargs},
        "train": {**m.train, **train},
        "tuned": {
            "how": "Optuna TPE + median pruning on the validation split (mano-pde benchmark darcy)",
            "trial": best.number,
            "val_rel_l2": best.value,
            "n_parameters": best.user_attrs.get("n_parameters"),
            "trials": t.trials,
            "epochs_per_trial": t.epochs,
            "max_parameters": t.max_parameters,
            "resolutions": list(t.resolutions or spec.train.get("resolutions", [])),
            "space_size": space_size(space),
            **{k: v for k, v in counts.items() if k != "used"},
        },
    }


def _best(study: Any, key: str) -> Any:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise UserInputError(f"tuning {key}: no trial completed (all pruned or failed); see {STORAGE}")
    return min(complete, key=lambda tr: (tr.value, tr.number))


def run_search(
    spec: ExperimentSpec,
    output: str | Path,
    *,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Generate the data, tune every model of ``spec.tuning`` (resumable) and write the records.

    Writes ``output/tuning/{optuna.sqlite3, trials.csv, trials.md, chosen.json}``; returns the chosen
    configuration per model key (for :func:`apply_tuning`).
    """
    if spec.tuning is None:
        raise UserInputError(f"{spec.name} has no tuning table")
    require_optuna()
    out = Path(output)
    todo = [k for k in spec.tuning.models if spec.models[k].tuned is None]
    ensure_data(spec, out, runs=plan_runs(spec, out, device=device), workers=workers, progress=progress)
    chosen = {key: tune_model(spec, key, out, device=device, progress=progress) for key in todo}
    folder = out / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    rows = trials_table(folder / STORAGE, todo)
    atomic_write_text(folder / "trials.csv", _csv(rows))
    atomic_write_text(folder / "trials.md", tuning_report(spec, chosen, rows) + "\n")
    atomic_write_text(folder / "chosen.json", json.dumps(chosen, indent=2) + "\n")
    return chosen


def trials_table(storage: str | Path, keys: list[str]) -> list[dict[str, Any]]:
    """Every trial of the studies ``keys`` in a SQLite storage, one row each (model, number, state, value, ...)."""
    optuna = require_optuna()
    url = f"sqlite:///{Path(storage).absolute()}"
    rows = []
    for key in keys:
        study = optuna.load_study(study_name=key, storage=url)
        for tr in study.get_trials(deepcopy=False):
            last = max(tr.intermediate_values) if tr.intermediate_values else None
            rows.append(
                {
                    "model": key,
                    "trial": tr.number,
                    "state": tr.state.name,
                    "note": tr.user_attrs.get("note", ""),
                    "val_rel_l2": tr.value if tr.value is not None else "",
                    "last_epoch": last if last is not None else "",
                    "last_val_rel_l2": tr.intermediate_values[last] if last is not None else "",
                    "n_parameters": tr.user_attrs.get("n_parameters", ""),
                    "params": json.dumps(tr.params, sort_keys=True),
                }
            )
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def tuning_report(spec: ExperimentSpec, chosen: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Markdown: the budget, each model's counts and chosen configuration, then every trial."""
    t = spec.tuning
    grids = "/".join(f"{r}²" for r in (t.resolutions or spec.train.get("resolutions", [])))
    lines = [
        f"Equal-budget search (Optuna TPE, seed {t.seed}; median pruning on the validation curve): {t.trials} trained "
        f"trials of {t.epochs} epochs at {grids} per model, at most {t.max_parameters:,} parameters (counted before "
        "training; configurations over the cap are not trained and do not count as trials). Objective: validation "
        "relative L2 of the last epoch; the test file is never scored. Storage: `tuning/optuna.sqlite3`.",
        "",
        "| model | space size | trained | complete | pruned (median) | failed | over cap / refused | chosen trial | "
        "val rel. L2 | parameters | configuration |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in chosen.items():
        d = c["tuned"]
        trained = d["complete"] + d["pruned"] + d["failed"]
        config = json.dumps({**c["kwargs"], **c["train"]}, sort_keys=True)
        lines.append(
            f"| {key} | {d['space_size']:,} | {trained} | {d['complete']} | {d['pruned']} | {d['failed']} | "
            f"{d['not_trained']} | {d['trial']} | {d['val_rel_l2']:.4f} | {d['n_parameters']:,} | `{config}` |"
        )
    lines += [
        "",
        "Every trial (also in `tuning/trials.csv`):",
        "",
        "| model | trial | state | note | val rel. L2 | last epoch | parameters | params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = f"{r['last_val_rel_l2']:.4f}" if r["last_val_rel_l2"] != "" else "–"
        lines.append(
            f"| {r['model']} | {r['trial']} | {r['state']} | {r['note']} | {value} | {r['last_epoch']} | "
            f"{r['n_parameters']} | `{r['params']}` |"
        )
    return "\n".join(lines)


def apply_tuning(spec: ExperimentSpec, chosen: dict[str, dict[str, Any]]) -> ExperimentSpec:
    """A copy of ``spec`` whose models ``chosen`` names take their chosen ``kwargs``, ``train`` and ``tuned``."""
    new = copy.deepcopy(spec)
    for key, c in chosen.items():
        if key not in new.models:
            raise UserInputError(f"chosen configuration for unknown model {key!r} of {spec.name}")
        new.models[key] = ModelSpec(
            model=c["model"], kwargs=dict(c["kwargs"]), train=dict(c["train"]), tuned=c["tuned"]
        )
    return new


def spec_to_toml(spec: ExperimentSpec, header: str = "") -> str:
    """The spec as TOML text (readable by :func:`~mano_pde.experiments.load_spec`), with ``header`` as a comment
    and, above each tuned model, a comment saying how its configuration was chosen."""
    record = spec.to_dict()
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key in ("name", "description", "seeds"):
        if key in record:
            lines.append(f"{key} = {_toml_value(record[key])}")
    for table in ("compare", "train", "tuning"):
        if record.get(table):
            lines += ["", f"[{table}]", *(f"{k} = {_toml_value(v)}" for k, v in record[table].items())]
    for group in ("data", "models", "arms"):
        for name, entry in record.get(group, {}).items():
            lines.append("")
            tuned = entry.get("tuned") if group == "models" else None
            if tuned:
                lines.append(
                    f"# chosen by the search: trial #{tuned['trial']}, the best of {tuned['trials']} trained trials of "
                    f"{tuned['epochs_per_trial']} epochs (<= {tuned['max_parameters']:,} parameters), validation rel. "
                    f"L2 {tuned['val_rel_l2']:.4f}"
                )
            lines.append(f"[{group}.{_toml_key(name)}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items() if v != {} and v != []]
    for target in record.get("targets", []):
        lines += ["", "[[targets]]", *(f"{k} = {_toml_value(v)}" for k, v in target.items())]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
