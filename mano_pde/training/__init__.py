"""Training: configuration, the resumable multi-resolution training loop, and run directories.

The names load on first access (PEP 562), so that importing the torch-free :mod:`mano_pde.training.config`
(the command line's parser reads :class:`TrainConfig`'s fields) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_LAZY = {
    "resolve_device": "mano_pde.device",
    "TrainConfig": "mano_pde.training.config",
    "Run": "mano_pde.training.runs",
    "load_run": "mano_pde.training.runs",
    "train": "mano_pde.training.trainer",
}

__all__ = ["Run", "TrainConfig", "load_run", "resolve_device", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
