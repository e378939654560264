"""The on-disk schema of mano_pde Darcy files and its streaming netCDF4 writer.

A Darcy file is a netCDF4 (HDF5) file holding

- ``a(sample, y, x)``: permeability, and ``u(sample, y, x)``: pressure, float32 (default) or float64,
  zlib-compressed, chunked one sample per chunk;
- coordinates ``x(x)``, ``y(y)``: the true positions of the grid points in [0, 1], and ``sample(sample)``;
- the global attribute ``grid_geometry``: where the points sit (:mod:`mano_pde.grids`): ``"node"``
  (``x_i = i/(s-1)``, generated files), ``"half-open"`` (``x_i = i/s``) or ``"cell"`` (``x_i = (i+1/2)/s``);
  files written before the attribute existed are node grids (or, imported PDEBench files, cell grids);
- global attributes with every generator or import parameter, package versions and history
  (CF-1.8 conventions), plus the completeness marker ``mano_pde_complete = "yes"``, written last.

The writer streams samples in chunks into a temporary file next to the target and renames it into place
only after every sample was written, so a file under the final name is never partial. The schema is
documented for users in ``datasets/README.md``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ..files import create_exclusive, fsync_folder, temp_path
from ..grids import GEOMETRIES, check_geometry, coordinates, describe_geometry
from ..provenance import package_versions, utc_now

__all__ = [
    "SCHEMA",
    "COMPLETE_ATTR",
    "COORD_TOL",
    "GEOMETRY_ATTR",
    "DarcyDataError",
    "DarcyWriter",
    "STORAGE_DTYPES",
    "check_storable_parameters",
    "package_versions",
    "utc_now",
]

log = logging.getLogger(__name__)

#: Value of the global attribute ``mano_pde_schema``.
SCHEMA = "mano_pde.darcy/1"
#: Global attribute written last; readers refuse files without it.
COMPLETE_ATTR = "mano_pde_complete"
#: Global attribute naming the grid geometry (:data:`mano_pde.grids.GEOMETRIES`); absent in older files (node grids).
GEOMETRY_ATTR = "grid_geometry"
#: How far stored coordinates of a non-node grid may lie from the geometry's positions (float32 sources).
COORD_TOL = 1e-6

_VARIABLE_ATTRS = {
    "a": {"long_name": "permeability (diffusion coefficient) a(x, y)", "units": "1"},
    "u": {"long_name": "pressure u(x, y) solving -div(a grad u) = f, u = 0 on the boundary", "units": "1"},
}
_COORD_ATTRS = {
    "x": {"long_name": "x coordinate of grid nodes (boundary included)", "units": "1", "axis": "X"},
    "y": {"long_name": "y coordinate of grid nodes (boundary included)", "units": "1", "axis": "Y"},
    "sample": {"long_name": "sample index (sample i is generated from (seed, i))", "units": "1"},
}


class DarcyDataError(UserInputError):
    """A Darcy data file or request is invalid (missing, truncated, foreign, or an unreachable grid).

    A :class:`~mano_pde.errors.UserInputError` (so also a ``ValueError``): the CLI reports it in one line.
    """


#: The storage precisions of ``a`` and ``u``.
STORAGE_DTYPES = ("float32", "float64")


def check_storable_parameters(values: Mapping[str, float], dtype: str) -> None:
    """Refuse option values that the storage ``dtype`` cannot hold, before anything is written.

    ``--high 1e45`` overflows float32 (the file would hold inf), ``--forcing 1e-300`` underflows it (u would be
    stored as 0). Used by ``generate`` (forcing, and high/low of the piecewise map) and ``import`` (high/low of
    boolean masks), so both refuse such values with the same message, naming the option.

    Parameters
    ----------
    values : mapping
        Option name (without ``--``) → value.
    dtype : {"float32", "float64"}
        The storage precision.

    Raises
    ------
    UserInputError
        ``"--high 1e+300 cannot be stored in float32 (above its range …); choose a value in that range or use
        --dtype float64"``.
    """
    info = np.finfo(dtype)
    low, high = float(info.tiny), float(info.max)
    for name, v in values.items():
        mag = abs(float(v))
        if mag > high or 0 < mag < low:
            raise UserInputError(
                f"--{name} {v:g} cannot be stored in {dtype} ({'above' if mag > high else 'below'} its range "
                f"{low:.3g} to {high:.3g}): the file would hold {'inf' if mag > high else '0'}; "
                f"choose a value in that range{' or use --dtype float64' if dtype == 'float32' else ''}"
            )


def _attr_value(v: Any) -> Any:
    """netCDF attributes hold numbers, strings and 1-D numeric arrays; map everything else to str."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    if v is None:
        return "none"
    return str(v)


