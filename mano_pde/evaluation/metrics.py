"""Per-sample error metrics with neuraloperator's loss semantics, and grid resampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["per_sample_rel_l2", "per_sample_rel_h1", "interpolate_nodes", "subsample_nodes", "H1_MIN_POINTS"]

#: Points per direction the relative H1 error needs: neuraloperator's non-periodic ``FiniteDiff`` takes
#: second-order one-sided differences at the boundary, which read 3 neighbours of a boundary point.
H1_MIN_POINTS = 4


def per_sample_rel_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``‖pred − true‖₂ / ‖true‖₂`` over the grid, one value per sample (neuraloperator ``LpLoss(d=2, p=2)``)."""
    from neuralop.losses import LpLoss

    lp = LpLoss(d=2, p=2, reduction="sum")
    return torch.stack([lp.rel(pred[i : i + 1].double(), true[i : i + 1].double()) for i in range(pred.shape[0])])


def per_sample_rel_h1(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Relative H1 error per sample (neuraloperator ``H1Loss(d=2)``, non-periodic finite differences).

    Raises
    ------
    ValueError
        A grid with fewer than :data:`H1_MIN_POINTS` points per direction (the boundary differences need them;
        neuraloperator itself fails there with an ``IndexError``).
    """
    from neuralop.losses import H1Loss

    if min(pred.shape[-2:]) < H1_MIN_POINTS:
        raise ValueError(
            f"the relative H1 error needs at least {H1_MIN_POINTS} points per direction (one-sided finite "
            f"differences at the boundary), got a {pred.shape[-2]}x{pred.shape[-1]} grid"
        )

    h1 = H1Loss(d=2, reduction="sum", periodic_in_x=False, periodic_in_y=False)
    return torch.stack([h1.rel(pred[i : i + 1].double(), true[i : i + 1].double()) for i in range(pred.shape[0])])


def subsample_nodes(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Subsample a node grid ``[..., s, s]`` to ``resolution`` points per direction (``[::r, ::r]``)."""
    s = x.shape[-1]
    if (s - 1) % (resolution - 1):
        raise ValueError(f"a {s}-point grid cannot be subsampled to {resolution} points: (s-1)/(s_c-1) not an integer")
    r = (s - 1) // (resolution - 1)
    return x[..., ::r, ::r]


def interpolate_nodes(x: torch.Tensor, resolution: int, mode: str = "bilinear") -> torch.Tensor:
    """Interpolate node-grid fields ``[N, C, s, s]`` to ``resolution`` points per direction.

    Node grids include the boundary, so corners map onto corners (``align_corners=True``): on a grid obtained
    by refining, every coarse node keeps its value exactly.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    return F.interpolate(x, size=(resolution, resolution), mode=mode, align_corners=True)
