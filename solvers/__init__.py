"""Numerical PDE solvers and random fields (numpy + scipy only; importing this package never imports torch).

Public API
----------
- :func:`sample_grf`, :func:`grf_spectrum`: Gaussian random fields ``N(0, (-Δ + τ² I)^(-α))``;
  :func:`check_grf_parameters`: the ``α``/``τ`` whose field float64 can compute.
- :func:`piecewise_constant_map`, :func:`lognormal_map`: permeability maps.
- :func:`solve_darcy`, :func:`assemble_darcy`: finite-difference Darcy solver.
"""

from .darcy import (
    DEFAULT_PERMC_SPEC,
    FACE_AVERAGES,
    assemble_darcy,
    check_permeability,
    solve_darcy,
)
from .random_fields import (
    GRF_SCALE_RANGE,
    PERMEABILITY_MAPS,
    check_grf_parameters,
    grf_spectrum,
    lognormal_map,
    piecewise_constant_map,
    sample_grf,
)

__all__ = [
    "DEFAULT_PERMC_SPEC",
    "FACE_AVERAGES",
    "GRF_SCALE_RANGE",
    "PERMEABILITY_MAPS",
    "assemble_darcy",
    "check_grf_parameters",
    "check_permeability",
    "grf_spectrum",
    "lognormal_map",
    "piecewise_constant_map",
    "sample_grf",
    "solve_darcy",
]
