"""Second-order finite-difference solver for steady Darcy flow.

Solves ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the boundary, on a node-based ``s × s``
grid that includes the boundary (``h = 1/(s-1)``, nodes ``x_j = j h``): the grid convention of the FNO
Darcy benchmark (Li et al., arXiv 2010.08895), where a 421² solution subsampled by ``[::r, ::r]`` is again
a node grid of the unit square.

The 5-point stencil uses face coefficients between neighbouring nodes, either the harmonic mean of the two
node values (default; the flux-continuous choice for discontinuous ``a``) or their arithmetic mean (what the
FNO reference MATLAB code used). The matrix of the ``(s-2)²`` interior unknowns is symmetric positive
definite and an M-matrix, so the discrete maximum principle holds.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = [
    "FACE_AVERAGES",
    "DEFAULT_PERMC_SPEC",
    "PERMC_SPECS",
    "PERMEABILITY_RANGE",
    "MAX_CONTRAST",
    "assemble_darcy",
    "solve_darcy",
    "check_permeability",
]

FaceAverage = Literal["harmonic", "arithmetic"]
FACE_AVERAGES: tuple[str, ...] = ("harmonic", "arithmetic")

#: SuperLU column ordering used by :func:`solve_darcy`. Chosen by measurement (``mano-pde benchmark
#: generate --orderings``, see BENCHMARKS.md): minimum degree on AᵀA+A suits this symmetric 5-point matrix
#: far better than the COLAMD default.
DEFAULT_PERMC_SPEC = "MMD_AT_PLUS_A"
#: Column orderings SuperLU accepts.
PERMC_SPECS: tuple[str, ...] = ("NATURAL", "MMD_ATA", "MMD_AT_PLUS_A", "COLAMD")
#: Permeability values the solver accepts: the harmonic face mean ``2ab/(a+b)`` forms ``a·b``, which under-
#: or overflows double precision outside this range (and the system becomes exactly singular).
PERMEABILITY_RANGE: tuple[float, float] = (1e-150, 1e150)
#: Largest accepted contrast ``max(a)/min(a)``: beyond it the 5-point system's condition number (about
#: contrast·(s-1)²) exceeds what double precision resolves, and the solution has no reliable digits.
MAX_CONTRAST = 1e12


def check_permeability(a: np.ndarray, name: str = "a") -> np.ndarray:
    """Validate a permeability field and return it as a float64 array.

    Raises
    ------
    TypeError
        If ``a`` is a masked array (its mask would be silently ignored).
    ValueError
        If ``a`` is not a square 2-D array of at least 3×3 points, or holds a non-finite or non-positive value.
    """
    _refuse_masked(a, f"permeability {name}")
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(
            f"permeability {name} must be a 2-D array [s, s], got shape {arr.shape}; "
            "solve one sample at a time (loop over the batch axis)"
        )
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(
            f"permeability {name} must be square (the solver's grid is s x s on the unit square), got shape {arr.shape}"
        )
    if arr.shape[0] < 3:
        raise ValueError(f"grid too small: s = {arr.shape[0]}, need s >= 3 (boundary plus at least one interior node)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"permeability {name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"permeability {name} has {bad} non-finite value(s) (NaN or inf); it must be finite")
    amin = float(arr.min())
    if amin <= 0.0:
        bad = int(np.count_nonzero(arr <= 0.0))
        raise ValueError(
            f"permeability {name} must be strictly positive, but {bad} value(s) are <= 0 (min {amin:g}); "
            "map a Gaussian field through a positive map such as exp() or the piecewise 12/3 map first"
        )
    return arr


def _refuse_masked(x: object, what: str) -> None:
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{what} is a masked array; the solver cannot honour a mask and would silently use the values under "
            "it. Pass a plain array: fill the masked points with physical values first (e.g. x.filled(value))"
        )


def _check_range(a: np.ndarray, name: str = "a") -> None:
    """Refuse permeability scales and contrasts that make the discrete system (numerically) singular."""
    amin, amax = float(a.min()), float(a.max())
    lo, hi = PERMEABILITY_RANGE
    if amin < lo or amax > hi:
        raise ValueError(
            f"permeability {name} is out of the solver's range [{lo:g}, {hi:g}] (min {amin:g}, max {amax:g}): the "
            "face coefficients under- or overflow double precision. Rescale: the solution of "
            "-div(c a grad u) = f is u/c, so solve with a/c (e.g. c = max(a)) and divide the result by c"
        )
    if amax / amin > MAX_CONTRAST:
        raise ValueError(
            f"permeability {name} has contrast max/min = {amax / amin:.3g} (min {amin:g}, max {amax:g}), above the "
            f"solver's limit {MAX_CONTRAST:g}: double precision cannot resolve the resulting system. Reduce the "
            "contrast (e.g. a smaller log-normal sigma or closer high/low values)"
        )


def _forcing(f: float | np.ndarray, s: int) -> np.ndarray:
    """Interior values of the forcing as a flat float64 array."""
    _refuse_masked(f, "forcing f")
    if np.ndim(f) == 0:
        fv = float(f)
        if not np.isfinite(fv):
            raise ValueError(f"forcing f must be finite, got {f}")
        return np.full((s - 2) * (s - 2), fv)
    farr = np.asarray(f, dtype=np.float64)
    if farr.shape != (s, s):
        raise ValueError(
            f"forcing f must be a scalar or an array of the permeability's shape {(s, s)}, got {farr.shape}"
        )
    if not np.all(np.isfinite(farr)):
        raise ValueError("forcing f has non-finite values; it must be finite")
    return np.ascontiguousarray(farr[1:-1, 1:-1]).ravel()


def _face_coefficients(a: np.ndarray, face: str) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients on the faces between x-neighbours ``[s, s-1]`` and y-neighbours ``[s-1, s]``."""
    if face == "harmonic":
        cx = 2.0 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:])
        cy = 2.0 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :])
    elif face == "arithmetic":
        cx = 0.5 * (a[:, :-1] + a[:, 1:])
        cy = 0.5 * (a[:-1, :] + a[1:, :])
    else:
        raise ValueError(f"unknown face average {face!r}; choose one of {FACE_AVERAGES}")
    return cx, cy


