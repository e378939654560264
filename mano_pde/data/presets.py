"""Generator configurations and named presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from solvers import FACE_AVERAGES, PERMEABILITY_MAPS, check_grf_parameters

from ..errors import UserInputError
from ..record_types import check_fields

__all__ = ["DarcyConfig", "PRESETS", "get_preset", "DEFAULT_PRESET", "MAX_INT64"]

#: The largest sample count and seed: a data file records both as 64-bit signed integers (netCDF attributes).
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class DarcyConfig:
    """Every parameter that determines a generated Darcy dataset.

    Sample ``i`` is a pure function of ``(config, i)``: its random field is drawn from
    ``numpy.random.default_rng(numpy.random.SeedSequence(seed, spawn_key=(i,)))``.

    Attributes
    ----------
    n_samples : int
        Number of samples (at most ``2**63 - 1``: the file records it as int64).
    resolution : int
        Grid points per direction, boundary included (``s``; ``h = 1/(s-1)``).
    seed : int
        Root seed, ``0 … 2**63 - 1`` (the file records it as an int64 attribute).
    alpha, tau : float
        Gaussian random field covariance ``(-Δ + τ² I)^(-α)`` (FNO benchmark: 2, 3). Together they must give a
        field that float64 can compute (:func:`solvers.check_grf_parameters`).
    permeability_map : {"piecewise", "lognormal"}
        ``piecewise``: ``high`` where the field ≥ 0, ``low`` elsewhere; ``lognormal``: ``exp(sigma · field)``.
    high, low : float
        Values of the piecewise map (FNO benchmark: 12, 3).
    sigma : float
        Log-normal scale.
    forcing : float
        Constant right-hand side ``f``.
    face_average : {"harmonic", "arithmetic"}
        Face coefficients of the 5-point stencil.

    Each field's ``metadata`` holds its ``mano-pde generate`` help (and flag, choices): the command takes one
    option per field (:mod:`mano_pde.commands.options`).
    """

    n_samples: int = field(default=128, metadata={"help": "number of samples"})
    resolution: int = field(default=129, metadata={"help": "grid points per direction, boundary included"})
    seed: int = field(default=0, metadata={"help": "root seed (sample i depends only on seed and i)"})
    alpha: float = field(default=2.0, metadata={"help": "GRF smoothness alpha"})
    tau: float = field(default=3.0, metadata={"help": "GRF inverse length scale tau"})
    permeability_map: str = field(
        default="piecewise", metadata={"help": "permeability map", "flag": "--map", "choices": PERMEABILITY_MAPS}
    )
    high: float = field(default=12.0, metadata={"help": "piecewise map: value where the field >= 0"})
    low: float = field(default=3.0, metadata={"help": "piecewise map: value where the field < 0"})
    sigma: float = field(default=1.0, metadata={"help": "lognormal map: a = exp(sigma * field)"})
    forcing: float = field(default=1.0, metadata={"help": "constant right-hand side f"})
    face_average: str = field(
        default="harmonic", metadata={"help": "face averaging", "flag": "--face", "choices": FACE_AVERAGES}
    )

    def __post_init__(self) -> None:
        """Refuse invalid parameters with :class:`~mano_pde.errors.UserInputError` (before any work is done)."""
        check_fields(self, DarcyConfig)  # a wrong type names the value and its type: "got '3' (str)"
        for name, low in (("n_samples", 1), ("seed", 0)):  # as TrainConfig's seed: "an int in [low, high]"
            if not low <= getattr(self, name) <= MAX_INT64:
                raise UserInputError(
                    f"{name} (--{name.replace('_', '-')}) must be an int in [{low}, 2**63 - 1] (the file records it "
                    f"as int64), got {getattr(self, name)}"
                )
        if self.resolution < 3:
            raise UserInputError(f"resolution must be an integer >= 3, got {self.resolution}")
        if self.permeability_map not in PERMEABILITY_MAPS:
            raise UserInputError(
                f"unknown permeability map {self.permeability_map!r}; choose one of {PERMEABILITY_MAPS}"
            )
        if self.face_average not in FACE_AVERAGES:
            raise UserInputError(f"unknown face average {self.face_average!r}; choose one of {FACE_AVERAGES}")
        for name in ("alpha", "tau", "high", "low"):
            v = getattr(self, name)
            if not v > 0 or v != v or v == float("inf"):
                raise UserInputError(f"{name} must be positive and finite, got {v}")
        for name in ("sigma", "forcing"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise UserInputError(f"{name} must be a finite number, got {v!r}")
        try:  # a spectrum that over- or underflows float64 (--alpha 1e300: every sample the same constant a)
            check_grf_parameters(self.alpha, self.tau)
        except ValueError as exc:
            raise UserInputError(str(exc)) from None

    def replace(self, **changes: Any) -> DarcyConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_attrs(self) -> dict[str, Any]:
        """The configuration as netCDF global attributes."""
        attrs = {
            "seed": self.seed,
            "seeding": "sample i: numpy.random.default_rng(numpy.random.SeedSequence(seed, spawn_key=(i,)))",
            "grf_alpha": self.alpha,
            "grf_tau": self.tau,
            "grf_covariance": "(-Laplacian + tau^2 I)^(-alpha), zero-Neumann, cosine KL expansion via idct2",
            "permeability_map": self.permeability_map,
            "forcing": self.forcing,
            "face_average": self.face_average,
        }
        if self.permeability_map == "piecewise":
            attrs.update(permeability_high=self.high, permeability_low=self.low)
        else:
            attrs.update(lognormal_sigma=self.sigma)
        return attrs


#: Named presets. ``fno-darcy`` is the FNO paper's benchmark (Li et al. 2020, §5.2): 421² grid,
#: α = 2, τ = 3, a ∈ {12, 3}, f = 1, arithmetic face means as in the reference MATLAB generator.
#: ``small`` is the quick default of the README and tests.
PRESETS: dict[str, DarcyConfig] = {
    "small": DarcyConfig(n_samples=128, resolution=129),
    "fno-darcy": DarcyConfig(n_samples=1024, resolution=421, face_average="arithmetic"),
}
DEFAULT_PRESET = "small"


def get_preset(name: str) -> DarcyConfig:
    """Look up a preset by name (clear error listing the known ones)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserInputError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}") from None
