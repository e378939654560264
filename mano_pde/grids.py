"""Grid geometries of the unit interval: where the ``s`` points of a data file sit, and which grids nest.

A Darcy file stores ``s x s`` values on ``[0, 1]^2``; its global attribute ``grid_geometry`` says where they sit
(per axis; the same on both axes):

``node``
    ``x_i = i / (s - 1)``, ``i = 0 .. s-1``: nodes of ``[0, 1]`` including both boundaries (the files this package
    generates, and the FNO paper's ``.mat`` files). ``s_c`` nests in ``s`` when ``(s - 1) = r (s_c - 1)``:
    the coarse grid is ``[::r]`` (421 -> 211, 141, 106, 85, ...).
``half-open``
    ``x_i = i / s``: the ``(s + 1)``-node grid of ``[0, 1]`` with its last node dropped, i.e. the points of the
    half-open interval ``[0, 1)`` (neuraloperator's small Darcy ``.pt`` files, and neuralop's own
    ``GridEmbeddingND`` coordinates). ``s_c`` nests in ``s`` when ``s = r s_c``: the coarse grid is ``[::r]``
    (32 -> 16 -> 8).
``cell``
    ``x_i = (i + 1/2) / s``: cell centres of ``s`` equal cells; no point on the boundary (PDEBench). ``s_c``
    nests in ``s`` when ``s = r s_c`` with ``r`` odd: the coarse centres are ``[(r - 1)/2 :: r]`` (an even ``r``
    puts them between fine centres).

Pure numpy, no torch: the data layer, the models and the evaluation share these definitions. Tensor resampling
between grids of one geometry is :mod:`mano_pde.layers.grid_resample`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .errors import UserInputError

__all__ = [
    "GEOMETRIES",
    "MIN_POINTS",
    "GridGeometry",
    "check_geometry",
    "coordinates",
    "describe_geometry",
    "nesting",
    "reachable",
    "spacing_ratio",
]

#: The grid geometries, by the name stored in a file's ``grid_geometry`` attribute.
GEOMETRIES: dict[str, str] = {
    "node": "x_i = i/(s-1): nodes of [0,1] including both boundaries",
    "half-open": "x_i = i/s: nodes of [0,1) (the (s+1)-node grid of [0,1] without its last node)",
    "cell": "x_i = (i+1/2)/s: cell centres, no point on the boundary",
}


#: The smallest grid (points per direction) of any geometry: data files, training, prediction and evaluation.
MIN_POINTS = 3

#: The geometry names as a type (model constructors annotate ``grid_geometry`` with it).
GridGeometry = Literal["node", "half-open", "cell"]


def check_geometry(name: object, what: str = "grid geometry") -> str:
    """``name`` if it is one of :data:`GEOMETRIES`, else :class:`~mano_pde.errors.UserInputError` listing them."""
    if not isinstance(name, str) or name not in GEOMETRIES:
        listed = "; ".join(f"{k!r} ({v})" for k, v in GEOMETRIES.items())
        raise UserInputError(f"{what} must be one of {listed}; got {name!r}")
    return name


def coordinates(geometry: str, s: int) -> np.ndarray:
    """The ``s`` point coordinates (float64) of one axis of ``geometry`` on ``[0, 1]``.

    >>> coordinates("node", 5).tolist(), coordinates("half-open", 4).tolist(), coordinates("cell", 2).tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.5, 0.75], [0.25, 0.75])
    """
    check_geometry(geometry)
    s = int(s)
    if geometry == "node":
        return np.linspace(0.0, 1.0, s)  # what the schema has always stored
    if geometry == "half-open":
        return np.arange(s, dtype="f8") / s
    return (2 * np.arange(s, dtype="f8") + 1) / (2 * s)  # exact rationals: equal values for equal points at any s


def nesting(geometry: str, fine: int, coarse: int) -> tuple[int, int] | None:
    """``(stride, offset)`` such that points ``offset, offset + stride, ...`` of the ``fine`` grid are exactly
    the ``coarse`` grid, or ``None`` when the coarse grid's points are not fine-grid points.

    >>> nesting("node", 33, 17), nesting("node", 32, 16), nesting("half-open", 32, 16), nesting("cell", 27, 9)
    ((2, 0), None, (2, 0), (3, 1))
    """
    check_geometry(geometry)
    fine, coarse = int(fine), int(coarse)
    if coarse < 1 or coarse > fine:
        return None
    if coarse == fine:
        return 1, 0
    if geometry == "node":
        if coarse >= 2 and (fine - 1) % (coarse - 1) == 0:
            return (fine - 1) // (coarse - 1), 0
        return None
    if fine % coarse:
        return None
    r = fine // coarse
    if geometry == "half-open":
        return r, 0
    return (r, (r - 1) // 2) if r % 2 else None


def reachable(geometry: str, s: int, min_resolution: int | None = None) -> list[int]:
    """Grids nested in an ``s``-point grid of ``geometry`` (see :func:`nesting`), finest first.

    ``min_resolution`` defaults to 3 on every geometry: the smallest grid that training, prediction and the data
    files accept (on node grids a boundary node and one interior node per side).

    >>> reachable("node", 421)[:6], reachable("half-open", 32), reachable("cell", 27)
    ([421, 211, 141, 106, 85, 71], [32, 16, 8, 4], [27, 9, 3])
    """
    check_geometry(geometry)
    low = MIN_POINTS if min_resolution is None else int(min_resolution)
    return [c for c in range(int(s), 0, -1) if c >= low and nesting(geometry, s, c) is not None]


def spacing_ratio(geometry: str, size: int, reference: int) -> float:
    """How many ``size``-grid spacings one ``reference``-grid spacing spans: ``(size - 1)/(reference - 1)`` on
    node grids, ``size / reference`` on the others (their spacing is ``1/s``)."""
    check_geometry(geometry)
    if geometry == "node":
        return (size - 1) / (reference - 1)
    return size / reference


def describe_geometry(geometry: str, s: int) -> str:
    """One line for the ``grid`` attribute and ``mano-pde info``, e.g. ``"half-open 16 x 16 grid of [0,1)^2 …"``."""
    check_geometry(geometry)
    if geometry == "node":
        return f"node-based {s} x {s} grid of [0,1]^2 including the boundary, h = 1/{s - 1}"
    if geometry == "half-open":
        return (
            f"half-open {s} x {s} grid of [0,1)^2: x_i = i/{s}, the {s + 1}-node grid of [0,1]^2 without its last "
            f"row and column, h = 1/{s}"
        )
    return f"cell-centred {s} x {s} grid of [0,1]^2: x_i = (i + 1/2)/{s}, no point on the boundary, h = 1/{s}"
