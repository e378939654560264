"""mano_pde: neural-operator surrogates of PDEs.

Darcy-flow data (:mod:`mano_pde.data`, built on the numpy/scipy :mod:`solvers` package), the Multipole
Attention Neural Operator for ``neuraloperator`` (:mod:`mano_pde.layers`, :mod:`mano_pde.models`), training
(:mod:`mano_pde.training`) and zero-shot resolution-transfer evaluation (:mod:`mano_pde.evaluation`).

Importing ``mano_pde`` is cheap: torch and neuraloperator are imported only when a model-side name is first
used, so data generation never pays for them. ``import mano_pde.models`` (or first access to
``mano_pde.MANO``, ``mano_pde.create_model``, …) registers MANO and the attention baselines with
neuraloperator's ``BaseModel`` registry.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("mano-pde")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

_LAZY = {
    "MANO": "mano_pde.models",
    "GlobalAttentionOperator": "mano_pde.models",
    "WindowAttentionOperator": "mano_pde.models",
    "TransformerOperator": "mano_pde.models",
    "create_model": "mano_pde.models",
    "list_models": "mano_pde.models",
    "count_parameters": "mano_pde.models",
    "save_model": "mano_pde.models",
    "load_model": "mano_pde.models",
    "MultipoleAttention": "mano_pde.layers",
    "TrainConfig": "mano_pde.training",
    "train": "mano_pde.training",
    "load_run": "mano_pde.training",
    "evaluate": "mano_pde.evaluation",
    "UserInputError": "mano_pde.errors",
}
_SUBMODULES = ("data", "layers", "models", "training", "evaluation", "benchmarks", "errors")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"mano_pde.{name}")
    raise AttributeError(f"module 'mano_pde' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
