"""Per-sample error metrics with neuraloperator's loss semantics, and grid resampling."""

from __future__ import annotations

import torch

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
    """Subsample a node grid ``[..., s, s]`` to ``resolution`` points per direction (``[::r, ::r]``); other grid
    geometries: :func:`mano_pde.layers.grid_resample.subsample_grid`."""
    from ..layers.grid_resample import subsample_grid

    return subsample_grid(x, resolution, "node")


def interpolate_nodes(x: torch.Tensor, resolution: int, mode: str = "bilinear") -> torch.Tensor:
    """Interpolate node-grid fields ``[N, C, s, s]`` to ``resolution`` points per direction.

    Node grids include the boundary, so corners map onto corners (``align_corners=True``): on a grid obtained
    by refining, every coarse node keeps its value exactly. Other grid geometries:
    :func:`mano_pde.layers.grid_resample.resample_grid`.
    """
    from ..layers.grid_resample import resample_grid

    return resample_grid(x, resolution, "node", mode)
