"""Training: configuration, the resumable multi-resolution training loop, and run directories."""

from .checkpoint import Run, load_run, resolve_device
from .config import TrainConfig
from .trainer import train

__all__ = ["Run", "TrainConfig", "load_run", "resolve_device", "train"]
