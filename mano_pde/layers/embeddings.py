"""Positional embeddings on the data's grid: the true coordinates of the grid points, identical at every resolution.

The Darcy data of this package (and of the FNO benchmark) are *node* grids that include the boundary:
node ``i`` of an ``s``-point axis of the unit interval sits at ``x_i = i / (s - 1)``. neuralop's
:class:`~neuralop.layers.embeddings.GridEmbeddingND` uses the periodic convention ``x_i = i / s`` instead,
so the same physical node gets another coordinate on every grid (``0.970`` at 33 points, ``0.992`` at 129),
which shifts every model's input when it is evaluated zero-shot on a finer grid.

:class:`NodeGridEmbedding` appends the node coordinates: subsampling the embedding of a fine grid
``[::t, ::t]`` gives exactly the embedding of the coarse grid. It subclasses neuralop's embedding, so it
plugs into :class:`neuralop.models.FNO` (``positional_embedding=NodeGridEmbedding(...)``) as well as into
this package's transformer operators.

Data on other grid geometries (:mod:`mano_pde.grids`) get their own true coordinates with
``geometry="half-open"`` (``x_i = i / s``, neuraloperator's Darcy ``.pt`` files) or ``geometry="cell"``
(``x_i = (i + 1/2) / s``); the models take it as ``grid_geometry``, which ``mano-pde train`` sets from the
training file. Nested grids of one geometry again get exactly equal coordinates at their common points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from neuralop.layers.embeddings import GridEmbeddingND

from ..grids import check_geometry

__all__ = ["POSITIONAL_EMBEDDINGS", "NodeGridEmbedding", "make_positional_embedding"]

#: Positional embeddings selectable by name: ``"node"`` (this module: the data grid's true coordinates),
#: ``"grid"`` (neuralop's periodic grid ``i / s``).
POSITIONAL_EMBEDDINGS = ("node", "grid")


class NodeGridEmbedding(GridEmbeddingND):
    """Append the point coordinates of each axis as channels: ``x_i = a + (b - a) t_i`` with ``t_i`` the
    geometry's position on [0, 1] (node grids: ``t_i = i / (s - 1)``).

    Parameters
    ----------
    in_channels : int
        Channels of the input (the output has ``in_channels + dim``).
    dim : int, optional
        Number of spatial axes. Default 2.
    grid_boundaries : sequence of (float, float), optional
        ``[a, b]`` per axis: the coordinates of the first and last node. Default the unit square.
    geometry : {"node", "half-open", "cell"}, optional
        Where the points sit (:mod:`mano_pde.grids`): ``t_i = i / (s - 1)`` (default), ``i / s`` or
        ``(i + 1/2) / s``.

    Examples
    --------
    >>> import torch
    >>> emb = NodeGridEmbedding(1)
    >>> fine, coarse = emb(torch.zeros(1, 1, 129, 129)), emb(torch.zeros(1, 1, 33, 33))
    >>> bool(torch.equal(fine[..., ::4, ::4], coarse))
    True
    """

    def __init__(
        self,
        in_channels: int,
        dim: int = 2,
        grid_boundaries: Sequence[Sequence[float]] = ((0.0, 1.0), (0.0, 1.0)),
        geometry: str = "node",
    ) -> None:
        super().__init__(in_channels, dim, [list(b) for b in grid_boundaries])
        self.geometry = check_geometry(geometry, "geometry")

    def grid(self, spatial_dims: torch.Size, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
        """Node coordinates ``[1, 1, s_1, ..., s_n]`` per axis (cached for the last grid, like neuralop's)."""
        dims = tuple(int(s) for s in spatial_dims)
        if getattr(torch.compiler, "is_compiling", lambda: False)():  # torch >= 2.3
            # no cache under torch.compile: an attribute written inside a compiled forward recompiles it per grid
            return self._node_grid(dims, device, dtype)
        cached = self._grid is not None and self._res == dims
        if not cached or self._grid[0].device != torch.device(device) or self._grid[0].dtype != dtype:
            self._grid = self._node_grid(dims, device, dtype)
            self._res = dims
        return self._grid

    def _node_grid(self, dims: tuple[int, ...], device: str, dtype: torch.dtype) -> list[torch.Tensor]:
        axes = []
        for s, (a, b) in zip(dims, self.grid_boundaries, strict=True):
            # exact rationals in float64, then cast: equal values for equal points at any s
            if self.geometry == "node":
                t = torch.arange(s, dtype=torch.float64) / max(s - 1, 1)
            elif self.geometry == "half-open":
                t = torch.arange(s, dtype=torch.float64) / s
            else:  # cell centres (2i + 1) / (2s)
                t = (2 * torch.arange(s, dtype=torch.float64) + 1) / (2 * s)
            axes.append(a + (b - a) * t)
        mesh = torch.meshgrid(*axes, indexing="ij")
        return [m.to(device=device, dtype=dtype)[None, None] for m in mesh]


def make_positional_embedding(
    name: str | GridEmbeddingND | None, in_channels: int, geometry: str = "node"
) -> GridEmbeddingND | None:
    """Build a positional embedding by name (``"node"``, ``"grid"``), pass a module through, or ``None``.

    ``"node"`` is :class:`NodeGridEmbedding` with the data's grid ``geometry`` (its true coordinates; the name is
    historical: on node grids it is ``i / (s - 1)``). ``"grid"`` is neuralop's ``i / s`` whatever the geometry.
    """
    check_geometry(geometry, "grid_geometry")
    if name is None or isinstance(name, GridEmbeddingND):
        return name
    if name == "node":
        return NodeGridEmbedding(in_channels, geometry=geometry)
    if name == "grid":
        return GridEmbeddingND(in_channels=in_channels, dim=2, grid_boundaries=[[0.0, 1.0], [0.0, 1.0]])
    raise ValueError(
        f"positional_embedding must be one of {POSITIONAL_EMBEDDINGS}, a GridEmbeddingND or None, got {name!r}"
    )
