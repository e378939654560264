"""Open Darcy files, validate them, and view them at coarser resolutions.

A file serves every grid nested in its own (:func:`mano_pde.grids.nesting`), by exact subsampling; which
grids these are depends on the file's grid geometry (its ``grid_geometry`` attribute, :mod:`mano_pde.grids`):

* ``node`` (``x_i = i/(s-1)``, every generated file): ``[::r, ::r]`` with ``r`` dividing ``s - 1``,
  ``s_c = (s - 1)/r + 1`` (the FNO convention: 421 → 211, 141, 106, 85, 71, 61, 43, …);
* ``half-open`` (``x_i = i/s``, neuraloperator's Darcy files): ``[::r, ::r]`` with ``r`` dividing ``s``,
  ``s_c = s/r`` (32 → 16, 8, …);
* ``cell`` (``x_i = (i+1/2)/s``): ``[(r-1)/2::r]`` with ``r`` odd dividing ``s`` (27 → 9, 3).

Views are lazy (``xarray`` ``isel`` on the netCDF backend): nothing is read until values are used.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from ..files import special_file_kind
from ..grids import GEOMETRIES, MIN_POINTS, coordinates, describe_geometry, nesting, reachable
from .schema import COMPLETE_ATTR, COORD_TOL, GEOMETRY_ATTR, SCHEMA, DarcyDataError

#: Schema ids this version reads.
KNOWN_SCHEMAS = (SCHEMA,)
#: Values read at once by the finiteness / positivity scan of :func:`open_darcy`.
_SCAN_VALUES = 8_000_000
#: Files already scanned in this process: (resolved path, inode, size, mtime) -> None.
_SCANNED: dict[tuple, None] = {}

__all__ = [
    "open_darcy",
    "load_arrays",
    "same_sample_stream",
    "reachable_resolutions",
    "subsample_factor",
    "describe",
    "file_geometry",
    "subsample_slice",
]

_VARS = ("a", "u")


def reachable_resolutions(resolution: int, min_resolution: int | None = None, geometry: str = "node") -> list[int]:
    """Grids reachable from a ``resolution``-point grid of ``geometry`` by exact subsampling, finest first.

    ``min_resolution`` defaults to 3 (:func:`mano_pde.grids.reachable`).

    >>> reachable_resolutions(421)[:6], reachable_resolutions(32, geometry="half-open")
    ([421, 211, 141, 106, 85, 71], [32, 16, 8, 4])
    """
    if geometry != "node":
        return reachable(geometry, resolution, min_resolution)
    min_resolution = MIN_POINTS if min_resolution is None else min_resolution
    n = int(resolution) - 1
    if n < 1:
        return [int(resolution)]
    return [n // r + 1 for r in range(1, n + 1) if n % r == 0 and n // r + 1 >= min_resolution]


def _as_int(value: object, what: str) -> int:
    """``value`` as an int; integral floats pass, ``33.5``, booleans and strings raise DarcyDataError."""
    n: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        n = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        x = float(value)
        n = int(x) if np.isfinite(x) and x.is_integer() else None
    if n is None:
        raise DarcyDataError(f"{what} must be an integer number of grid points, got {value!r}")
    return n


def subsample_factor(resolution: int, target: int, geometry: str = "node") -> int:
    """The stride ``r`` of the ``target`` grid in a ``resolution`` grid of ``geometry``: node grids
    ``(resolution - 1)/r + 1 == target``, half-open and cell grids ``resolution / r == target`` (cell: ``r`` odd,
    the view starts at point ``(r - 1)/2``, see :func:`subsample_slice`).

    Raises
    ------
    DarcyDataError
        If ``target`` is not an integer >= 3 or not reachable; the message lists the reachable grids.
    """
    target = _as_int(target, "resolution")  # integers only; small grids get the list below
    if geometry != "node":
        return _subsample_other(resolution, target, geometry)
    if target >= 3 and target <= resolution and (resolution - 1) % (target - 1) == 0:
        return (resolution - 1) // (target - 1)
    reach = reachable_resolutions(resolution)
    if target < 3:
        raise DarcyDataError(
            f"resolution {target} is not a grid: at least 3 points are needed (the boundary and one interior node); "
            f"a {resolution}x{resolution} file serves one of {reach}"
        )
    raise DarcyDataError(
        f"resolution {target} is not reachable from a {resolution}x{resolution} file: subsampling gives "
        f"s_c = (s - 1)/r + 1, i.e. one of {reach}. Choose one of these, or generate data at a resolution "
        f"s with (s - 1) divisible by {target - 1}"
    )


def _subsample_other(resolution: int, target: int, geometry: str) -> int:
    """:func:`subsample_factor` of a half-open or cell grid."""
    nest = nesting(geometry, resolution, target) if target >= MIN_POINTS else None
    if nest is not None:
        return nest[0]
    reach = reachable_resolutions(resolution, geometry=geometry)
    if target < MIN_POINTS:
        raise DarcyDataError(
            f"resolution {target} is too small: at least {MIN_POINTS} points per direction are needed; a "
            f"{resolution}x{resolution} {geometry} grid serves one of {reach}"
        )
    rule = "s_c = s/r" + (" with r odd (cell centres nest only under odd ratios)" if geometry == "cell" else "")
    raise DarcyDataError(
        f"resolution {target} is not reachable from a {resolution}x{resolution} {geometry} grid "
        f"({GEOMETRIES[geometry]}): subsampling gives {rule}, i.e. one of {reach}"
    )


def subsample_slice(resolution: int, target: int, geometry: str = "node") -> slice:
    """The per-axis slice viewing the ``target`` grid inside a ``resolution`` grid of ``geometry`` (exact points;
    raises :class:`DarcyDataError` like :func:`subsample_factor`)."""
    r = subsample_factor(resolution, target, geometry)
    return slice((r - 1) // 2 if geometry == "cell" else None, None, r)


def file_geometry(ds: xr.Dataset, path: str | os.PathLike = "the file") -> str:
    """The grid geometry of an opened Darcy file: its ``grid_geometry`` attribute, or for files written before
    that attribute existed, ``"node"`` (generated and FNO/neuraloperator imports, whose ``grid`` says so) or
    the geometry whose positions the coordinates hold (PDEBench imports: ``"cell"``).

    Raises
    ------
    DarcyDataError
        An unknown ``grid_geometry`` value, or an older non-node file whose coordinates match no geometry.
    """
    if GEOMETRY_ATTR in ds.attrs:
        name = str(ds.attrs[GEOMETRY_ATTR])
        if name not in GEOMETRIES:
            raise DarcyDataError(
                f"{path}: {GEOMETRY_ATTR} = {name!r} is not a grid geometry this mano_pde version knows "
                f"({', '.join(GEOMETRIES)}); upgrade mano_pde, or re-import the file"
            )
        return name
    if str(ds.attrs.get("grid", "node")).startswith("node") or "x" not in ds.coords:
        return "node"
    x = np.asarray(ds["x"].values, dtype="f8")
    for name in GEOMETRIES:
        if np.allclose(x, coordinates(name, x.size), rtol=0, atol=COORD_TOL):
            return name
    raise DarcyDataError(
        f"{path}: its coordinates x ({x[0]:.6g} … {x[-1]:.6g}) are the points of none of the grid geometries "
        f"{', '.join(GEOMETRIES)}; re-import the file (mano-pde import, with --grid if needed)"
    )


def open_darcy(
    path: str | os.PathLike,
    resolution: int | None = None,
    *,
    chunks: dict | None = None,
    check_values: bool = True,
) -> xr.Dataset:
    """Open a mano_pde Darcy file, optionally viewed at a coarser reachable resolution.

    Parameters
    ----------
    path : path-like
        A file written by ``mano-pde generate`` or ``mano-pde import``.
    resolution : int, optional
        Grid points per direction of the view (default: the file's own): at least 3 on every grid geometry and
        reachable, see :func:`reachable_resolutions`.
    chunks : dict, optional
        Passed to :func:`xarray.open_dataset` (dask-backed arrays).
    check_values : bool
        Scan the file once, a block of samples at a time (bounded memory), for NaN/inf in ``a`` and ``u``
        and for ``a <= 0``. The cost is one read of the file; a file that passed is not scanned again by
        this process while it is unchanged (same inode, size and modification time).

    Returns
    -------
    xarray.Dataset
        Lazy dataset with ``a`` and ``u`` ``(sample, y, x)``. Its attributes gain ``view_resolution`` and
        ``subsample_factor`` (and ``grid_geometry``, see :func:`file_geometry`, for files older than that
        attribute); ``resolution`` stays the file's native one. The view's coordinates are the true positions
        of its points.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DarcyDataError
        If the file is truncated, not netCDF, lacks ``a``/``u``, is incomplete, has an unknown schema
        version, holds no samples, has attributes that contradict its arrays, holds non-finite values or
        non-positive permeability, or if the resolution is not an integer >= 3 or not reachable.
    """
    path = Path(path)
    if resolution is not None:  # integers only; grids below 3 fail as unreachable, with the reachable list
        resolution = _as_int(resolution, "resolution")
    if not path.exists():
        hint = ""
        partial = path.with_name(path.name + ".parts")
        if partial.exists():
            hint = f" (an unfinished generation run exists at {partial}: rerun the same generate command to finish it)"
        raise FileNotFoundError(f"no Darcy data file at {path}{hint}")
    kind = special_file_kind(path)  # a FIFO would block the netCDF library for ever
    if kind is not None:
        raise DarcyDataError(
            f"{path} is {kind}, not a Darcy data file; give a file written by `mano-pde generate` or `mano-pde import`"
        )
    try:
        ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks)
    except Exception as exc:  # netCDF4/HDF5 raise OSError, ValueError, RuntimeError variants
        raise DarcyDataError(
            f"cannot read {path} as netCDF4: {exc}. The file is truncated, corrupted or not a netCDF file; "
            "regenerate it with `mano-pde generate` or convert the source with `mano-pde import`"
        ) from exc
    try:
        _validate(ds, path)
        ds.attrs[GEOMETRY_ATTR] = file_geometry(ds, path)
        if check_values:
            _scan_values(ds, path)
    except Exception:
        ds.close()
        raise
    geometry = ds.attrs[GEOMETRY_ATTR]
    native = int(ds.sizes["x"])
    if resolution is None or int(resolution) == native:
        r = 1
    else:
        try:
            sl = subsample_slice(native, resolution, geometry)
        except DarcyDataError:
            ds.close()
            raise
        r = sl.step
        ds = ds.isel(x=sl, y=sl)
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
    if resolution is not None:
        resolution = _as_int(resolution, "resolution")
    with open_darcy(path, check_values=False) as ds:  # the blocks read below are checked instead
        native = int(ds.sizes["x"])
        n_total = int(ds.sizes["sample"])
        geometry = ds.attrs[GEOMETRY_ATTR]
        if resolution is None or int(resolution) == native:
            sl = slice(None, None, 1)
        else:
            sl = subsample_slice(native, resolution, geometry)
        idx = np.arange(n_total) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.max() >= n_total or idx.min() < -n_total):
            raise DarcyDataError(
                f"sample indices must lie in [0, {n_total}) for {path}, got min {idx.min()} and max {idx.max()}"
            )
        idx = np.where(idx < 0, idx + n_total, idx)
        s_c = len(range(native)[sl])
        out = {v: np.empty((idx.size, s_c, s_c), dtype=dtype) for v in variables}
        for v in variables:
            var = ds[v].variable
            for k in range(0, idx.size, block):
                sel = idx[k : k + block]
                lo, hi = int(sel.min()), int(sel.max()) + 1
                with _reading(path, v, lo, hi):
                    if hi - lo <= 2 * sel.size:  # dense enough: one contiguous read
                        chunk = np.asarray(var[lo:hi].values)[sel - lo]
                    else:
                        chunk = np.stack([np.asarray(var[int(i)].values) for i in sel])
                _check_block(path, v, chunk, sel)
                out[v][k : k + sel.size] = chunk[:, sl, sl]
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


#: The attributes that identify a file's sample sequence (those :func:`same_sample_stream` compares).
STREAM_KEYS = _STREAM_KEYS


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
    if ds.sizes["x"] < 3:
        raise DarcyDataError(
            f"{path}: grid is {ds.sizes['y']}x{ds.sizes['x']}: at least 3 points per direction are needed (the "
            "boundary and one interior node); regenerate or re-import it on a finer grid"
        )
    if ds.attrs.get(COMPLETE_ATTR) != "yes":
        raise DarcyDataError(
            f"{path} is incomplete (no `{COMPLETE_ATTR}` attribute): it was not finished by mano_pde. "
            "Rerun the command that made it"
        )
    schema = str(ds.attrs.get("mano_pde_schema", ""))
    if schema not in KNOWN_SCHEMAS:
        family = SCHEMA.split("/")[0] + "/"
        if schema.startswith(family):
            raise DarcyDataError(
                f"{path} has schema version {schema!r}, which this mano_pde version does not know (it reads "
                f"{', '.join(KNOWN_SCHEMAS)}); upgrade mano_pde, or regenerate the file with this version"
            )
        raise DarcyDataError(f"{path}: unknown schema {schema!r}, expected {SCHEMA!r}")
    n, s = int(ds.sizes["sample"]), int(ds.sizes["x"])
    if n == 0:
        raise DarcyDataError(f"{path} holds no samples (sample dimension of length 0); regenerate it")
    for key, actual in (("resolution", s), ("n_samples", n)):
        if key not in ds.attrs:
            raise DarcyDataError(f"{path}: attribute {key!r} is missing; the file was not written by mano_pde")
        recorded = ds.attrs[key]
        if not (np.ndim(recorded) == 0 and isinstance(recorded, numbers.Real) and recorded == actual):
            shown = repr(recorded) if isinstance(recorded, str) else recorded
            raise DarcyDataError(
                f"{path}: attribute {key} = {shown} contradicts the arrays ({actual} "
                f"{'points per direction' if key == 'resolution' else 'samples'}): the file was edited or "
                "written by a faulty tool; regenerate or re-import it"
            )
    geometry = file_geometry(ds, path)
    points = coordinates(geometry, s)
    tol = 1e-9 if geometry == "node" else COORD_TOL
    for name in ("x", "y"):
        if name in ds.coords and not np.allclose(np.asarray(ds[name].values, dtype="f8"), points, atol=tol):
            raise DarcyDataError(
                f"{path}: coordinate {name} does not hold the points of the {geometry} grid ({GEOMETRIES[geometry]}) "
                "that the file declares; regenerate or re-import the file"
            )


def _check_block(path: Path | str, name: str, block: np.ndarray, samples: np.ndarray) -> None:
    """Refuse NaN/inf in a block of samples of ``a`` or ``u``, and ``a <= 0`` (``samples``: their indices)."""
    flat = block.reshape(len(block), -1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        i = int(samples[np.flatnonzero(bad)[0]])
        raise DarcyDataError(
            f"{path}: variable {name} holds NaN or infinite values (first in sample {i}, {int(bad.sum())} "
            "sample(s) of this block): the file is corrupted or holds failed solves; regenerate or re-import it"
        )
    if name == "a":
        bad = (flat <= 0).any(axis=1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DarcyDataError(
                f"{path}: permeability a must be > 0, but sample {int(samples[k])} holds {float(flat[k].min()):g}: "
                "the file is corrupted or was written by a faulty tool; regenerate or re-import it"
            )


def _scan_values(ds: xr.Dataset, path: Path) -> None:
    """Check every sample of ``a`` and ``u`` (:func:`_check_block`), a block at a time, once per file state."""
    key = _scan_key(path)
    if key in _SCANNED:
        return
    n, s = int(ds.sizes["sample"]), int(ds.sizes["x"])
    step = max(1, _SCAN_VALUES // (s * s))
    for v in _VARS:
        var = ds[v].variable
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            with _reading(path, v, lo, hi):
                block = np.asarray(var[lo:hi].values)
            _check_block(path, v, block, np.arange(lo, hi))
    _remember_scanned(key)


def _remember_scanned(key: tuple) -> None:
    if len(_SCANNED) > 256:
        _SCANNED.clear()
    _SCANNED[key] = None


def _scan_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def _reading(path: Path | str, name: str, lo: int, hi: int) -> Iterator[None]:
    """Turn netCDF4/HDF5 read failures (damaged compressed chunks: ``RuntimeError: NetCDF: HDF error``) into a
    :class:`DarcyDataError` naming the file, the variable and the samples."""
    try:
        yield
    except (RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, DarcyDataError):
            raise
        raise DarcyDataError(
            f"{path}: variable {name}, samples {lo}-{hi - 1} cannot be read ({type(exc).__name__}: {exc}): the file "
            "is damaged (e.g. a corrupted compressed chunk); regenerate it with `mano-pde generate` or re-import it"
        ) from exc


def check_new_file(new: Path, final: Path) -> None:
    """Apply every check of :func:`open_darcy` to a just-written temporary file before it replaces ``final``.

    Pass it as ``DarcyWriter(..., verify=check_new_file)``. A file that passes is remembered as scanned under
    ``final`` (the rename keeps its inode, size and time), so opening it right after costs no second scan.

    Raises
    ------
    DarcyDataError
        The new file fails a check; the message names ``final`` and says that nothing was replaced.
    """
    new, final = Path(new), Path(final)
    try:
        with open_darcy(new):
            pass
    except DarcyDataError as exc:
        message = str(exc).replace(str(new), str(final))
        raise DarcyDataError(
            f"{final} was not written (an existing file is unchanged): the new file failed the reader's checks: "
            f"{message}"
        ) from None
    st = new.stat()
    _remember_scanned((str(final.resolve()), st.st_ino, st.st_size, st.st_mtime_ns))


def describe(ds: xr.Dataset) -> str:
    """A human-readable summary: dims, reachable grids, parameters, value ranges."""
    s = int(ds.attrs.get("resolution", ds.sizes["x"]))
    geometry = str(ds.attrs.get(GEOMETRY_ATTR, "node"))
    lines = [
        f"samples: {ds.sizes['sample']}   grid: {ds.sizes['y']} x {ds.sizes['x']} (file native {s})   "
        f"dtype: {ds['a'].dtype}",
        f"grid geometry: {geometry} ({GEOMETRIES.get(geometry, 'unknown')}); file: {describe_geometry(geometry, s)}",
        f"reachable resolutions: {', '.join(map(str, reachable_resolutions(s, geometry=geometry)))}",
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
