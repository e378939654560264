"""The one device helper: ``"auto"`` picks CUDA when present, else the CPU; explicit requests are checked."""

from __future__ import annotations

import torch

from .errors import UserInputError

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; explicit requests are checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserInputError(f"device {device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise UserInputError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev
