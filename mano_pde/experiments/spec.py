"""Experiment specifications: which data, which runs, which evaluation — declared once, run by one runner.

An experiment is a small declarative record (a TOML file, or built in Python):

``data``
    Named data files: a path (relative to the experiment folder unless absolute) and, optionally, how to generate it
    (:class:`~mano_pde.data.DarcyConfig` keywords, ``n_samples`` included). A file without ``generate`` must exist.
``train``
    :class:`~mano_pde.training.TrainConfig` keywords shared by every run; ``data`` and ``test_data`` name entries
    of ``data``.
``models``
    Named runs: a registry model and its constructor keywords (one registry model may appear under several names,
    e.g. ``mano`` and ``mano-bias``).
``arms``
    Sets of runs trained the same way and evaluated together: the models they train, their ``train`` overrides
    (e.g. a mix of grids), the folder of each run (``run_dir``, a template in ``{arm}`` and ``{model}``) and the
    evaluation (data entry, test grids, number of test samples, output folder). An ``optional`` arm runs only when
    asked for by name (the study's tuning arm).
``targets``
    Comparisons reported as met or missed (``left ≤ factor × right`` on mean relative L2): the project's targets
    live in the spec, not in library code.
``seeds`` (optional)
    Model seeds (initialisation and batch order; the data stay fixed): every run is trained once per seed, in
    ``<run_dir>/seed<k>`` (or where the template's ``{seed}`` says), scored on its own, and the report shows mean ±
    std over seeds and, for the ``compare`` table's comparisons, paired bootstrap intervals
    (:mod:`mano_pde.experiments.statistics`). Without ``seeds`` (``train.seed``, one run per model) everything is
    as before.
``compare`` (optional)
    Which comparisons a seeded report states: ``model`` (a key of ``models``) against every other model of each
    arm at the arm's training grid, and every zero-shot method against the same run's resample at the grids
    ``zero_shot``.
``tuning`` (optional)
    An equal-budget hyperparameter search on the validation split (:mod:`mano_pde.experiments.tuning`) for the
    listed models; its chosen configurations replace theirs before the runs train. A model's ``train`` table
    (e.g. the tuned ``lr`` and ``batch_size``) overrides the experiment-wide one and is overridden by an arm's;
    its ``tuned`` record says how it was chosen. Trials train with the experiment-wide ``train`` table and the
    model's (never an arm's, whose grids and samples differ): these must name the training ``data`` and a
    validation split ``n_val > 0``.

Model and arm keys name folders (run folders, evaluation folders, ``tuning/runs/<model>``): they may not contain
``/`` or ``\\`` nor be ``.`` or ``..``.

:func:`load_spec` reads a TOML file or a spec shipped with the package (``mano_pde/experiments/specs/*.toml``,
e.g. ``darcy-cpu``); :meth:`ExperimentSpec.select` narrows and overrides one before it runs.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..record_types import check_fields, check_value
from ..training.config import check_epochs

__all__ = [
    "ArmSpec",
    "DataSpec",
    "EvalSpec",
    "ExperimentSpec",
    "ModelSpec",
    "TargetSpec",
    "TuningSpec",
    "builtin_specs",
    "load_spec",
]

#: Keys of the experiment-wide ``train`` table that the runner resolves itself (data entries, model).
_RESOLVED_TRAIN_KEYS = ("data", "test_data")


@dataclass(frozen=True)
class DataSpec:
    """A data file: where it lives and, optionally, how to generate it (``DarcyConfig`` keywords)."""

    path: str
    generate: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A registry model with its constructor keywords."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    tuned: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # TOML has no null, and to_dict drops None: a None keyword would make the spec written to study-spec.toml
        # describe another run than the one trained from the spec in memory
        for table in ("kwargs", "train"):
            nulls = sorted(k for k, v in getattr(self, table).items() if v is None)
            if nulls:
                raise UserInputError(
                    f"model {self.model!r}: {table} {nulls} set to None; leave a keyword out to get the model's "
                    "default (a spec cannot hold None: TOML has no null)"
                )


@dataclass(frozen=True)
class EvalSpec:
    """How an arm is scored: data entry, test grids, test samples (``None``: the evaluator's default), folder."""

    data: str
    resolutions: list[int]
    n_test: int | None = None
    output: str = "results/{arm}"


@dataclass(frozen=True)
class ArmSpec:
    """Runs trained the same way and evaluated together."""

    models: list[str]
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: EvalSpec | None = None
    run_dir: str = "runs/{arm}/{model}"
    optional: bool = False


@dataclass(frozen=True)
class TargetSpec:
    """``left ≤ factor × right`` on the mean relative L2 of two cells of an arm's results.

    ``left`` names a ``run`` or, with ``model``, every run of that registry model; each side names a ``method``
    (``direct``, ``ref-grid``, ``resample``) and a ``grid``; ``right["run"] == "self"`` compares a run with itself.
    """

    label: str
    arm: str
    left: dict[str, Any]
    right: dict[str, Any]
    factor: float = 1.0


@dataclass(frozen=True)
class TuningSpec:
    """An equal-budget search (:mod:`mano_pde.experiments.tuning`): the same trials, epochs per trial and
    parameter cap for every listed model; ``resolutions``/``n_train`` set a cheaper proxy (default: the
    experiment's); ``space`` narrows a model's search space (model key -> parameter -> choices)."""

    models: list[str]
    trials: int = 16
    epochs: int = 10
    max_parameters: int = 150_000
    resolutions: list[int] | None = None
    n_train: list[int] | None = None
    seed: int = 0
    space: dict[str, dict[str, list[Any]]] = field(default_factory=dict)


@dataclass
class ExperimentSpec:
    """Everything that determines an experiment (see the module docstring)."""

    name: str
    data: dict[str, DataSpec]
    train: dict[str, Any]
    models: dict[str, ModelSpec]
    arms: dict[str, ArmSpec]
    targets: list[TargetSpec] = field(default_factory=list)
    description: str = ""
    seeds: list[int] | None = None
    compare: dict[str, Any] | None = None
    tuning: TuningSpec | None = None

    def __post_init__(self) -> None:
        for group, keys in (("models", self.models), ("arms", self.arms)):
            for key in keys:  # folder names of run, trial and result folders (e.g. OUT/tuning/runs/<model>)
                if not isinstance(key, str) or key in ("", ".", "..") or any(c in key for c in "/\\\0"):
                    raise UserInputError(
                        f"{self.name}: {group} key {key!r} cannot name a folder: use a name without '/' or '\\' "
                        "that is not '.' or '..' (e.g. mano-small)"
                    )
        self._check_seeds()
        self._check_tuning()
        tables = {"train": self.train, **{f"models.{k}.train": m.train for k, m in self.models.items()}}
        for where, table in tables.items():
            for key in ("data", "test_data"):
                if table.get(key) is not None and table[key] not in self.data:
                    raise UserInputError(f"{self.name}: {where}.{key} = {table[key]!r} names no entry of data")
        for arm_name, arm in self.arms.items():
            unknown = [m for m in arm.models if m not in self.models]
            if unknown:
                raise UserInputError(
                    f"{self.name}: arm {arm_name!r} trains unknown model(s) {unknown}; models: {list(self.models)}"
                )
            for key in ("data", "test_data"):
                if arm.train.get(key) is not None and arm.train[key] not in self.data:
                    raise UserInputError(f"{self.name}: arms.{arm_name}.train.{key} names no entry of data")
            if arm.evaluate is not None and arm.evaluate.data not in self.data:
                raise UserInputError(
                    f"{self.name}: arms.{arm_name}.evaluate.data = {arm.evaluate.data!r} names no entry of data"
                )
            if "{model}" not in arm.run_dir:
                raise UserInputError(f"{self.name}: arms.{arm_name}.run_dir must contain '{{model}}'")
            seeds = {"seed": str(self.seeds[0])} if self.seeds else {}  # seeded specs may place runs by {seed}
            for key in arm.models:
                self._check_output(f"arms.{arm_name}.run_dir", arm.run_dir, arm=arm_name, model=key, **seeds)
            if arm.evaluate is not None:
                self._check_output(f"arms.{arm_name}.evaluate.output", arm.evaluate.output, arm=arm_name)
        for key, entry in self.data.items():
            if entry.generate is not None:  # a file the runner writes (a file it only reads may live anywhere)
                self._check_output(f"data.{key}.path", entry.path)
                self._check_generate(key, entry.generate)
        for t in self.targets:
            if t.arm not in self.arms:
                raise UserInputError(f"{self.name}: target {t.label!r} names unknown arm {t.arm!r}")
            for side, need in ((t.left, ("method", "grid")), (t.right, ("run", "method", "grid"))):
                missing = [k for k in need if k not in side]
                if missing or ("run" not in side and "model" not in side):
                    raise UserInputError(
                        f"{self.name}: target {t.label!r}: each side needs run (left: or model), method and grid; "
                        f"got {side}"
                    )
            self._check_target_runs(t)

    def _check_target_runs(self, t: TargetSpec) -> None:
        """A target names runs of its arm (or a registry model one of them trains): never dropped without a word."""
        arm_models = self.arms[t.arm].models
        for name, side in (("left", t.left), ("right", t.right)):
            for key, kind in (("run", str), ("model", str), ("method", str), ("grid", int)):
                if key in side:
                    check_value(side[key], kind, f"target {t.label!r}: {name}.{key}")
            run = side.get("run")
            if run is not None and run not in arm_models and not (name == "right" and run == "self"):
                raise UserInputError(
                    f"{self.name}: target {t.label!r}: {name}.run = {run!r} is not a model of arm {t.arm!r} "
                    f"({arm_models})" + ("; use 'self' to compare a run with itself" if name == "right" else "")
                )
        if "run" not in t.left:
            registry = sorted({self.models[m].model for m in arm_models})
            if t.left["model"] not in registry:
                raise UserInputError(
                    f"{self.name}: target {t.label!r}: left.model = {t.left['model']!r} is trained by no run of arm "
                    f"{t.arm!r} (its registry models: {registry})"
                )

    def _check_generate(self, key: str, table: dict[str, Any]) -> None:
        """A ``data.<key>.generate`` table is a valid :class:`~mano_pde.data.DarcyConfig` (checked at load, before
        the runner creates the experiment folder); the message names ``data.<key>.generate.<field>``."""
        from ..data.presets import DarcyConfig

        where = f"{self.name}: data.{key}.generate"
        names = [f.name for f in dataclasses.fields(DarcyConfig)]
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise UserInputError(
                f"{where}.{unknown[0]} is not a generator parameter (unknown key(s) {unknown}); known: {names}"
            )
        check_fields(table, DarcyConfig, f"{where}.")  # types, named by key
        try:
            DarcyConfig(**table)
        except UserInputError as exc:  # DarcyConfig's messages start with the field they are about
            message = str(exc)
            field_name = next((n for n in names if message.startswith(n + " ")), None)
            raise UserInputError(f"{where}.{message}" if field_name else f"{where}: {message}") from None

    def _check_output(self, where: str, template: str, **names: str) -> str:
        """``template`` filled in with ``names``: a relative path that stays inside the experiment folder.

        The runner writes every output (generated data, run folders, results) under the folder the user names
        (``-o``); a spec cannot move one elsewhere with an absolute path or ``..``. The runner checks the
        resolved paths again (:func:`mano_pde.files.check_inside`), which also covers symbolic links.
        """
        if not isinstance(template, str):
            raise UserInputError(f"{self.name}: {where} must be a string, got {type(template).__name__}")
        try:
            value = template.format(**names)
        except (KeyError, IndexError, ValueError) as exc:
            raise UserInputError(
                f"{self.name}: {where} = {template!r} is not a valid template ({type(exc).__name__}: {exc}); "
                f"it may use {', '.join('{' + k + '}' for k in names) or 'no placeholders'}"
            ) from None
        norm = os.path.normpath(value)
        if not value or os.path.isabs(value) or norm.split(os.sep)[0] == os.pardir:
            raise UserInputError(
                f"{self.name}: {where} = {template!r} gives {value!r}, which is not inside the experiment folder; "
                "use a relative path below it (no absolute path, no '..' leaving it)"
            )
        return value

    def _check_seeds(self) -> None:
        if self.seeds is None:
            return
        s = self.seeds
        if not isinstance(s, list) or not s or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in s):
            raise UserInputError(f"{self.name}: seeds must be a non-empty list of ints >= 0, got {s!r}")
        if len(set(s)) != len(s):
            raise UserInputError(f"{self.name}: seeds must be distinct, got {s}")
        tables = {"train": self.train, **{f"arms.{k}.train": a.train for k, a in self.arms.items()}}
        tables.update({f"models.{k}.train": m.train for k, m in self.models.items()})
        for where, table in tables.items():
            if "seed" in table:
                raise UserInputError(f"{self.name}: {where}.seed and seeds both given; keep one (seeds: one run each)")
        if self.compare is not None:
            unknown = sorted(set(self.compare) - {"model", "zero_shot"})
            if unknown or self.compare.get("model") not in self.models:
                raise UserInputError(
                    f"{self.name}: compare takes model (a key of models) and zero_shot (test grids), got {self.compare}"
                )

    def _check_tuning(self) -> None:
        t = self.tuning
        if t is None:
            return
        from .search_spaces import check_space

        unknown = [m for m in t.models if m not in self.models]
        if unknown:
            raise UserInputError(f"{self.name}: tuning.models names unknown model(s) {unknown}")
        for key, value in (("trials", t.trials), ("epochs", t.epochs), ("max_parameters", t.max_parameters)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{self.name}: tuning.{key} must be an int >= 1, got {value!r}")
        check_epochs(t.epochs, f"{self.name}: tuning.epochs")
        for key in t.models:  # a trial trains with the experiment-wide train table and the model's, never an arm's
            kw = {**self.train, **self.models[key].train}
            n_val = kw.get("n_val")
            if isinstance(n_val, bool) or not isinstance(n_val, int) or n_val < 1 or kw.get("data") is None:
                raise UserInputError(
                    f"{self.name}: tuning compares trials of {key} on the validation split of the training data: "
                    f"set data and n_val > 0 in the experiment-wide [train] table (got data = {kw.get('data')!r}, "
                    f"n_val = {n_val!r}); trials do not read the arms' train tables"
                )
        bad = sorted(set(t.space) - set(t.models))
        if bad:
            raise UserInputError(f"{self.name}: tuning.space names model(s) {bad} that tuning.models does not list")
        for key in t.models:
            check_space(self.models[key].model, t.space.get(key, {}), f"{self.name}: tuning.space.{key}")

    # ------------------------------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (JSON/TOML-able; ``None`` values and empty model ``train`` tables dropped)."""
        record = _drop_none(dataclasses.asdict(self))
        for model in record["models"].values():
            if not model.get("train"):
                model.pop("train", None)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ExperimentSpec:
        """Build a spec from plain data (a parsed TOML file); unknown keys are refused, naming the table."""
        record = copy.deepcopy(record)
        _known(record, ExperimentSpec, "the experiment")
        try:
            data = {k: DataSpec(**_known(v, DataSpec, f"data.{k}")) for k, v in record.get("data", {}).items()}
            models = {k: ModelSpec(**_known(v, ModelSpec, f"models.{k}")) for k, v in record.get("models", {}).items()}
            arms = {}
            for k, v in record.get("arms", {}).items():
                v = _known(v, ArmSpec, f"arms.{k}")
                if v.get("evaluate") is not None:
                    v["evaluate"] = EvalSpec(**_known(v["evaluate"], EvalSpec, f"arms.{k}.evaluate"))
                arms[k] = ArmSpec(**v)
            targets = [TargetSpec(**_known(t, TargetSpec, "targets")) for t in record.get("targets", [])]
            tuning = record.get("tuning")
            if tuning is not None:
                tuning = TuningSpec(**_known(tuning, TuningSpec, "tuning"))
            return cls(
                name=record["name"],
                data=data,
                train=dict(record.get("train", {})),
                models=models,
                arms=arms,
                targets=targets,
                description=record.get("description", ""),
                seeds=record.get("seeds"),
                compare=record.get("compare"),
                tuning=tuning,
            )
        except (KeyError, TypeError) as exc:
            raise UserInputError(f"incomplete experiment specification: {exc}") from None

    # ------------------------------------------------------------------------------------------ selection
    def default_arms(self) -> list[str]:
        """The arms that run when none are named: every arm but the optional ones (:func:`run_experiment` runs
        these; :meth:`select` an optional arm by name to run it)."""
        return [k for k, a in self.arms.items() if not a.optional]

    def select(
        self, *, arms: list[str] | None = None, models: list[str] | None = None, epochs: int | None = None
    ) -> ExperimentSpec:
        """A copy narrowed to ``arms`` (default: the non-optional ones) and ``models`` (keys of ``models``), with
        the experiment-wide ``epochs`` replaced (arms that set their own epochs keep them)."""
        arms = list(arms) if arms else self.default_arms()
        bad = [a for a in arms if a not in self.arms]
        if bad:
            raise UserInputError(f"unknown arm(s) {bad} for {self.name}; choose from {list(self.arms)}")
        if models:
            bad = [m for m in models if m not in self.models]
            if bad:
                raise UserInputError(f"unknown model(s) {bad} for {self.name}; choose from {list(self.models)}")
        new = copy.deepcopy(self)
        new.arms = {  # an arm asked for by name is no longer optional
            a: dataclasses.replace(
                self.arms[a], models=[m for m in self.arms[a].models if not models or m in models], optional=False
            )
            for a in arms
        }
        new.targets = [t for t in self.targets if t.arm in new.arms]
        if new.tuning is not None and models:
            kept = [m for m in new.tuning.models if m in models]
            new.tuning = dataclasses.replace(
                new.tuning, models=kept, space={k: v for k, v in new.tuning.space.items() if k in kept}
            )
        if epochs is not None:
            check_epochs(epochs)  # TrainConfig's bound, before any work (the runs are planned later)
            new.train["epochs"] = epochs
        return new


def _known(record: Any, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise UserInputError(f"{where} must be a table, got {type(record).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise UserInputError(f"unknown key(s) {unknown} in {where}; known: {sorted(names)}")
    check_fields(record, cls, "" if cls is ExperimentSpec else f"{where}.")  # names the key of a wrong type
    if "train" in record and cls in (ExperimentSpec, ArmSpec, ModelSpec):  # TrainConfig keywords, typed by its fields
        from ..training.config import TrainConfig

        check_fields(record["train"], TrainConfig, "train." if cls is ExperimentSpec else f"{where}.train.")
    return record


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _specs_folder() -> Path:
    return Path(__file__).with_name("specs")


def builtin_specs() -> list[str]:
    """Names of the specs shipped with the package (``load_spec(name)`` reads them)."""
    return sorted(p.stem for p in _specs_folder().glob("*.toml"))


def load_spec(source: str | Path) -> ExperimentSpec:
    """Read an experiment spec: a TOML file path or the name of a shipped spec (:func:`builtin_specs`).

    Raises
    ------
    mano_pde.errors.UserInputError
        No such file or spec, TOML that does not parse, unknown keys or references.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    path = Path(source)
    if not path.suffix and not path.exists():
        path = _specs_folder() / f"{source}.toml"
        if not path.is_file():
            raise UserInputError(f"no experiment spec {str(source)!r}; shipped specs: {builtin_specs()}")
    if path.is_dir():
        raise UserInputError(
            f"experiment spec {path} is a folder, not a TOML file; give the path of the spec's .toml file"
        )
    if not path.is_file():
        raise UserInputError(f"experiment spec {path} does not exist" + (" (or is not a regular file)" * path.exists()))
    try:
        record = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is not a valid TOML experiment spec: {exc}") from None
    try:
        return ExperimentSpec.from_dict(record)
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}") from None