class DarcyWriter:
    """Stream Darcy samples into a new netCDF4 file, atomically.

    Parameters
    ----------
    path : path-like
        Final file name. Nothing appears under this name until :meth:`close` succeeds.
    n_samples, resolution : int
        Number of samples and grid points per direction.
    attrs : mapping
        Global attributes (generator or import parameters). Versions, schema and history are added.
    dtype : {"float32", "float64"}
        Storage precision of ``a`` and ``u``.
    complevel : int
        zlib level (1–9). Level 4 keeps writing well below the solver's cost (see BENCHMARKS.md).
    geometry : {"node", "half-open", "cell"}
        The grid geometry (:mod:`mano_pde.grids`), stored as the global attribute ``grid_geometry``; the
        coordinates default to its positions (``"node"``: ``linspace(0, 1, s)``).
    coords : mapping, optional
        Explicit coordinate values ``{"x": [s], "y": [s]}`` (either key may be left out), e.g. the source's
        own coordinates of imported data; they must be the positions of ``geometry`` (to 1e-6). Explicit
        coordinates and non-node geometries lose the "grid nodes" long name; the ``grid`` attribute
        describes the grid.
    var_attrs : mapping, optional
        Per-variable attribute overrides ``{"a" | "u" | "x" | "y" | "sample": {name: value}}``, merged over
        the defaults (which describe generated data: e.g. imported files override ``u``'s boundary claim).
    verify : callable, optional
        ``verify(temporary, final)``, called on the finished temporary file before it replaces ``path``; it
        raises to refuse the file (``generate`` and ``import`` pass :func:`mano_pde.data.io.check_new_file`,
        every check of the reader).

    Notes
    -----
    Use as a context manager: on an exception the temporary file is removed and the target is untouched.
    Samples may be written in any order, but every sample must be written exactly once before closing.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_samples: int,
        resolution: int,
        attrs: Mapping[str, Any],
        *,
        dtype: str = "float32",
        complevel: int = 4,
        coords: Mapping[str, Any] | None = None,
        var_attrs: Mapping[str, Mapping[str, Any]] | None = None,
        geometry: str = "node",
        verify: Callable[[Path, Path], None] | None = None,
    ) -> None:
        geometry = check_geometry(geometry)

        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        overrides = {k: dict(v) for k, v in (var_attrs or {}).items()}
        unknown = set(overrides) - {"a", "u", "x", "y", "sample"}
        if unknown:
            raise ValueError(f"var_attrs keys must be among a, u, x, y, sample; got {sorted(unknown)}")
        grids = {name: coordinates(geometry, int(resolution)) for name in ("y", "x")}
        for name, values in (coords or {}).items():
            values = np.asarray(values, dtype="f8")
            if name not in grids or values.shape != (int(resolution),):
                raise ValueError(
                    f"coords must map 'x'/'y' to {int(resolution)} values, got {name!r} of shape {values.shape}"
                )
            if not np.allclose(values, grids[name], rtol=0, atol=COORD_TOL):
                raise ValueError(f"coords {name!r} are not the points of a {geometry} grid: {GEOMETRIES[geometry]}")
            grids[name] = values
        self.path = Path(path)
        self._verify = verify
        self.n_samples = int(n_samples)
        self.resolution = int(resolution)
        self.dtype = np.dtype(dtype)
        self._written = np.zeros(self.n_samples, dtype=bool)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path(self.path)
        self._ds = None
        create_exclusive(self._tmp).close()  # a new regular file of ours, never through a planted link
        try:
            self._create(grids, geometry, coords, overrides, attrs, complevel)
        except BaseException:  # e.g. an attribute netCDF cannot hold: no temporary file is left behind
            self.abort()
            raise

    def _create(
        self,
        grids: dict[str, np.ndarray],
        geometry: str,
        coords: Mapping[str, Any] | None,
        overrides: dict[str, dict[str, Any]],
        attrs: Mapping[str, Any],
        complevel: int,
    ) -> None:
        """Create the temporary file's dimensions, variables and global attributes."""
        import netCDF4

        ds = netCDF4.Dataset(self._tmp, "w", format="NETCDF4")
        self._ds = ds
        s = self.resolution
        ds.createDimension("sample", self.n_samples)
        ds.createDimension("y", s)
        ds.createDimension("x", s)
        for name in ("y", "x"):
            var = ds.createVariable(name, "f8", (name,))
            var[:] = grids[name]
            catts = dict(_COORD_ATTRS[name])
            if (coords and name in coords) or geometry != "node":
                catts["long_name"] = f"{name} coordinate of grid points (see the global attribute `grid`)"
            var.setncatts({**catts, **overrides.get(name, {})})
        var = ds.createVariable("sample", "i8", ("sample",))
        var[:] = np.arange(self.n_samples)
        var.setncatts({**_COORD_ATTRS["sample"], **overrides.get("sample", {})})
        self._vars = {}
        for name in ("a", "u"):
            var = ds.createVariable(
                name,
                self.dtype,
                ("sample", "y", "x"),
                zlib=True,
                complevel=int(complevel),
                shuffle=True,
                chunksizes=(1, s, s),
            )
            var.setncatts({**_VARIABLE_ATTRS[name], **overrides.get(name, {})})
            self._vars[name] = var
        versions = package_versions()
        glob: dict[str, Any] = {
            "Conventions": "CF-1.8",
            "title": "Darcy flow: permeability a and pressure u, -div(a grad u) = f on (0,1)^2, u = 0 on the boundary",
            "institution": "generated with mano_pde",
            "source": f"mano_pde {versions['mano-pde']}",
            "references": (
                "Li et al., Fourier Neural Operator for Parametric PDEs, arXiv:2010.08895 (Darcy benchmark); "
                "Colagrande et al., Multipole Attention Neural Operator, arXiv:2507.02748"
            ),
            "mano_pde_schema": SCHEMA,
            "resolution": s,
            "n_samples": self.n_samples,
            "grid": (
                "node-based s x s grid of [0,1]^2 including the boundary, h = 1/(s-1)"
                if geometry == "node"
                else describe_geometry(geometry, s)
            ),
            GEOMETRY_ATTR: geometry,
        }
        for k, v in attrs.items():
            if k == GEOMETRY_ATTR and v != geometry:
                raise ValueError(f"attrs say {GEOMETRY_ATTR}={v!r} but the writer was given geometry={geometry!r}")
            glob[k] = _attr_value(v)
        for k, v in versions.items():
            glob[f"version_{k.replace('-', '_')}"] = v
        history = f"{utc_now()} {' '.join(sys.argv) if sys.argv and sys.argv[0] else 'mano_pde'}"
        if "history" in attrs:
            history = f"{attrs['history']}\n{history}"
        glob["history"] = history
        ds.setncatts(glob)

    def write(self, start: int, a: np.ndarray, u: np.ndarray) -> None:
        """Write samples ``start … start + len(a) - 1`` (arrays ``[k, s, s]``)."""
        a = np.asarray(a)
        u = np.asarray(u)
        s = self.resolution
        if a.ndim != 3 or a.shape[1:] != (s, s) or u.shape != a.shape:
            raise ValueError(f"expected a and u of shape [k, {s}, {s}], got {a.shape} and {u.shape}")
        stop = start + a.shape[0]
        if start < 0 or stop > self.n_samples:
            raise ValueError(f"samples {start}..{stop - 1} are outside 0..{self.n_samples - 1}")
        self._vars["a"][start:stop] = a.astype(self.dtype, copy=False)
        self._vars["u"][start:stop] = u.astype(self.dtype, copy=False)
        self._written[start:stop] = True

    @property
    def n_written(self) -> int:
        return int(self._written.sum())

    def close(self) -> Path:
        """Mark the file complete, flush it to disk, check it as a reader would and move it to its final name.

        Raises
        ------
        DarcyDataError
            The new file fails ``verify`` (e.g. :func:`mano_pde.data.io.check_new_file`: NaN/inf values): it
            is discarded and an existing file at the final name is left as it was.
        """

        if self._ds is None:
            return self.path
        missing = np.flatnonzero(~self._written)
        if missing.size:
            self.abort()
            raise RuntimeError(
                f"{missing.size} of {self.n_samples} samples were never written (first: {missing[0]}); "
                "the file was not created"
            )
        try:
            self._ds.setncattr(COMPLETE_ATTR, "yes")
            self._ds.close()
            self._ds = None
            with open(self._tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            if self._verify is not None:  # validate before replacing: a bad file never takes the name
                self._verify(self._tmp, self.path)
            os.replace(self._tmp, self.path)
        except BaseException:  # OSError (e.g. the target became a folder), KeyboardInterrupt, SystemExit: no temp left
            self.abort()
            raise
        fsync_folder(self.path.parent)
        log.info("wrote %s (%d samples at %d^2)", self.path, self.n_samples, self.resolution)
        return self.path

    def abort(self) -> None:
        """Discard the temporary file (also when closing it fails)."""
        if self._ds is not None:
            try:
                self._ds.close()
            except Exception:  # noqa: BLE001 - the file is discarded anyway
                pass
            finally:
                self._ds = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> DarcyWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
