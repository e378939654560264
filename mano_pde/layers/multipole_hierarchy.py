"""The grid hierarchy of multipole attention: how many levels, their grid sizes, and reference-grid geometry.

Pure functions of grid sizes (plus :func:`restrict_to_nodes` / :func:`restrict_to_grid`, tensor restrictions)
used by :class:`~mano_pde.layers.multipole_attention.MultipoleAttention`; its module docstring describes the
algorithm they serve. Reference-grid geometry follows the data's grid geometry (:mod:`mano_pde.grids`).
Level ``l + 1`` of an ``H_l x W_l`` grid is ``ceil(H_l / r) x ceil(W_l / r)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..grids import check_geometry, spacing_ratio
from .grid_resample import resample_grid

__all__ = [
    "check_reference_grid",
    "log_levels",
    "multipole_level_shapes",
    "prolong_to_grid",
    "reference_window",
    "restrict_to_grid",
    "restrict_to_nodes",
]


def log_levels(size: int, factor: int) -> int:
    """The authors' level count ``floor(log_r(size))`` (at least 1), in exact integer arithmetic.

    The authors compute ``int(math.log(image_size, r))``; the integer loop gives the same value without
    floating-point rounding at exact powers.

    >>> log_levels(64, 2), log_levels(33, 2), log_levels(64, 4), log_levels(3, 4)
    (6, 5, 3, 1)
    """
    if size < 1 or factor < 2:
        raise ValueError(f"need size >= 1 and factor >= 2, got size={size}, factor={factor}")
    levels, power = 0, factor
    while power <= size:
        levels, power = levels + 1, power * factor
    return max(1, levels)


def multipole_level_shapes(
    height: int, width: int, window_size: int, factor: int, n_levels: int | None = None
) -> list[tuple[int, int]]:
    """Grid sizes of the multipole hierarchy for an ``height x width`` input.

    Level 0 is the input grid; level ``l + 1`` is ``ceil(H_l / r) x ceil(W_l / r)``. With ``n_levels``
    the hierarchy has that many levels (the authors' rule gives ``n_levels = floor(log_r N)``, see
    :func:`log_levels`); without it, it stops at the first level that fits in one
    ``window_size x window_size`` window (``level_rule="window"``, this package's departure).

    Parameters
    ----------
    height, width : int
        Input grid size.
    window_size : int
        Window side ``k``.
    factor : int
        Down-sampling factor ``r >= 2``.
    n_levels : int, optional
        Number of levels (>= 1).

    Returns
    -------
    list of (int, int)
        ``[(H_0, W_0), (H_1, W_1), ...]``; its length is the number of levels.

    Examples
    --------
    >>> multipole_level_shapes(64, 96, 8, 2)
    [(64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]
    >>> multipole_level_shapes(33, 33, 8, 2, n_levels=log_levels(33, 2))
    [(33, 33), (17, 17), (9, 9), (5, 5), (3, 3)]
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid must be at least 1 x 1, got {height} x {width}")
    if factor < 2:
        raise ValueError(f"factor must be >= 2, got {factor}")
    if n_levels is not None and n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    shapes = [(height, width)]
    while (len(shapes) < n_levels) if n_levels is not None else (height > window_size or width > window_size):
        height, width = -(-height // factor), -(-width // factor)
        shapes.append((height, width))
    return shapes


def restrict_to_nodes(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Restrict a channels-last node grid ``[B, H, W, C]`` to ``size`` nodes of the same square.

    Node injection ``x[:, ::t_h, ::t_w]`` where ``(H - 1) / (size - 1)`` is an integer on both axes (the
    coarse nodes are fine nodes), bilinear interpolation through the nodes (``align_corners=True``, the
    prolongation's convention) otherwise.
    """
    h, w = x.shape[1], x.shape[2]
    if (h, w) == tuple(size):
        return x
    th, tw = (h - 1) // max(size[0] - 1, 1), (w - 1) // max(size[1] - 1, 1)
    if (size[0] - 1) * th == h - 1 and (size[1] - 1) * tw == w - 1 and th >= 1 and tw >= 1:
        return x[:, ::th, ::tw].contiguous()
    y = F.interpolate(x.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=True)
    return y.permute(0, 2, 3, 1).contiguous()


def restrict_to_grid(x: torch.Tensor, size: tuple[int, int], geometry: str = "node") -> torch.Tensor:
    """Restrict a channels-last field ``[B, H, W, C]`` to the ``size`` grid of the same ``geometry``.

    Exact injection where the ``size`` grid is nested in the input's (:func:`mano_pde.grids.nesting`: node grids
    with ``(H - 1) = t (H_r - 1)``, half-open grids with ``H = t H_r``, cell grids with ``H = t H_r``, ``t`` odd),
    interpolation through the points' true positions otherwise
    (:func:`~mano_pde.layers.grid_resample.resample_grid`). Node grids: :func:`restrict_to_nodes`, unchanged.
    """
    if check_geometry(geometry) == "node":
        return restrict_to_nodes(x, size)
    if (x.shape[1], x.shape[2]) == tuple(size):
        return x
    return resample_grid(x.permute(0, 3, 1, 2), tuple(size), geometry).permute(0, 2, 3, 1).contiguous()


def prolong_to_grid(x: torch.Tensor, size: tuple[int, int], geometry: str = "node") -> torch.Tensor:
    """Interpolate a channel-first field ``[B, C, h, w]`` to the finer ``size`` grid of the same ``geometry``
    (bilinear through the true positions; node grids: ``align_corners=True``, as always)."""
    if check_geometry(geometry) == "node":
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
    return resample_grid(x, tuple(size), geometry)


def check_reference_grid(grid: Sequence[int] | int | None, name: str = "reference_grid") -> tuple[int, int] | None:
    """Validate a grid option (``None``, ``s`` or ``(H, W)``, each >= 2) and return it as ``(H, W)``."""
    if grid is None:
        return None
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    try:
        pair = tuple(int(g) for g in grid)
        ok = len(pair) == 2 and all(g >= 2 and g == v for g, v in zip(pair, grid, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be None, an int >= 2 or a pair (H, W) of ints >= 2 (the training grid), got {grid!r}"
        )
    return pair


def reference_window(window_size: int, size: int, reference: int, geometry: str = "node") -> int:
    """Window side on a ``size``-point axis that covers the physical extent of ``window_size`` points on a
    ``reference``-point axis of the same domain: ``round(w (size - 1) / (reference - 1))`` on node grids,
    ``round(w size / reference)`` on half-open and cell grids (spacing ``1/s``).

    >>> reference_window(8, 129, 33), reference_window(8, 85, 43), reference_window(8, 33, 33)
    (32, 16, 8)
    >>> reference_window(8, 32, 16, "half-open"), reference_window(8, 48, 16, "cell")
    (16, 24)
    """
    if check_geometry(geometry) == "node":
        return max(window_size, round(window_size * (size - 1) / (reference - 1)))
    return max(window_size, round(window_size * spacing_ratio(geometry, size, reference)))
