"""Open Darcy files, validate them, and view them at coarser resolutions.

A file generated at ``s`` points per direction serves every grid obtained by subsampling
``[::r, ::r]`` with ``r`` dividing ``s - 1``: ``s_c = (s - 1)/r + 1`` (the FNO convention: 421 → 211, 141,
106, 85, 71, 61, 43, …). Views are lazy (``xarray`` ``isel`` on the netCDF backend): nothing is read until
values are used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from .schema import COMPLETE_ATTR, SCHEMA, DarcyDataError

__all__ = ["open_darcy", "load_arrays", "same_sample_stream", "reachable_resolutions", "subsample_factor", "describe"]

_VARS = ("a", "u")


def reachable_resolutions(resolution: int, min_resolution: int = 3) -> list[int]:
    """Grids reachable from a node grid of ``resolution`` points by subsampling, finest first.

    >>> reachable_resolutions(421)[:6]
    [421, 211, 141, 106, 85, 71]
    """
    n = int(resolution) - 1
    if n < 1:
        return [int(resolution)]
    return [n // r + 1 for r in range(1, n + 1) if n % r == 0 and n // r + 1 >= min_resolution]


def subsample_factor(resolution: int, target: int) -> int:
    """The stride ``r`` with ``(resolution - 1)/r + 1 == target``.

    Raises
    ------
    DarcyDataError
        If ``target`` is not reachable; the message lists the reachable grids.
    """
    target = int(target)
    if target >= 2 and target <= resolution and (resolution - 1) % (target - 1) == 0:
        return (resolution - 1) // (target - 1)
    reach = reachable_resolutions(resolution)
    raise DarcyDataError(
        f"resolution {target} is not reachable from a {resolution}x{resolution} file: subsampling gives "
        f"s_c = (s - 1)/r + 1, i.e. one of {reach}. Choose one of these, or generate data at a resolution "
        f"s with (s - 1) divisible by {target - 1 if target > 1 else 'the target minus one'}"
    )


def open_darcy(path: str | os.PathLike, resolution: int | None = None, *, chunks: dict | None = None) -> xr.Dataset:
    """Open a mano_pde Darcy file, optionally viewed at a coarser reachable resolution.

    Parameters
    ----------
    path : path-like
        A file written by ``mano-pde generate`` or ``mano-pde import``.
    resolution : int, optional
        Grid points per direction of the view (default: the file's own). Must be reachable, see
        :func:`reachable_resolutions`.
    chunks : dict, optional
        Passed to :func:`xarray.open_dataset` (dask-backed arrays).

    Returns
    -------
    xarray.Dataset
        Lazy dataset with ``a`` and ``u`` ``(sample, y, x)``. Its attributes gain ``view_resolution`` and
        ``subsample_factor``; ``resolution`` stays the file's native one.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DarcyDataError
        If the file is truncated, not netCDF, lacks ``a``/``u``, is incomplete, or the resolution is unreachable.
    """
    path = Path(path)
    if not path.exists():
        hint = ""
        partial = path.with_name(path.name + ".parts")
        if partial.exists():
            hint = f" (an unfinished generation run exists at {partial}: rerun the same generate command to finish it)"
        raise FileNotFoundError(f"no Darcy data file at {path}{hint}")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks)
    except Exception as exc:  # netCDF4/HDF5 raise OSError, ValueError, RuntimeError variants
        raise DarcyDataError(
            f"cannot read {path} as netCDF4: {exc}. The file is truncated, corrupted or not a netCDF file; "
            "regenerate it with `mano-pde generate` or convert the source with `mano-pde import`"
        ) from exc
    try:
        _validate(ds, path)
    except Exception:
        ds.close()
        raise
    native = int(ds.sizes["x"])
    if resolution is None or int(resolution) == native:
        r = 1
    else:
        _check_node_grid(ds, path, resolution)
        r = subsample_factor(native, resolution)
        ds = ds.isel(x=slice(None, None, r), y=slice(None, None, r))
    ds.attrs["view_resolution"] = int(ds.sizes["x"])
    ds.attrs["subsample_factor"] = r
    return ds


def load_arrays(
    path: str | os.PathLike,
    resolution: int | None = None,
    indices: np.ndarray | list[int] | range | None = None,
    *,
    variables: tuple[str, ...] = _VARS,
    block: int = 64,
    dtype: str = "float32",
) -> dict[str, np.ndarray]:
    """Read samples into memory at a reachable resolution, fast.

    Equivalent to ``open_darcy(path, resolution).isel(sample=indices)[v].values`` but reads whole per-sample
    chunks in contiguous blocks and subsamples in memory: several times faster than strided netCDF reads.

    Parameters
    ----------
    path, resolution
        As in :func:`open_darcy`.
    indices : sequence of int, optional
        Sample indices (default: all). Negative indices count from the end.
    variables : tuple of str
        Which variables to load.
    block : int
        Samples read at once at full resolution (bounds the transient memory).
    dtype : str
        Output dtype.

    Returns
    -------
    dict
        ``{name: array [n, s_c, s_c]}``.
    """
    with open_darcy(path) as ds:
        native = int(ds.sizes["x"])
        n_total = int(ds.sizes["sample"])
        if resolution is not None and int(resolution) != native:
            _check_node_grid(ds, Path(path), resolution)
        r = 1 if resolution is None or int(resolution) == native else subsample_factor(native, resolution)
        idx = np.arange(n_total) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.max() >= n_total or idx.min() < -n_total):
            raise DarcyDataError(
                f"sample indices must lie in [0, {n_total}) for {path}, got min {idx.min()} and max {idx.max()}"
            )
        idx = np.where(idx < 0, idx + n_total, idx)
        s_c = (native - 1) // r + 1
        out = {v: np.empty((idx.size, s_c, s_c), dtype=dtype) for v in variables}
        for v in variables:
            var = ds[v].variable
            for k in range(0, idx.size, block):
                sel = idx[k : k + block]
                lo, hi = int(sel.min()), int(sel.max()) + 1
                if hi - lo <= 2 * sel.size:  # dense enough: one contiguous read
                    chunk = np.asarray(var[lo:hi].values)[sel - lo]
                else:
                    chunk = np.stack([np.asarray(var[int(i)].values) for i in sel])
                out[v][k : k + sel.size] = chunk[:, ::r, ::r]
    return out


_STREAM_KEYS = (
    "mano_pde_schema",
    "resolution",
    "seed",
    "grf_alpha",
    "grf_tau",
    "permeability_map",
    "permeability_high",
    "permeability_low",
    "lognormal_sigma",
    "forcing",
    "face_average",
    "source_format",
    "source_file",
)


def same_sample_stream(attrs_a: dict, attrs_b: dict) -> bool:
    """Whether two files hold the same sample sequence (sample ``i`` identical in both).

    Generated files with equal seed and generator parameters share their samples index by index whatever
    their ``n_samples`` (sample ``i`` depends only on the seed and ``i``), so a test file made with the
    training file's seed overlaps it. Imported files compare by source file.
    """
    return all(str(attrs_a.get(k)) == str(attrs_b.get(k)) for k in _STREAM_KEYS)


def _check_node_grid(ds: xr.Dataset, path: Path, resolution: int) -> None:
    """Subsampled views are coarser grids only for node grids that include the boundary."""
    grid = str(ds.attrs.get("grid", "node"))
    if not grid.startswith("node"):
        raise DarcyDataError(
            f"{path} is on a non-node grid ({grid}); subsampling it does not give a coarser grid of the same kind, "
            f"so only its native resolution {ds.sizes['x']} is available (requested {resolution})"
        )


def _validate(ds: xr.Dataset, path: Path) -> None:
    missing = [v for v in _VARS if v not in ds.data_vars]
    if missing:
        found = sorted(ds.data_vars) or "no data variables"
        raise DarcyDataError(
            f"{path} is not a Darcy data file: variable(s) {missing} missing (found {found}). "
            "Expected permeability `a` and pressure `u` with dims (sample, y, x); convert foreign data with "
            "`mano-pde import SRC -o OUT.nc`"
        )
    for v in _VARS:
        if ds[v].dims != ("sample", "y", "x"):
            raise DarcyDataError(f"{path}: variable {v!r} has dims {ds[v].dims}, expected ('sample', 'y', 'x')")
    if ds.sizes["x"] != ds.sizes["y"]:
        raise DarcyDataError(f"{path}: grid is {ds.sizes['y']}x{ds.sizes['x']}, expected a square grid")
    if ds.attrs.get(COMPLETE_ATTR) != "yes":
        raise DarcyDataError(
            f"{path} is incomplete (no `{COMPLETE_ATTR}` attribute): it was not finished by mano_pde. "
            "Rerun the command that made it"
        )
    schema = ds.attrs.get("mano_pde_schema", "")
    if not str(schema).startswith(SCHEMA.split("/")[0]):
        raise DarcyDataError(f"{path}: unknown schema {schema!r}, expected {SCHEMA!r}")


def describe(ds: xr.Dataset) -> str:
    """A human-readable summary: dims, reachable grids, parameters, value ranges."""
    s = int(ds.attrs.get("resolution", ds.sizes["x"]))
    lines = [
        f"samples: {ds.sizes['sample']}   grid: {ds.sizes['y']} x {ds.sizes['x']} (file native {s})   "
        f"dtype: {ds['a'].dtype}",
        f"reachable resolutions: {', '.join(map(str, reachable_resolutions(s)))}",
    ]
    for v in _VARS:
        arr = ds[v]
        lines.append(
            f"{v}: min {float(arr.min()):.6g}  max {float(arr.max()):.6g}  mean {float(arr.mean()):.6g}"
            f"  ({arr.attrs.get('long_name', '')})"
        )
    lines.append("attributes:")
    skip = {"history"}
    for k in sorted(ds.attrs):
        if k not in skip:
            lines.append(f"  {k} = {ds.attrs[k]}")
    if "history" in ds.attrs:
        lines.append("history:")
        lines.extend(f"  {h}" for h in str(ds.attrs["history"]).splitlines())
    return "\n".join(lines)