@functools.lru_cache(maxsize=8)
def _csc_pattern(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparsity pattern of the 5-point matrix on ``m × m`` interior nodes, computed once per grid size.

    Returns the CSC ``indptr`` and ``indices`` and the permutation that puts the stencil values (ordered as
    diagonal, east, west, north, south couplings, see :func:`assemble_darcy`) into CSC order. Assembly of a
    new permeability then costs one gather instead of a COO-to-CSC conversion.
    """
    idx = np.arange(m * m).reshape(m, m)
    ex_rows = idx[:, :-1].ravel()
    ny_rows = idx[:-1, :].ravel()
    rows = np.concatenate([idx.ravel(), ex_rows, ex_rows + 1, ny_rows, ny_rows + m])
    cols = np.concatenate([idx.ravel(), ex_rows + 1, ex_rows, ny_rows + m, ny_rows])
    order = np.lexsort((rows, cols))  # column-major, rows ascending within a column
    indptr = np.zeros(m * m + 1, dtype=np.int32)
    np.cumsum(np.bincount(cols, minlength=m * m), out=indptr[1:])
    indices = rows[order].astype(np.int32)
    for arr in (indptr, indices, order):
        arr.setflags(write=False)
    return indptr, indices, order


def assemble_darcy(
    a: np.ndarray, f: float | np.ndarray = 1.0, *, face: FaceAverage = "harmonic"
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Assemble the linear system of the interior unknowns.

    Parameters
    ----------
    a : numpy.ndarray
        Permeability ``[s, s]`` on the node grid (boundary included), finite and > 0.
    f : float or numpy.ndarray
        Forcing: a constant, or an ``[s, s]`` array (only interior values are used).
    face : {"harmonic", "arithmetic"}
        How the coefficient on the face between two nodes is averaged.

    Returns
    -------
    A : scipy.sparse.csc_matrix
        ``[(s-2)², (s-2)²]`` matrix (row-major ordering of interior nodes, ``y`` slowest), scaled by ``1/h²``.
    b : numpy.ndarray
        Right-hand side (the forcing at the interior nodes).
    """
    a = check_permeability(a)
    _check_range(a)
    s = a.shape[0]
    b = _forcing(f, s)
    cx, cy = _face_coefficients(a, face)
    m = s - 2
    inv_h2 = float((s - 1) ** 2)
    # Interior node (i, j) (i: y index, j: x index, both 1..s-2) couples to its four faces.
    cw = cx[1:-1, :-1]  # face between (i, j-1) and (i, j)
    ce = cx[1:-1, 1:]  # face between (i, j) and (i, j+1)
    cs = cy[:-1, 1:-1]  # face between (i-1, j) and (i, j)
    cn = cy[1:, 1:-1]  # face between (i, j) and (i+1, j)
    diag = (cw + ce + cs + cn).ravel()
    # Couplings between interior neighbours only; boundary neighbours are u = 0 and drop out.
    ex = -ce[:, :-1].ravel()
    ny = -cn[:-1, :].ravel()
    indptr, indices, order = _csc_pattern(m)
    vals = np.concatenate([diag, ex, ex, ny, ny])[order] * inv_h2
    A = sp.csc_matrix((vals, indices, indptr), shape=(m * m, m * m))
    return A, b


def solve_darcy(
    a: np.ndarray,
    f: float | np.ndarray = 1.0,
    *,
    face: FaceAverage = "harmonic",
    permc_spec: str = DEFAULT_PERMC_SPEC,
) -> np.ndarray:
    """Solve ``-∇·(a ∇u) = f`` on (0,1)² with ``u = 0`` on the boundary.

    Parameters
    ----------
    a : numpy.ndarray
        Permeability ``[s, s]`` on the node grid including the boundary (``s >= 3``), finite and > 0.
    f : float or numpy.ndarray
        Constant forcing (default 1, the benchmark's) or an ``[s, s]`` array.
    face : {"harmonic", "arithmetic"}
        Face averaging of ``a`` (see module docstring).
    permc_spec : str
        SuperLU column ordering, one of :data:`PERMC_SPECS` (see :data:`DEFAULT_PERMC_SPEC`).

    Returns
    -------
    numpy.ndarray
        float64 pressure ``[s, s]`` including the zero boundary.

    Raises
    ------
    TypeError
        If ``a`` or ``f`` is a masked array.
    ValueError
        For an invalid ``a`` (see :func:`check_permeability`), a permeability outside
        :data:`PERMEABILITY_RANGE` or with a contrast above :data:`MAX_CONTRAST`, an invalid ``f``, ``face``
        or ``permc_spec``.

    Examples
    --------
    >>> import numpy as np
    >>> u = solve_darcy(np.ones((33, 33)))
    >>> u.shape, float(u[0].max())
    ((33, 33), 0.0)
    """
    if permc_spec not in PERMC_SPECS:
        raise ValueError(f"unknown permc_spec {permc_spec!r}; choose one of {PERMC_SPECS}")
    A, b = assemble_darcy(a, f, face=face)
    s = np.shape(a)[0]
    u = np.zeros((s, s))
    try:
        lu = spla.splu(A, permc_spec=permc_spec)
    except RuntimeError as exc:  # "Factor is exactly singular": not reachable for inputs passing the checks
        raise ValueError(
            f"the Darcy system is singular ({exc}); the permeability's scale or contrast is out of range "
            f"(min {float(np.min(a)):g}, max {float(np.max(a)):g})"
        ) from exc
    u[1:-1, 1:-1] = lu.solve(b).reshape(s - 2, s - 2)
    return u
