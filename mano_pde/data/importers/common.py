"""What the Darcy importers share: the opened-source record, shape/grid/value checks, HDF5 helpers and the
provenance attributes every reader records.

Imports none of the format modules (nor the package): they import this one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import DarcyDataError

#: One logger for the whole package: records keep the name of the former single module ``importers``.
log = logging.getLogger(__package__)

#: Supported source formats: name → description (the name is stored as ``source_format``).
FORMATS: dict[str, str] = {
    "fno-mat-v5": "FNO-paper MATLAB v5 .mat file (variables coeff, sol)",
    "fno-mat-v7.3": "FNO-paper MATLAB v7.3 .mat file (HDF5; variables coeff, sol)",
    "neuralop-pt": "neuraloperator darcy_{train,test}_{res}.pt (torch.save dict with tensors x, y)",
    "pdebench-hdf5": "PDEBench 2D_DarcyFlow_*.hdf5 (datasets nu, tensor, x-coordinate, y-coordinate; attribute beta)",
}

_REFERENCES = {
    "fno": "Li et al., Fourier Neural Operator for Parametric Partial Differential Equations, arXiv:2010.08895",
    "neuralop": "neuraloperator Darcy-Flow data, https://zenodo.org/records/12784353 (neuraloperator library)",
    "pdebench": "Takamoto et al., PDEBench: An Extensive Benchmark for Scientific Machine Learning, "
    "NeurIPS 2022 Datasets and Benchmarks, arXiv:2210.07182; data doi:10.18419/darus-2986",
}


# --------------------------------------------------------------------------------------------- sources
@dataclass
class _Source:
    """An opened source: its size, a chunk reader returning ``(a, u)`` in mano_pde layout, and metadata."""

    n: int
    s: int
    read: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
    attrs: dict[str, Any] = field(default_factory=dict)
    coords: dict[str, np.ndarray] | None = None


#: A reader: ``(path, exit stack for open files, high, low) -> _Source``; one per format in the registry.
_Opener = Callable[[Path, contextlib.ExitStack, float, float], _Source]


def _source_attrs(
    fmt: str,
    *,
    variables: str,
    names: tuple[str, str],
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    dtypes: tuple[str, str],
    references: str,
    grid: str,
    axis_mapping: str,
    extra: dict[str, Any] | None = None,
    forcing: float | None = None,
    forcing_note: str | None = None,
    import_note: str | None = None,
) -> dict[str, Any]:
    """The provenance attributes every reader records, in the order they are written to the output.

    Parameters
    ----------
    fmt : str
        The source format (a key of :data:`FORMATS`), stored as ``source_format``.
    variables : str
        All variables of the source with their shapes and types (``source_variables``).
    names : (str, str)
        The source variables holding the permeability and the pressure (``source_variable_a/u``).
    shapes : (tuple, tuple)
        Their shapes as stored in the source (``source_shape_a/u``, written ``[N, s, s]``).
    dtypes : (str, str)
        Their element types as stored in the source (``source_dtype_a/u``).
    references : str
        The dataset's citation (``references``).
    grid, axis_mapping : str
        How the source grid and array axes map to the mano_pde layout (``grid``: the reader's note; the importer
        prepends the decided geometry, see :func:`mano_pde.data.importers.import_darcy`).
    extra : dict, optional
        Format-specific attributes, placed right after the dtypes (e.g. ``source_header``, ``source_layout``).
    forcing, forcing_note, import_note : optional
        Recorded only when given (a reader that derives them later adds them itself).

    Returns
    -------
    dict
        The attributes, ready for the reader to extend.
    """
    attrs: dict[str, Any] = {
        "source_format": fmt,
        "source_variables": variables,
        "source_variable_a": names[0],
        "source_variable_u": names[1],
        "source_shape_a": _shape(shapes[0]),
        "source_shape_u": _shape(shapes[1]),
        "source_dtype_a": dtypes[0],
        "source_dtype_u": dtypes[1],
        **(extra or {}),
        "references": references,
    }
    if forcing is not None:
        attrs["forcing"] = forcing
    if forcing_note is not None:
        attrs["forcing_note"] = forcing_note
    attrs["grid"] = grid
    attrs["axis_mapping"] = axis_mapping
    if import_note is not None:
        attrs["import_note"] = import_note
    return attrs


# --------------------------------------------------------------------------------------------- checks
def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(n)) for n in shape) + "]"


def _check_grid(
    path: Path, names: tuple[str, str], a_shape: tuple[int, ...], u_shape: tuple[int, ...], layout: str
) -> tuple[int, int]:
    """Validate ``[N, s, s]`` shapes (already in mano_pde layout); return ``(N, s)``."""
    na, nu = names
    if len(a_shape) != 3:
        raise DarcyDataError(
            f"{path}: {na} has shape {_shape(a_shape)}{layout}, expected [N, s, s] (samples, then a square grid)"
        )
    n, sy, sx = a_shape
    if sy != sx:
        raise DarcyDataError(
            f"{path}: {na} has shape {_shape(a_shape)}{layout}: a non-square {sy} x {sx} grid. mano_pde stores "
            "square s x s grids of [0,1]^2; crop or resample the source to a square grid first"
        )
    if tuple(u_shape) != tuple(a_shape):
        raise DarcyDataError(
            f"{path}: {na} has shape {_shape(a_shape)} but {nu} has shape {_shape(u_shape)}{layout}; the "
            "permeability and the pressure must hold the same samples on the same grid"
        )
    if n < 1 or sx < 3:
        raise DarcyDataError(
            f"{path}: {na} has shape {_shape(a_shape)}: no samples or a grid of fewer than 3 points per direction "
            "(at least the boundary and one interior node are needed)"
        )
    return int(n), int(sx)


def _ring_max_abs(u: Any, axes: tuple[int, int]) -> float:
    """max |u| on the outer ring of the grid; ``axes`` are the two grid axes of ``u`` (an array or h5 dataset)."""
    out = 0.0
    for axis in axes:
        for k in (0, -1):
            idx = [slice(None)] * 3
            idx[axis] = k
            out = max(out, float(np.max(np.abs(np.asarray(u[tuple(idx)])))))
    return out


def _no_coords_attrs(
    fmt: str, u: Any, u_axes: tuple[int, int], *, grid_note: str, forcing_note: str, **fields: Any
) -> dict[str, Any]:
    """:func:`_source_attrs` of a file that stores neither coordinates nor the forcing (the FNO Darcy convention).

    Records ``grid_note`` (why the geometry is decided from the data; the importer prepends the geometry it
    decided, :mod:`.grid_detection`) and the assumed forcing (``f = 1``, ``forcing_note``), then
    ``source_u_boundary_max_abs``: the largest ``|u|`` on the grid's outer ring (``u_axes`` of ``u``), 0 on a
    node grid of a Dirichlet problem. ``fields`` are the other :func:`_source_attrs` keywords.
    """
    attrs = _source_attrs(fmt, forcing=1.0, forcing_note=forcing_note, grid=grid_note, **fields)
    attrs["source_u_boundary_max_abs"] = _ring_max_abs(u, u_axes)
    return attrs


def _mask_to_permeability(x: np.ndarray, high: float, low: float) -> np.ndarray:
    return np.where(x.astype(bool), high, low)


def _check_values(path: Path, a: np.ndarray, u: np.ndarray, start: int, names: tuple[str, str]) -> None:
    """Refuse non-finite values and non-positive permeability, naming the first bad sample."""
    for arr, name in ((a, names[0]), (u, names[1])):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = start + int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
            raise DarcyDataError(
                f"{path}: {name} of sample {i} holds NaN or infinite values: the source is corrupted or holds a "
                "failed solve; remove such samples from the source before importing"
            )
    bad = a <= 0
    if bad.any():
        i = start + int(np.flatnonzero(bad.reshape(len(a), -1).any(axis=1))[0])
        raise DarcyDataError(
            f"{path}: {names[0]} of sample {i} is not positive (min {float(a[i - start].min()):g}); Darcy "
            "permeability must be > 0. If the source stores a 0/1 mask in another form, map it to permeability "
            "values before importing"
        )


# --------------------------------------------------------------------------------------------- HDF5 values
def _h5_dataset(path: Path, f: Any, name: str, what: str) -> Any:
    import h5py

    obj = f.get(name)
    if obj is None or not isinstance(obj, h5py.Dataset):
        expected = (
            "FNO .mat files hold coeff and sol"
            if name in ("coeff", "sol")
            else "PDEBench Darcy files hold nu, tensor, x-coordinate and y-coordinate"
        )
        raise DarcyDataError(f"{path}: no dataset {name!r} ({what}); found {sorted(f.keys())}. {expected}")
    if not (np.issubdtype(obj.dtype, np.number) or obj.dtype == bool):
        raise DarcyDataError(f"{path}: dataset {name!r} has dtype {obj.dtype}, expected numbers")
    return obj


def _plain(v: Any) -> Any:
    """An HDF5 attribute value as a netCDF-friendly number or string."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (int, float, str)):
        return v
    return _attr_str(v)


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, np.ndarray) and v.dtype.kind == "S":
        return b"".join(v.ravel().tolist()).decode("latin-1")
    return str(v)
