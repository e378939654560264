"""Experiments: one declarative spec (data, runs, evaluation, targets) and one runner for it.

``mano-pde demo``, ``examples/03_zero_shot_resolution.py`` and ``mano-pde benchmark darcy`` are specs run by
:func:`run_experiment`; the study's specs ship as TOML files (:func:`builtin_specs`). Importing this package loads
neither torch nor xarray.
"""

from __future__ import annotations

from .runner import PlannedRun, plan_runs, run_experiment, run_status
from .spec import ArmSpec, DataSpec, EvalSpec, ExperimentSpec, ModelSpec, TargetSpec, builtin_specs, load_spec

__all__ = [
    "ArmSpec",
    "DataSpec",
    "EvalSpec",
    "ExperimentSpec",
    "ModelSpec",
    "PlannedRun",
    "TargetSpec",
    "builtin_specs",
    "load_spec",
    "plan_runs",
    "run_experiment",
    "run_status",
]
