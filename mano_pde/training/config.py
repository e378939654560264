"""Training configuration: one JSON-serialisable record of everything that determines a run."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserInputError
from ..model_catalogue import MODEL_NAMES, canonical_model_name
from ..record_types import check_fields

__all__ = ["TrainConfig", "LOSSES", "SCHEDULERS", "MAX_SEED", "MAX_EPOCHS", "check_epochs"]

LOSSES = ("l2", "h1")
SCHEDULERS = ("cosine", "step", "none")
#: The largest training seed: the per-epoch seeds derived from it (``seed * 1_000_003 + epoch``) stay in torch's range.
MAX_SEED = 2**32 - 1
#: The most epochs a run may ask for: the FNO paper trains 500; 10**6 epochs of even a one-second epoch take 11.6 days,
#: so a larger count is a typo (or ``2**70``) that would run until it is killed.
MAX_EPOCHS = 10**6
#: The range of float32, torch's parameter type: the learning rate, weight decay and decay factor enter the
#: optimizer's float32 arithmetic, where a larger number overflows and a smaller non-zero one flushes to 0.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38


def check_epochs(value: object, where: str = "epochs (--epochs)") -> None:
    """Refuse an epoch count that is not an int in ``[1, MAX_EPOCHS]`` (every place that takes one: a run's
    ``epochs``, ``benchmark darcy --epochs``, a spec's ``tuning.epochs``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"{where} must be an int >= 1, got {value!r}")
    if value > MAX_EPOCHS:
        raise UserInputError(
            f"{where} must be at most {MAX_EPOCHS:,} (10**6 epochs of even a one-second epoch take 11.6 days), got "
            f"{value:,}; give the number of epochs you mean"
        )


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json`` in the run directory).

    ``mano-pde train`` takes one option per field (:mod:`mano_pde.commands.options`): the field's type and
    default, its ``metadata["help"]`` as help, and ``metadata["choices"]`` / ``"flag"`` / ``"repeat"`` where
    set; a new field is an option without further code (a bool field: a flag).

    Attributes
    ----------
    model : str
        Registered model name (``mano``, ``fno``, ``tfno``, ``global-attention``, ``window-attention``).
    data : str
        Training data file (mano_pde Darcy schema).
    resolutions : list of int
        Training grid(s); several values train on a mix of grids (batches are homogeneous in grid).
    n_train : list of int
        Training samples per resolution (one value applies to every resolution). Samples are the first
        ``n_train`` of the file, so all resolutions draw on the same leading block.
    n_test : int
        Held-out test samples: the **last** ``n_test`` samples of ``test_data`` (default: of ``data``). Never
        overlapping the training (or validation) block; checked. Scored every epoch when ``n_val == 0``, once
        after the last epoch otherwise.
    n_val : int
        Validation samples held out from the **training** file, right after the training block: indices
        ``[max(n_train), max(n_train) + n_val)``. With ``n_val > 0`` the per-epoch log (``log.csv``) holds the
        validation error per training grid (``val_rel_l2_{r}``) instead of the test error, the test file is
        scored only once, after the last epoch, and the result is written to ``final_metrics.json`` together
        with ``best_val_epoch`` / ``best_val_rel_l2``. The saved weights are always the last epoch's (no early
        stopping). ``0`` (default): no validation split, the test error is logged every epoch.
    test_data : str, optional
        A separate held-out file.
    epochs, batch_size, lr, weight_decay : training hyperparameters (Adam).
    scheduler : {"cosine", "step", "none"}
        Cosine annealing over all epochs, or step decay (``step_size`` epochs, factor ``gamma``).
    loss : {"l2", "h1"}
        Relative L2 (neuraloperator ``LpLoss``) or relative H1 (``H1Loss``, non-periodic), on the physical
        (de-normalised) pressure.
    seed : int
        Seeds weights, batch order and dropout; batch order of epoch ``e`` depends only on ``(seed, e)``.
    device : {"auto", "cpu", "cuda"}
    amp_bf16 : bool
        bfloat16 autocast (``torch.autocast``) of the forward pass, on the CPU and on CUDA: weights, gradients
        and optimizer state stay fp32, the loss is computed in fp32 (see :mod:`mano_pde.acceleration`). The
        per-epoch held-out errors are scored in fp32. Changes the numbers: part of the run's identity.
    compile : bool
        Train through ``torch.compile`` (:func:`mano_pde.acceleration.compile_model`; on the CPU it needs a C++
        compiler). Weights are saved from the uncompiled module and held-out errors are scored eagerly. The
        compiled step equals the eager one to fp32 rounding, so ``compile`` is a runtime field: a run may be
        resumed with or without it.
    model_kwargs : dict
        Constructor overrides passed to :func:`mano_pde.models.create_model`.
    """

    model: str = field(metadata={"help": "the model to train", "choices": MODEL_NAMES})
    data: str = field(metadata={"help": "training data file"})
    resolutions: list[int] = field(
        metadata={"help": "training grid; repeat for multi-resolution training", "flag": "--resolution", "repeat": True}
    )
    n_train: list[int] = field(metadata={"help": "training samples (one value, or one per --resolution)"})
    epochs: int = field(default=20, metadata={"help": "training epochs"})
    n_test: int = field(default=32, metadata={"help": "held-out samples: the last of the test file"})
    n_val: int = field(
        default=0,
        metadata={
            "help": "validation samples held out from the training file (the N right after the training block) for "
            "the per-epoch log and model selection; the test file is then scored only at the end "
            "(final_metrics.json). 0: no validation split, the test error is logged every epoch"
        },
    )
    test_data: str | None = field(default=None, metadata={"help": "separate held-out data file"})
    batch_size: int = field(default=8, metadata={"help": "global batch size (split across torchrun processes)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "Adam weight decay"})
    scheduler: str = field(default="cosine", metadata={"help": "learning-rate schedule", "choices": SCHEDULERS})
    step_size: int = field(default=100, metadata={"help": "step scheduler: epochs per decay"})
    gamma: float = field(default=0.5, metadata={"help": "step scheduler: decay factor"})
    loss: str = field(default="l2", metadata={"help": "relative L2 (LpLoss) or H1 (H1Loss)", "choices": LOSSES})
    seed: int = field(default=0, metadata={"help": "seeds weights, batch order and dropout"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    amp_bf16: bool = field(
        default=False,
        metadata={"help": "bfloat16 autocast on the CPU or CUDA (fp32 weights, optimizer and loss)", "flag": "--bf16"},
    )
    compile: bool = field(
        default=False,
        metadata={"help": "train through torch.compile (inductor; on the CPU needs a C++ compiler, e.g. g++)"},
    )
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "model constructor keywords"})

    def __post_init__(self) -> None:
        for key in ("data", "test_data"):  # a path object is fine from Python; the record holds its text
            if isinstance(getattr(self, key), os.PathLike):
                setattr(self, key, os.fspath(getattr(self, key)))
        check_fields(self, TrainConfig)  # names the key: "resolutions must be a list of int, got '17' (str)"
        self.resolutions = [int(r) for r in self.resolutions]
        self.n_train = [int(n) for n in self.n_train]
        self.n_val = int(self.n_val)
        if not self.resolutions:
            raise UserInputError("give at least one training resolution")
        if len(set(self.resolutions)) != len(self.resolutions):
            raise UserInputError(f"training resolutions must be distinct, got {self.resolutions}")
        if len(self.n_train) == 1:
            self.n_train = self.n_train * len(self.resolutions)
        if len(self.n_train) != len(self.resolutions):
            raise UserInputError(
                f"--n-train takes one value or one per --resolution ({len(self.resolutions)}), got {self.n_train}"
            )
        if min(self.n_train) < 1:
            raise UserInputError(f"n_train must be positive, got {self.n_train}")
        if self.n_test < 1:
            raise UserInputError(f"n_test must be >= 1 (the held-out error is logged every epoch), got {self.n_test}")
        if self.n_val < 0:
            raise UserInputError(f"n_val must be >= 0 (0: no validation split), got {self.n_val}")
        check_epochs(self.epochs)
        if self.batch_size < 1:
            raise UserInputError(f"batch_size (--batch-size) must be >= 1, got {self.batch_size}")
        canonical_model_name(self.model)  # the registry's names, without importing torch
        if self.loss not in LOSSES:
            raise UserInputError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.scheduler not in SCHEDULERS:
            raise UserInputError(f"unknown scheduler {self.scheduler!r}; choose one of {SCHEDULERS}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserInputError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        self._check_ranges()
        for key in ("in_channels", "out_channels"):
            if key in self.model_kwargs and self.model_kwargs[key] != 1:
                raise UserInputError(
                    f"{key}={self.model_kwargs[key]} does not match the data: Darcy files give 1 input channel "
                    "(permeability a) and 1 output channel (pressure u); drop the override"
                )

    def _check_ranges(self) -> None:
        """Numbers that would train silently wrong (NaN/inf weights) or fail deep inside torch: refused here."""
        for key, zero_ok in (("lr", False), ("weight_decay", True), ("gamma", False)):
            value = getattr(self, key)
            option = f"{key} (--{key.replace('_', '-')})"
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                raise UserInputError(f"{option} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}")
            if value > FLOAT32_MAX or 0 < value < FLOAT32_TINY:
                raise UserInputError(
                    f"{option} = {value!r} cannot be held by float32, the weights' type (it would overflow to inf or "
                    f"flush to 0): give a value between {FLOAT32_TINY:.2g} and {FLOAT32_MAX:.2g}"
                    + (" (or 0)" if zero_ok else "")
                )
        if self.step_size < 1:
            raise UserInputError(
                f"step_size (--step-size) must be an int >= 1 (epochs per decay), got {self.step_size}"
            )
        self._check_step_decay()
        if not 0 <= self.seed <= MAX_SEED:
            raise UserInputError(f"seed (--seed) must be an int in [0, 2**32 - 1], got {self.seed}")
        if min(self.resolutions) < 3:
            raise UserInputError(f"training grids need at least 3 points per direction, got {min(self.resolutions)}")
        if self.loss == "h1" and min(self.resolutions) < _h1_min_points():
            raise UserInputError(
                f"--loss h1 needs grids of at least {_h1_min_points()} points per direction (neuraloperator's "
                f"one-sided finite differences at the boundary), got {min(self.resolutions)}; use --loss l2 there"
            )

    def _check_step_decay(self) -> None:
        """The step schedule's largest learning rate, ``lr * gamma**decays`` (``gamma > 1`` grows it), fits float32."""
        if self.scheduler != "step" or self.gamma <= 1:
            return
        decays = (self.epochs - 1) // self.step_size  # StepLR decays after every step_size epochs
        if decays and math.log(self.lr) + decays * math.log(self.gamma) > math.log(FLOAT32_MAX):
            raise UserInputError(
                f"gamma (--gamma) = {self.gamma!r} > 1 grows the learning rate {decays} times over {self.epochs} "
                f"epochs (step size {self.step_size}), from lr = {self.lr!r} beyond float32's range "
                f"({FLOAT32_MAX:.2g}); use a decay factor gamma <= 1"
            )

    #: Fields that say where (or how fast) a run executes, not what it computes: a run resumed or reused with
    #: other values of these is the same run.
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("device", "compile")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Fields that differ between two configurations (``RUNTIME_FIELDS`` excepted): name -> (ours, theirs)."""
        theirs = other.to_dict()
        return {k: (v, theirs[k]) for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS and v != theirs[k]}

    def digest(self) -> str:
        """SHA-256 of the configuration without ``RUNTIME_FIELDS``: two runs with equal digests compute the same
        thing (the identity the experiment runner reuses and resumes runs by)."""
        import hashlib

        record = {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(record) - names
        if unknown:
            raise UserInputError(f"unknown training configuration keys {sorted(unknown)}")
        return cls(**record)

    def to_json(self) -> str:
        """The ``config.json`` text (sorted keys)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` atomically (a kill never leaves a torn file)."""
        from mano_pde.files import atomic_write_text

        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``config.json``; a file that is not JSON or not a configuration names the file."""
        from mano_pde.models.checkpoint import read_json

        record = read_json(path, "a training configuration (mano-pde train)")
        if not isinstance(record, dict):
            raise UserInputError(f"{path} holds a JSON {type(record).__name__}, not a training configuration")
        try:
            return cls.from_dict(record)
        except TypeError as exc:  # a required field missing
            raise UserInputError(f"{path} is not a complete training configuration ({exc})") from None
        except UserInputError as exc:
            raise UserInputError(f"{path}: {exc}") from None


def _h1_min_points() -> int:
    from ..evaluation.metrics import H1_MIN_POINTS  # imports torch: only for --loss h1

    return H1_MIN_POINTS
