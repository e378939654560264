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
* Grids: FNO and neuraloperator files carry no coordinates; the node grid ``linspace(0, 1, s)`` including the
  boundary is assumed (the FNO convention: 421 → ``(421 - 1)/r + 1`` by subsampling). Whether ``u`` vanishes
  on the outer ring is measured and stored as ``source_u_boundary_max_abs``. PDEBench's cell-centred
  coordinates are written as they are into ``x`` and ``y``.
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
from .._output import check_output_file, output_lock
from ..io import check_new_file
from ..schema import DarcyDataError, DarcyWriter
from .common import FORMATS, _check_values, _Opener, log
from .detect import detect_format
from .matlab import _open_mat_v5, _open_mat_v73
from .neuralop_pt import _open_pt
from .pdebench import _open_pdebench

__all__ = ["FORMATS", "detect_format", "import_darcy"]

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
        For an invalid ``dtype``, ``high``/``low`` or ``chunk_size``, an output that is a folder or lies in a
        folder that is not writable, or another process writing the same output.

    Notes
    -----
    MATLAB v5 files are loaded whole by scipy and ``.pt`` files whole by torch; HDF5 sources (v7.3, PDEBench)
    are read ``chunk_size`` samples at a time. See the module docstring for the axis, grid and mask conventions.
    """
    src, out = Path(src), check_file_name(out)  # `-o newdir/` names a folder: refused
    if dtype not in ("float32", "float64"):
        raise UserInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    high, low = float(high), float(low)
    if not (np.isfinite(high) and np.isfinite(low) and high > 0 and low > 0):
        raise UserInputError(f"high and low must be positive permeability values, got high={high}, low={low}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise UserInputError(f"chunk_size must be >= 1, got {chunk_size}")
    fmt = detect_format(src)  # FileNotFoundError / DarcyDataError first: they are about the input
    if out.exists() and out.resolve() == src.resolve():
        raise DarcyDataError(f"the output {out} is the source file itself; choose another output name")
    check_output_file(out, overwrite)  # a folder, an existing file without overwrite, a read-only folder
    with output_lock(out, "import"):
        return _import_locked(src, out, fmt, dtype, high, low, progress, chunk_size, complevel, checksum)


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
        step = int(chunk_size or max(1, _CHUNK_VALUES // (s * s)))
        u_max = 0.0
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
                    u_max = max(u_max, float(np.max(np.abs(u))))
                    writer.write(start, a, u)
                    bar.update(stop - start)
    ring = source.attrs.get("source_u_boundary_max_abs")
    if ring is not None and ring > 1e-6 * max(u_max, np.finfo(float).tiny):
        log.warning(
            "%s: u is not zero on the outer ring of the grid (max |u| there %.3g, overall %.3g): the source grid "
            "may not include the boundary, although it is recorded as a node grid of [0,1]^2",
            src,
            ring,
            u_max,
        )
    log.info("imported %d samples at %d^2 from %s into %s", n, s, src, out)
    return out
