"""Training: configuration, the resumable multi-resolution training loop, and run directories."""

from ..device import resolve_device
from .config import TrainConfig
from .runs import Run, load_run
from .trainer import train

__all__ = ["Run", "TrainConfig", "load_run", "resolve_device", "train"]
