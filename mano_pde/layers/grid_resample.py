"""Resampling fields between grids of one geometry (:mod:`mano_pde.grids`): injection where nested, else
interpolation through the points' true positions.

Channel-first fields ``[..., H, W]`` (interpolation: ``[N, C, H, W]``). Per geometry:

``node`` (``x_i = i/(s-1)``)
    :func:`torch.nn.functional.interpolate` with ``align_corners=True``: corner points map onto corner points.
``half-open`` (``x_i = i/s``)
    The grid is extended by its missing last node at ``x = 1`` (value by linear extrapolation from the last two
    points: no assumption about the boundary condition), interpolated through the nodes of the extended grids
    (``align_corners=True``) and the extra node dropped again. So fine point ``j`` reads coarse position
    ``j s_c / s``, its true position.
``cell`` (``x_i = (i + 1/2)/s``)
    ``align_corners=False``, PyTorch's cell-centre convention; in the outer half cell the value is held constant.

Nested grids (:func:`mano_pde.grids.nesting`) are restricted by exact injection (every coarse point is a fine
point); node grids take exactly the code path of the package before geometries existed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..grids import check_geometry, nesting

__all__ = ["resample_grid", "subsample_grid"]


def subsample_grid(x: torch.Tensor, size: int | tuple[int, int], geometry: str = "node") -> torch.Tensor:
    """Exact injection of ``x [..., H, W]`` onto the nested ``size`` grid of the same geometry.

    Raises
    ------
    ValueError
        If the ``size`` grid is not nested in ``x``'s grid (:func:`mano_pde.grids.nesting`).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    picks = []
    for n, c in zip(x.shape[-2:], size, strict=True):
        nest = nesting(geometry, n, c)
        if nest is None:
            raise ValueError(f"a {n}-point {geometry} grid does not contain a {c}-point grid: no exact subsampling")
        picks.append(slice(nest[1], None, nest[0]))
    return x[..., picks[0], picks[1]]


def resample_grid(
    x: torch.Tensor, size: int | tuple[int, int], geometry: str = "node", mode: str = "bilinear"
) -> torch.Tensor:
    """``x [N, C, H, W]`` on the ``size`` grid of the same geometry: injection if nested, else interpolation.

    Parameters
    ----------
    x : torch.Tensor
        Fields ``[N, C, H, W]``.
    size : int or (int, int)
        Target grid.
    geometry : {"node", "half-open", "cell"}
        Where the points sit (:mod:`mano_pde.grids`); both grids share it.
    mode : {"bilinear", "bicubic"}
        Interpolation where the grids are not nested.
    """
    check_geometry(geometry)
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if all(nesting(geometry, n, c) is not None for n, c in zip((h, w), size, strict=True)):
        return subsample_grid(x, size, geometry).contiguous()
    if geometry == "node":
        return F.interpolate(x, size=size, mode=mode, align_corners=True)
    if geometry == "cell":
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    # half-open: add the dropped node x = 1 on both axes, interpolate through the nodes, drop it again
    x = torch.cat([x, 2 * x[..., -1:, :] - x[..., -2:-1, :]], dim=-2) if h > 1 else torch.cat([x, x], dim=-2)
    x = torch.cat([x, 2 * x[..., -1:] - x[..., -2:-1]], dim=-1) if w > 1 else torch.cat([x, x], dim=-1)
    y = F.interpolate(x, size=(size[0] + 1, size[1] + 1), mode=mode, align_corners=True)
    return y[..., : size[0], : size[1]].contiguous()
