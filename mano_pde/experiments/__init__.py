"""Experiments: one declarative spec (data, runs, evaluation, targets) and one runner for it.

``mano-pde demo``, ``examples/03_zero_shot_resolution.py`` and ``mano-pde benchmark darcy`` are specs run by
:func:`run_experiment`; the study's specs ship as TOML files (:func:`builtin_specs`). Importing this package loads
neither torch nor xarray.
"""

from __future__ import annotations

from . import runner, spec
from .runner import *  # noqa: F403 -- the names of runner.__all__
from .spec import *  # noqa: F403 -- the names of spec.__all__

__all__ = [*spec.__all__, *runner.__all__]
