"""Deciding the grid geometry (:mod:`mano_pde.grids`) of a source that stores no coordinates, from its pressure.

The Darcy problems of these sources have ``u = 0`` on the boundary of ``[0, 1]^2``. Where the boundary lies
relative to the grid shows in the mean ``|u|`` over samples, ``m[i, j]``:

* an edge row/column on the boundary has ``m ≈ 0``: its mean is below :data:`ZERO_RATIO` times that of the
  line next to it (a point one spacing inside has ``|u|`` of order ``h``);
* the profile of ``m`` along each axis is symmetric about the centre of the domain, which sits at index
  ``(s - 1)/2`` on node and cell grids and at index ``s/2`` on half-open grids (``x_i = i/s``);
* on a cell-centred grid no point is on the boundary: the edge lines hold about a third of their neighbours'
  mean (half a spacing vs one and a half spacings from the boundary), between :data:`CELL_RATIO` bounds.

Decision (:func:`detect_grid`): all four edges zero -> ``node``; only the first row and first column zero ->
``half-open``; each is ``high`` confidence when the profile is also symmetric about that geometry's centre
(asymmetry below :data:`SYMMETRY_TOLERANCE` of the mean), ``medium`` when only the edges decide it (a few samples
of a random field are rarely symmetric to 10 %; neuraloperator's 1,000 are to 1 %). No edge zero with the edge
ratios of a cell grid -> ``cell``, ``medium`` (``low`` without symmetry): a non-zero edge is weaker evidence than a
zero one. Anything else is undecidable and the caller assumes ``node``, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CELL_RATIO", "DETECT_SAMPLES", "SYMMETRY_TOLERANCE", "ZERO_RATIO", "GridDecision", "detect_grid"]

#: An edge line counts as zero when its mean |u| is below this fraction of the next line's.
ZERO_RATIO = 0.1
#: Edge / next-line ratios of a cell-centred grid (about 1/3 for a field vanishing half a spacing outside).
CELL_RATIO = (0.15, 0.45)
#: Largest mean |m(i) - m(mirror i)| / mean m for a profile to count as symmetric about a centre.
SYMMETRY_TOLERANCE = 0.1
#: Samples (the first ones) the decision reads.
DETECT_SAMPLES = 256


@dataclass(frozen=True)
class GridDecision:
    """The grid geometry of an import and why.

    Attributes
    ----------
    geometry : str
        ``"node"``, ``"half-open"`` or ``"cell"``.
    confidence : str
        ``"certain"`` (the source's coordinates), ``"high"`` (edges and symmetry agree), ``"medium"`` (edges
        only; cell grids: non-zero edges and symmetry), ``"low"`` (cell grid by its edges alone), ``"assumed"``
        (the data did not decide it), or ``"given"`` (``--grid``).
    evidence : str
        What was measured, in words (stored as the attribute ``grid_detection``).
    """

    geometry: str
    confidence: str
    evidence: str


def _asymmetry(profile: np.ndarray, centre_at_half: bool) -> float:
    """Mean |p(i) - p(mirror i)| / mean p, mirrored about index (s-1)/2, or s/2 (``centre_at_half``)."""
    mean = float(profile.mean())
    if mean == 0:
        return float("inf")
    if centre_at_half:
        p = profile[1:]  # pairs (i, s - i), i = 1 .. s-1; point 0 is on the boundary
        return float(np.abs(p - p[::-1]).mean()) / mean
    return float(np.abs(profile - profile[::-1]).mean()) / mean


def detect_grid(u: np.ndarray) -> GridDecision:
    """Decide the grid geometry from pressure samples ``u [n, s, s]`` (mano_pde layout), see the module docstring.

    Data that do not decide it give ``GridDecision("node", "assumed", <why>)``: the caller warns.
    """
    m = np.abs(np.asarray(u, dtype="f8")).mean(axis=0)
    s = m.shape[-1]
    if s < 4 or not np.isfinite(m).all() or float(m.mean()) == 0.0:
        if s < 4:
            why = f"a {s}-point grid is too small to tell"
        elif not np.isfinite(m).all():
            why = "u holds NaN or infinite values in the samples read"
        else:
            why = "u = 0 everywhere in the samples read"
        return _assumed(why)
    lines = {  # edge: (its mean |u|, the next line's)
        "first row": (m[0].mean(), m[1].mean()),
        "last row": (m[-1].mean(), m[-2].mean()),
        "first column": (m[:, 0].mean(), m[:, 1].mean()),
        "last column": (m[:, -1].mean(), m[:, -2].mean()),
    }
    ratio = {k: (float(e / n) if n > 0 else float("inf") if e > 0 else 0.0) for k, (e, n) in lines.items()}
    zero = {k for k, r in ratio.items() if r < ZERO_RATIO}
    profiles = (m.mean(axis=1), m.mean(axis=0))  # along y (rows) and along x (columns)
    asym_node = max(_asymmetry(p, False) for p in profiles)
    asym_half = max(_asymmetry(p, True) for p in profiles)
    edges = "mean |u| on each edge / on the line next to it: " + ", ".join(f"{k} {r:.3g}" for k, r in ratio.items())
    sym = f"asymmetry of the mean |u| profile about index (s-1)/2: {asym_node:.3g}, about s/2: {asym_half:.3g}"
    if zero == set(lines):
        confident = asym_node < SYMMETRY_TOLERANCE
        return GridDecision(
            "node",
            "high" if confident else "medium",
            f"u = 0 on all four edges ({edges}): the boundary is on the first and last rows and columns; {sym}"
            + ("" if confident else " (not symmetric: decided by the edges alone)"),
        )
    if zero == {"first row", "first column"}:
        confident = asym_half < SYMMETRY_TOLERANCE
        return GridDecision(
            "half-open",
            "high" if confident else "medium",
            f"u = 0 on the first row and column only ({edges}): the boundary x = 1 is one spacing past the last "
            f"row and column; {sym}" + ("" if confident else " (no clear symmetry about s/2: decided by the edges)"),
        )
    if not zero and all(CELL_RATIO[0] <= r <= CELL_RATIO[1] for r in ratio.values()):
        confident = asym_node < SYMMETRY_TOLERANCE
        return GridDecision(
            "cell",
            "medium" if confident else "low",
            f"u vanishes on no edge but each edge holds about a third of the next line ({edges}), as at cell "
            f"centres half a spacing from a u = 0 boundary; {sym}" + ("" if confident else " (not symmetric)"),
        )
    return _assumed(f"the zero edges and symmetry of u fit no known geometry ({edges}; {sym})")


def _assumed(why: str) -> GridDecision:
    return GridDecision("node", "assumed", f"not decidable from the data ({why}); assumed a node grid x_i = i/(s-1)")
