"""Import third-party Darcy datasets into the mano_pde netCDF schema (``mano-pde import SRC -o OUT.nc``).

Supported sources (detected from the file's content, not its name):

``fno-mat-v5``
    The FNO paper's ``.mat`` files (``piececonst_r421_N1024_smooth1.mat`` …) saved as MATLAB v5:
    ``coeff`` [N, s, s] permeability, ``sol`` [N, s, s] pressure. Read with :func:`scipy.io.loadmat`, which
    loads each variable whole (scipy cannot read part of a v5 variable); the output is still written in chunks.
``fno-mat-v7.3``
    The same variables in a MATLAB v7.3 file (HDF5 behind a 512-byte MATLAB header). h5py sees MATLAB's
    column-major arrays with their axes reversed ([s, s, N]); they are reversed back, exactly as the FNO
    reference ``MatReader`` does, so v5 and v7.3 files import identically. Read in chunks of samples.
``neuralop-pt``
    neuraloperator's ``darcy_{train,test}_{res}.pt``: a ``torch.save``-d dict ``{"x": [N, s, s], "y": [N, s, s]}``
    with ``x`` boolean (a mask of the two permeability values) or float. torch is imported only for these
    files and loads the file whole (``torch.load(weights_only=True)``: plain tensors only).
``pdebench-hdf5``
    PDEBench ``2D_DarcyFlow_beta{β}_Train.hdf5``: ``nu`` [N, s, s] permeability, ``tensor`` [N, 1, s, s] the
    steady solution, ``x-coordinate``/``y-coordinate`` (cell centres, boundary excluded) and the root
    attribute ``beta`` (the constant forcing). Read in chunks of samples.

Conventions (all recorded in the output's global attributes)
------------------------------------------------------------
* Array axes: FNO and neuraloperator arrays are copied unchanged, ``a[n, i, j] = coeff[n, i, j]``, axis 1 as
  ``y`` and axis 2 as ``x`` (rows are y in the reference MATLAB generator's ``meshgrid``). PDEBench indexes its
  arrays ``[sample, x, y]`` (its generator builds ``nu`` from ``xc[:, None]`` and ``yc[None, :]``), so they are
  transposed: ``a[n, j, i] = nu[n, i, j]``, ``u[n, j, i] = tensor[n, 0, i, j]``.
* Grids (:mod:`mano_pde.grids`): FNO and neuraloperator files carry no coordinates, so the geometry is decided
  from the pressure (:mod:`.grid_detection`): ``u = 0`` on all four edges is a ``node`` grid (``x_i = i/(s-1)``,
  the FNO ``.mat`` files), ``u = 0`` on the first row and column only with a profile symmetric about ``s/2`` a
  ``half-open`` grid (``x_i = i/s``, neuraloperator's small Darcy ``.pt`` files: the ``(s+1)``-node grid without
  its last row and column), no zero edge with a third of the next line's ``|u|`` a ``cell`` grid. The decision,
  its confidence and the measurements are recorded (``grid_geometry``, ``grid_confidence``, ``grid_detection``)
  and logged; data that decide nothing are imported as node grids with a warning naming that assumption.
  ``grid=`` (``mano-pde import --grid``) overrides the decision. PDEBench's coordinates are written as they are
  into ``x`` and ``y`` and decide the geometry (``cell``) themselves. The largest ``|u|`` on the outer ring is
  stored as ``source_u_boundary_max_abs``.
* Boolean permeability masks (neuraloperator's small Darcy files) have lost the permeability values:
  ``True → high`` and ``False → low`` (default 12 and 3, the FNO paper's values; overridable), see
  ``import_note``. A float ``x`` holding only 0 and 1 is treated as the same mask.

Bad input raises :class:`~mano_pde.data.schema.DarcyDataError` with the problem and the fix; an existing
output raises :class:`FileExistsError` unless ``overwrite=True``. The output is written by
:class:`~mano_pde.data.schema.DarcyWriter`: under a temporary name, renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserInputError
from ...files import check_file_name, sha256_file
from ...grids import GEOMETRIES, check_geometry, coordinates, describe_geometry
from .._output import check_output_file, output_lock
from ..io import check_new_file
from ..schema import COORD_TOL, STORAGE_DTYPES, DarcyDataError, DarcyWriter, check_storable_parameters
from .common import FORMATS, _check_values, _Opener, _Source, log
from .detect import detect_format
from .grid_detection import DETECT_SAMPLES, GridDecision, detect_grid
from .matlab import _open_mat_v5, _open_mat_v73
from .neuralop_pt import _open_pt
from .pdebench import _open_pdebench

__all__ = ["FORMATS", "GridDecision", "detect_format", "detect_grid", "import_darcy"]

_CHUNK_VALUES = 4_000_000  # grid values per array per chunk (32 MB in float64)

#: The reader registry: format name (a key of :data:`FORMATS`) → the function opening such a source.
_OPENERS: dict[str, _Opener] = {
    "fno-mat-v5": _open_mat_v5,
    "fno-mat-v7.3": _open_mat_v73,
    "neuralop-pt": _open_pt,
    "pdebench-hdf5": _open_pdebench,
}


# --------------------------------------------------------------------------------------------- import
def import_darcy(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
    high: float = 12.0,
    low: float = 3.0,
    progress: bool = True,
    chunk_size: int | None = None,
    complevel: int = 4,
    checksum: bool = True,
    grid: str = "auto",
) -> Path:
    """Convert a third-party Darcy data file into a mano_pde netCDF4 file.

    Parameters
    ----------
    src : path-like
        The source: an FNO-paper ``.mat`` (MATLAB v5 or v7.3), a neuraloperator ``darcy_*.pt`` or a PDEBench
        ``2D_DarcyFlow_*.hdf5`` file. The format is detected from the content (see :func:`detect_format`).
    out : path-like
        The netCDF4 file to write (atomically: temporary name, renamed when complete).
    dtype : {"float32", "float64"}
        Storage precision of ``a`` and ``u``. The source dtype is recorded (``source_dtype_a/u``); use
        ``"float64"`` to keep double-precision sources exact.
    overwrite : bool
        Replace an existing ``out``.
    high, low : float
        Permeability for True/False in boolean (or 0/1) masks, as in neuraloperator's small Darcy files.
        Ignored for sources that store permeability values.
    progress : bool
        Show a tqdm progress bar.
    chunk_size : int, optional
        Samples per read/write chunk (default: about 4 M grid values per array).
    complevel : int
        zlib compression level of the output.
    checksum : bool
        Record the SHA-256 of the source (``source_sha256``; one extra read of the file).
    grid : {"auto", "node", "half-open", "cell"}
        The grid geometry (:mod:`mano_pde.grids`). ``"auto"`` (default): from the source's coordinates where it
        stores them (PDEBench), else decided from the pressure (module docstring), with a warning when the data
        do not decide it (then ``"node"``). A geometry given here overrides the decision (a warning says when
        the data suggest another one); it must agree with stored coordinates.

    Returns
    -------
    pathlib.Path
        The written file; it opens with :func:`mano_pde.data.open_darcy`.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    FileExistsError
        If ``out`` exists and ``overwrite`` is false.
    DarcyDataError
        If the source is of an unknown format, truncated, lacks its variables, has mismatched or non-square
        shapes, non-finite values or non-positive permeability, or if ``out`` is the source itself.
    UserInputError
        For an invalid ``dtype``, ``high``/``low`` (not positive, or beyond what ``dtype`` holds) or ``chunk_size``,
        an output that is a folder or lies in a
        folder that is not writable, or another process writing the same output.

    Notes
    -----
    MATLAB v5 files are loaded whole by scipy and ``.pt`` files whole by torch; HDF5 sources (v7.3, PDEBench)
    are read ``chunk_size`` samples at a time. See the module docstring for the axis, grid and mask conventions.
    """
    src, out = Path(src), check_file_name(out)  # `-o newdir/` names a folder: refused
    if dtype not in STORAGE_DTYPES:
        raise UserInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    high, low = float(high), float(low)
    if not (np.isfinite(high) and np.isfinite(low) and high > 0 and low > 0):
        raise UserInputError(f"high and low must be positive permeability values, got high={high}, low={low}")
    check_storable_parameters({"high": high, "low": low}, dtype)  # as generate: --high 1e300 is no float32
    if chunk_size is not None and int(chunk_size) < 1:
        raise UserInputError(f"chunk_size must be >= 1, got {chunk_size}")
    if grid != "auto":
        check_geometry(grid, "grid (--grid)")
    fmt = detect_format(src)  # FileNotFoundError / DarcyDataError first: they are about the input
    if out.exists() and out.resolve() == src.resolve():
        raise DarcyDataError(f"the output {out} is the source file itself; choose another output name")
    check_output_file(out, overwrite)  # a folder, an existing file without overwrite, a read-only folder
    with output_lock(out, "import"):
        return _import_locked(src, out, fmt, dtype, high, low, progress, chunk_size, complevel, checksum, grid)


def _import_locked(
    src: Path,
    out: Path,
    fmt: str,
    dtype: str,
    high: float,
    low: float,
    progress: bool,
    chunk_size: int | None,
    complevel: int,
    checksum: bool,
    grid: str,
) -> Path:
    """The body of :func:`import_darcy`, run with the output's lock held and the arguments checked."""
    log.info("importing %s (%s) into %s", src, fmt, out)

    from tqdm.auto import tqdm

    from ... import __version__

    with contextlib.ExitStack() as stack:
        source = _OPENERS[fmt](src, stack, high, low)
        n, s = source.n, source.s
        attrs: dict[str, Any] = {
            "institution": "imported with mano_pde; see references for the original dataset",
            "source": f"{FORMATS[fmt]}: {src.name}, imported by mano_pde {__version__}",
            "source_file": src.name,
            "source_format_description": FORMATS[fmt],
            "source_file_size_bytes": src.stat().st_size,
        }
        if checksum:
            attrs["source_sha256"] = sha256_file(src)
        attrs.update(source.attrs)
        names = (attrs["source_variable_a"], attrs["source_variable_u"])
        decision = _decide_grid(src, source, grid, names)
        attrs["grid"] = f"{describe_geometry(decision.geometry, s)} ({attrs['grid']})"
        attrs["grid_confidence"] = decision.confidence
        attrs["grid_detection"] = decision.evidence
        step = int(chunk_size or max(1, _CHUNK_VALUES // (s * s)))
        var_attrs = {
            "sample": {"long_name": f"sample index in the source file {src.name}"},
            "u": {"long_name": f"pressure u(x, y) solving -div(a grad u) = f (source variable {names[1]})"},
            "a": {"long_name": f"permeability (diffusion coefficient) a(x, y) (source variable {names[0]})"},
        }
        with DarcyWriter(
            out,
            n,
            s,
            attrs,
            dtype=dtype,
            complevel=complevel,
            coords=source.coords,
            var_attrs=var_attrs,
            geometry=decision.geometry,
            verify=check_new_file,  # every check of the reader, before an existing file is replaced
        ) as writer:
            with tqdm(total=n, unit="sample", desc="importing", disable=not progress) as bar:
                for start in range(0, n, step):
                    stop = min(start + step, n)
                    try:
                        a, u = source.read(start, stop)
                    except DarcyDataError:
                        raise
                    except Exception as exc:  # h5py / numpy errors on a damaged file
                        raise DarcyDataError(
                            f"cannot read samples {start}..{stop - 1} of {src} ({exc}): the file is truncated "
                            "or corrupted; download or copy it again"
                        ) from exc
                    _check_values(src, a, u, start, names)
                    writer.write(start, a, u)
                    bar.update(stop - start)
    log.info("imported %d samples at %d^2 from %s into %s", n, s, src, out)
    return out


def _decide_grid(src: Path, source: _Source, grid: str, names: tuple[str, str]) -> GridDecision:
    """The grid geometry of the import: stored coordinates decide it, else ``grid``, else the pressure."""
    s = source.s
    if source.coords:
        found = [
            g
            for g in GEOMETRIES
            if all(np.allclose(c, coordinates(g, s), rtol=0, atol=COORD_TOL) for c in source.coords.values())
        ]
        if not found:
            c = source.coords["x"]
            raise DarcyDataError(
                f"{src}: its coordinates ({c[0]:.6g} … {c[-1]:.6g}) are the points of none of the grid geometries "
                f"mano_pde knows ({'; '.join(f'{k}: {v}' for k, v in GEOMETRIES.items())})"
            )
        if grid not in ("auto", found[0]):
            raise DarcyDataError(
                f"{src} stores coordinates of a {found[0]} grid ({GEOMETRIES[found[0]]}); --grid {grid} contradicts "
                "them. Leave --grid out for files with coordinates"
            )
        decision = GridDecision(found[0], "certain", f"the source's coordinates are {GEOMETRIES[found[0]]}")
        log.info("%s: %s grid, from its coordinates", src, found[0])
        return decision
    try:
        a, u = source.read(0, min(source.n, DETECT_SAMPLES))
    except Exception as exc:  # h5py / numpy errors on a damaged file
        raise DarcyDataError(f"cannot read {names[1]} of {src} ({exc}): the file is truncated or corrupted") from exc
    _check_values(src, a, u, 0, names)  # NaN/inf or a <= 0 are refused before any heuristic reads the values
    found = detect_grid(u)
    if grid != "auto":
        note = f"given with --grid {grid}; the data: {found.geometry} ({found.confidence}): {found.evidence}"
        if found.confidence != "assumed" and found.geometry != grid:
            log.warning(
                "%s: --grid %s overrides the data, which suggest a %s grid (%s confidence): %s",
                src,
                grid,
                found.geometry,
                found.confidence,
                found.evidence,
            )
        return GridDecision(grid, "given", note)
    if found.confidence in ("assumed", "low"):
        log.warning(
            "%s: grid geometry %s (%s): %s; pass --grid node|half-open|cell if you know it",
            src,
            found.geometry,
            found.confidence,
            found.evidence,
        )
    else:
        log.info("%s: grid geometry %s (%s confidence): %s", src, found.geometry, found.confidence, found.evidence)
    return found
