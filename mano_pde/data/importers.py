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
import hashlib
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from ._output import check_output_file, output_lock
from .schema import DarcyDataError, DarcyWriter

__all__ = ["FORMATS", "detect_format", "import_darcy"]

log = logging.getLogger(__name__)

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

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled torch MAGIC_NUMBER (legacy torch.save)
_CHUNK_VALUES = 4_000_000  # grid values per array per chunk (32 MB in float64)


def _node_grid(s: int, why: str) -> str:
    return f"node-based {s} x {s} grid of [0,1]^2 including the boundary, h = 1/{s - 1} ({why})"


def _supported() -> str:
    return "; ".join(f"{k}: {v}" for k, v in FORMATS.items())


# --------------------------------------------------------------------------------------------- detection
def detect_format(src: str | os.PathLike) -> str:
    """The format of a Darcy source file, from its content (magic bytes and, for HDF5, its variables).

    Parameters
    ----------
    src : path-like
        The source file.

    Returns
    -------
    str
        One of :data:`FORMATS`: ``"fno-mat-v5"``, ``"fno-mat-v7.3"``, ``"neuralop-pt"``, ``"pdebench-hdf5"``.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    DarcyDataError
        If the content matches no supported format, or the file is empty, truncated or unreadable.
    """
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"no source file at {path}")
    if path.is_dir():
        raise DarcyDataError(f"{path} is a directory; pass one data file ({_supported()})")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        raise DarcyDataError(f"{path} is empty; download or copy it again")
    if head[:8] == _HDF5_MAGIC or head[512:520] == _HDF5_MAGIC:
        return _classify_hdf5(path, head)
    if head.startswith(b"MATLAB 7.3"):
        raise DarcyDataError(
            f"{path} has a MATLAB v7.3 header but no HDF5 data behind it: the file is truncated or corrupted; "
            "download or copy it again"
        )
    if _is_mat_v5(head):
        return "fno-mat-v5"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise DarcyDataError(
                f"{path} starts like a torch (zip) file but cannot be opened ({exc}): it is truncated or "
                "corrupted; download or copy it again"
            ) from exc
        if any(n.endswith("data.pkl") for n in names):
            return "neuralop-pt"
        raise DarcyDataError(f"{path} is a zip archive but not a torch.save file. Supported formats: {_supported()}")
    if head[:1] == b"\x80" and head[2:14] == _TORCH_LEGACY_MAGIC:
        return "neuralop-pt"
    raise DarcyDataError(
        f"{path}: unknown file format (first bytes {head[:16]!r}). Supported formats, detected from the "
        f"content: {_supported()}"
    )


def _is_mat_v5(head: bytes) -> bool:
    """MATLAB v5 header: 116 bytes of text, 8 bytes subsystem offset, version 0x0100, endian mark IM/MI."""
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return True
    if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
        return False
    version = int.from_bytes(head[124:126], "little" if head[126:128] == b"IM" else "big")
    return version == 0x0100


def _classify_hdf5(path: Path, head: bytes) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys())
            attrs = set(f.attrs.keys())
    except Exception as exc:  # h5py raises OSError (truncated, corrupted) and friends
        raise DarcyDataError(
            f"{path} is an HDF5 file but cannot be opened ({exc}): it is truncated or corrupted; download or "
            "copy it again"
        ) from exc
    if {"coeff", "sol"} & set(keys):
        return "fno-mat-v7.3"
    if {"nu", "tensor"} & set(keys):
        return "pdebench-hdf5"
    if "mano_pde_schema" in attrs:
        raise DarcyDataError(f"{path} is already a mano_pde Darcy file: open it with open_darcy, no import needed")
    kind = "a MATLAB v7.3 file" if head.startswith(b"MATLAB 7.3") else "an HDF5 file"
    raise DarcyDataError(
        f"{path} is {kind} without Darcy variables: expected coeff and sol (FNO .mat) or nu and tensor "
        f"(PDEBench); found {keys or 'no datasets'}. Supported formats: {_supported()}"
    )


# --------------------------------------------------------------------------------------------- sources
@dataclass
class _Source:
    """An opened source: its size, a chunk reader returning ``(a, u)`` in mano_pde layout, and metadata."""

    n: int
    s: int
    read: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
    attrs: dict[str, Any] = field(default_factory=dict)
    coords: dict[str, np.ndarray] | None = None


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
    if n < 1 or sx < 2:
        raise DarcyDataError(f"{path}: {na} has shape {_shape(a_shape)}: no samples or a grid of fewer than 2 points")
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


def _mask_to_permeability(x: np.ndarray, high: float, low: float) -> np.ndarray:
    return np.where(x.astype(bool), high, low)


def _mat_header(text: bytes) -> str:
    return text.split(b"\x00")[0].decode("latin-1").strip()


def _mat_v5_truncation(path: Path) -> str | None:
    """Why a MATLAB v5 file is truncated (its top-level data elements run past the end), or ``None``.

    Walks the 8-byte tags of the top-level elements after the 128-byte header (``miMATRIX`` elements are
    padded to 8 bytes, ``miCOMPRESSED`` ones are not); reads only the tags.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(128)
        if len(header) < 128:
            return f"the file has {size} bytes, fewer than a MATLAB header (128)"
        endian = "<" if header[126:128] == b"IM" else ">"
        offset, k = 128, 0
        while offset < size:
            fh.seek(offset)
            tag = fh.read(8)
            if len(tag) < 8:
                return f"variable {k + 1} is cut inside its tag at byte {offset} of {size}"
            mtype, nbytes = struct.unpack(endian + "II", tag)
            if mtype >> 16:  # small data element: type and size in 4 bytes, data in the next 4
                length = 8
            else:
                length = 8 + nbytes + ((-nbytes) % 8 if mtype == 14 else 0)  # 14: miMATRIX (padded)
            if offset + 8 + nbytes > size:
                return f"variable {k + 1} needs bytes {offset}-{offset + 8 + nbytes} but the file ends at byte {size}"
            offset += length
            k += 1
    return None


def _open_mat_v5(path: Path, stack: contextlib.ExitStack, high: float, low: float) -> _Source:
    import scipy.io

    try:
        info = scipy.io.whosmat(path)
    except Exception as exc:
        raise DarcyDataError(
            f"cannot read {path} as a MATLAB v5 file ({exc}): it is truncated or corrupted; download it again"
        ) from exc
    found = {name: (shape, cls) for name, shape, cls in info}
    missing = [k for k in ("coeff", "sol") if k not in found]
    truncated = _mat_v5_truncation(path) if missing else None
    if truncated:  # scipy lists the variables before the cut and says nothing: name the real problem
        raise DarcyDataError(
            f"{path} is truncated: {truncated}; it is not a complete MATLAB file (an interrupted download or "
            "copy?), download or copy it again"
        )
    if missing:
        raise DarcyDataError(
            f"{path}: MATLAB file without {' and '.join(missing)} (found {sorted(found) or 'no variables'}). "
            "FNO-paper Darcy files hold coeff (permeability) and sol (pressure), both [N, s, s]"
        )
    _check_grid(path, ("coeff", "sol"), found["coeff"][0], found["sol"][0], "")
    try:
        data = scipy.io.loadmat(path, variable_names=["coeff", "sol"])
        a_all, u_all = np.asarray(data["coeff"]), np.asarray(data["sol"])
    except Exception as exc:
        raise DarcyDataError(
            f"cannot read coeff/sol from {path} ({exc}): the file is truncated or corrupted; download it again"
        ) from exc
    for name, arr in (("coeff", a_all), ("sol", u_all)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DarcyDataError(f"{path}: {name} is a MATLAB {found[name][1]}, expected a numeric array")
    n, s = _check_grid(path, ("coeff", "sol"), a_all.shape, u_all.shape, "")
    attrs = _fno_attrs(
        "fno-mat-v5",
        s,
        variables="; ".join(f"{k} {_shape(v[0])} {v[1]}" for k, v in found.items()),
        a_shape=a_all.shape,
        u_shape=u_all.shape,
        a_dtype=a_all.dtype,
        u_dtype=u_all.dtype,
        header=_mat_header(data.get("__header__", b"")),
        layout="MATLAB v5 arrays as read by scipy.io.loadmat, axes unchanged",
    )
    attrs["source_u_boundary_max_abs"] = _ring_max_abs(u_all, (1, 2))
    return _Source(n, s, lambda i, j: (a_all[i:j], u_all[i:j]), attrs)


def _fno_attrs(
    fmt: str, s: int, *, variables: str, a_shape, u_shape, a_dtype, u_dtype, header: str, layout: str
) -> dict:
    return {
        "source_format": fmt,
        "source_variables": variables,
        "source_variable_a": "coeff",
        "source_variable_u": "sol",
        "source_shape_a": _shape(a_shape),
        "source_shape_u": _shape(u_shape),
        "source_dtype_a": str(np.dtype(a_dtype)),
        "source_dtype_u": str(np.dtype(u_dtype)),
        "source_header": header or "none",
        "source_layout": layout,
        "references": _REFERENCES["fno"],
        "forcing": 1.0,
        "forcing_note": "f = 1: the FNO paper's Darcy benchmark (§5.2); the .mat file does not store it",
        "grid": _node_grid(
            s,
            "assumed: the .mat file stores no coordinates; FNO convention, whose reference code subsamples "
            "421 -> (421 - 1)/r + 1 and uses linspace(0, 1, s)",
        ),
        "axis_mapping": "a[n, i, j] = coeff[n, i, j], u[n, i, j] = sol[n, i, j]: axis 1 stored as y, axis 2 as x "
        "(rows are y in the reference MATLAB generator)",
        "import_note": "coeff -> a and sol -> u, values copied unchanged (cast to the output dtype)",
    }


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


def _open_mat_v73(path: Path, stack: contextlib.ExitStack, high: float, low: float) -> _Source:
    import h5py

    f = stack.enter_context(h5py.File(path, "r"))
    da, du = _h5_dataset(path, f, "coeff", "permeability"), _h5_dataset(path, f, "sol", "pressure")
    classes = {k: _attr_str(d.attrs.get("MATLAB_class", "")) for k, d in (("coeff", da), ("sol", du))}
    for (k, cls), d in zip(classes.items(), (da, du), strict=True):
        if cls in ("cell", "struct", "char") or "MATLAB_empty" in d.attrs:
            what = "an empty array" if "MATLAB_empty" in d.attrs else f"a {cls}"
            raise DarcyDataError(f"{path}: {k} is {what} in MATLAB, expected a numeric [N, s, s] array")
    with open(path, "rb") as fh:
        head = fh.read(128)
    matlab = head.startswith(b"MATLAB") or any(classes.values())
    shape = da.shape
    if len(shape) == 3 and not matlab and shape[1] == shape[2] and shape[0] != shape[1]:
        # Written from Python (row-major) rather than by MATLAB: keep the axes.
        reverse, layout = False, "row-major [N, s, s] (no MATLAB header or MATLAB_class): axes unchanged"
        log.warning("%s: no MATLAB markers and a row-major [N, s, s] layout; axes are kept as stored", path)
    else:
        reverse = True
        layout = "MATLAB v7.3 column-major: h5py shows [s, s, N]; axes reversed back to [N, s, s] (as FNO's MatReader)"
    a_shape = tuple(reversed(da.shape)) if reverse else da.shape
    u_shape = tuple(reversed(du.shape)) if reverse else du.shape
    undo = " after undoing MATLAB's axis order" if reverse else ""
    n, s = _check_grid(path, ("coeff", "sol"), a_shape, u_shape, undo)

    def read(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        if reverse:
            return da[:, :, i:j].transpose(2, 1, 0), du[:, :, i:j].transpose(2, 1, 0)
        return da[i:j], du[i:j]

    header = _mat_header(head[:116]) if head.startswith(b"MATLAB") else ""
    attrs = _fno_attrs(
        "fno-mat-v7.3",
        s,
        variables="; ".join(
            f"{k} {_shape(v.shape)}" + (f" {_attr_str(v.attrs['MATLAB_class'])}" if "MATLAB_class" in v.attrs else "")
            for k, v in f.items()
            if isinstance(v, h5py.Dataset)
        ),
        a_shape=da.shape,
        u_shape=du.shape,
        a_dtype=da.dtype,
        u_dtype=du.dtype,
        header=header,
        layout=layout,
    )
    attrs["source_u_boundary_max_abs"] = _ring_max_abs(du, (0, 1) if reverse else (1, 2))
    return _Source(n, s, read, attrs)


def _open_pt(path: Path, stack: contextlib.ExitStack, high: float, low: float) -> _Source:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"it contains {found.group(1)}" if found else "Weights only load failed"
        raise DarcyDataError(
            f"{path} holds objects other than plain tensors, which torch.load(weights_only=True) refuses to "
            f"unpickle ({what}). neuraloperator Darcy files hold only a dict of tensors; "
            "if you trust this file, load it yourself and save {'x': tensor, 'y': tensor} with torch.save"
        ) from exc
    except Exception as exc:
        raise DarcyDataError(
            f"cannot read {path} as a torch file ({exc}): it is truncated or corrupted; download it again"
        ) from exc
    if not isinstance(data, dict):
        raise DarcyDataError(
            f"{path} holds a {type(data).__name__}, expected a dict {{'x': tensor, 'y': tensor}} "
            "(neuraloperator darcy_*.pt)"
        )
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise DarcyDataError(
            f"{path}: the dict has no {' and '.join(repr(k) for k in missing)} (keys: {sorted(map(str, data))}); "
            "neuraloperator Darcy files hold x (permeability) and y (pressure), both [N, s, s]"
        )
    arrays = {}
    for k in ("x", "y"):
        if not isinstance(data[k], torch.Tensor):
            raise DarcyDataError(f"{path}: {k!r} is a {type(data[k]).__name__}, expected a tensor")
        arrays[k] = data[k].detach().cpu().numpy()
    x, y = arrays["x"], arrays["y"]
    src_x_shape, src_y_shape = x.shape, y.shape
    if x.ndim == 4 and x.shape[1] == 1 and y.ndim == 4 and y.shape[1] == 1:
        x, y = x[:, 0], y[:, 0]  # a singleton channel axis
    if x.ndim == 3 and x.shape[1] != x.shape[2]:
        hint = ""
        if x.shape[2] == 4 * x.shape[1]:
            hint = (
                " (the early darcy_32/darcy_64 Zenodo files had this defect, neuraloperator issue #475; "
                "download the current version)"
            )
        raise DarcyDataError(
            f"{path}: x has shape {_shape(src_x_shape)}: a non-square {x.shape[1]} x {x.shape[2]} grid{hint}. "
            "mano_pde stores square s x s grids of [0,1]^2"
        )
    n, s = _check_grid(path, ("x", "y"), x.shape, y.shape, "")
    if not np.issubdtype(y.dtype, np.floating):
        raise DarcyDataError(f"{path}: y has dtype {y.dtype}, expected floating-point pressure values")
    is_mask = x.dtype == bool
    float_mask = (not is_mask) and np.issubdtype(x.dtype, np.number) and bool(np.all((x == 0) | (x == 1)))
    attrs: dict[str, Any] = {
        "source_format": "neuralop-pt",
        "source_variables": "; ".join(
            f"{k} {_shape(v.shape)} {str(v.dtype).replace('torch.', '')}"
            if isinstance(v, torch.Tensor)
            else f"{k} ({type(v).__name__})"
            for k, v in data.items()
        ),
        "source_variable_a": "x",
        "source_variable_u": "y",
        "source_shape_a": _shape(src_x_shape),
        "source_shape_u": _shape(src_y_shape),
        "source_dtype_a": str(data["x"].dtype).replace("torch.", ""),
        "source_dtype_u": str(data["y"].dtype).replace("torch.", ""),
        "references": _REFERENCES["neuralop"],
        "forcing": 1.0,
        "forcing_note": "assumed f = 1 (the FNO Darcy benchmark); the .pt file does not store the forcing",
        "grid": _node_grid(
            s,
            "assumed: the .pt file stores no coordinates and neuraloperator does not document the grid of its "
            "Darcy files; FNO convention. source_u_boundary_max_abs = 0 supports a grid including the boundary",
        ),
        "axis_mapping": "a[n, i, j] = x[n, i, j], u[n, i, j] = y[n, i, j]: axis 1 stored as y, axis 2 as x",
        "source_u_boundary_max_abs": _ring_max_abs(y, (1, 2)),
    }
    if is_mask or float_mask:
        kind = "boolean" if is_mask else "0/1-valued float"
        attrs.update(
            permeability_map="piecewise",
            permeability_high=high,
            permeability_low=low,
            import_note=(
                f"x is a {kind} mask that has lost the permeability values: mapped True/1 -> {high:g} and "
                f"False/0 -> {low:g} (a = high where the mask is set). Defaults 12 and 3 are the FNO paper's "
                "two values (Li et al. 2020, §5.2: 12 where the Gaussian field is >= 0, 3 where < 0); "
                "neuraloperator does not document them (it trains on the mask cast to 0/1), and the reference "
                "MATLAB demo.m uses 12 and 4. Override with high=/low= (mano-pde import --high/--low). "
                "y -> u unchanged. Recover the mask as a == permeability_high"
            ),
        )
        x = _mask_to_permeability(x, high, low)
        log.info("%s: %s permeability mask mapped True -> %g, False -> %g", path, kind, high, low)
    else:
        attrs["import_note"] = "x -> a and y -> u, values copied unchanged (cast to the output dtype)"
    return _Source(n, s, lambda i, j: (x[i:j], y[i:j]), attrs)


def _open_pdebench(path: Path, stack: contextlib.ExitStack, high: float, low: float) -> _Source:
    import h5py

    f = stack.enter_context(h5py.File(path, "r"))
    nu = _h5_dataset(path, f, "nu", "permeability")
    tensor = _h5_dataset(path, f, "tensor", "solution")
    if tensor.ndim == 4 and tensor.shape[1] != 1:
        raise DarcyDataError(
            f"{path}: tensor has shape {_shape(tensor.shape)}, expected [N, 1, s, s] (one steady state per "
            f"sample); {tensor.shape[1]} time steps are not a Darcy dataset"
        )
    u_shape = tensor.shape[:1] + tensor.shape[2:] if tensor.ndim == 4 else tensor.shape
    n, s = _check_grid(path, ("nu", "tensor"), nu.shape, u_shape, "")
    coords = {}
    for axis in ("x", "y"):
        d = _h5_dataset(path, f, f"{axis}-coordinate", f"{axis} coordinates")
        c = np.asarray(d[()], dtype="f8").ravel()
        if c.shape != (s,) or not np.all(np.isfinite(c)) or not np.all(np.diff(c) > 0):
            raise DarcyDataError(
                f"{path}: {axis}-coordinate has shape {_shape(d.shape)} (first {c[:3]}), expected {s} strictly "
                "increasing finite values, one per grid point"
            )
        coords[axis] = c
    centres = (np.arange(s) + 0.5) / s
    cell = all(np.allclose(c, centres, rtol=0, atol=1e-6) for c in coords.values())
    src_attrs = {k: f.attrs[k] for k in f.attrs}
    attrs: dict[str, Any] = {
        "source_format": "pdebench-hdf5",
        "source_variables": "; ".join(
            f"{k} {_shape(v.shape)} {v.dtype}" for k, v in f.items() if isinstance(v, h5py.Dataset)
        ),
        "source_variable_a": "nu",
        "source_variable_u": "tensor",
        "source_shape_a": _shape(nu.shape),
        "source_shape_u": _shape(tensor.shape),
        "source_dtype_a": str(nu.dtype),
        "source_dtype_u": str(tensor.dtype),
        "references": _REFERENCES["pdebench"],
        "grid": (
            f"cell-centred {s} x {s} grid of [0,1]^2 (PDEBench finite volumes): x and y hold the source's "
            "x-coordinate and y-coordinate values"
            + (", the cell centres (i + 1/2)/s" if cell else f", from {coords['x'][0]:.6g} to {coords['x'][-1]:.6g}")
            + "; the boundary is not a grid point, so subsampled views are refused: every r-th cell centre is "
            "not a cell-centred grid of the coarser resolution"
        ),
        "axis_mapping": "a[n, j, i] = nu[n, i, j], u[n, j, i] = tensor[n, 0, i, j]: PDEBench indexes its arrays "
        "[sample, x, y] (its generator builds nu from x-coordinates along axis 1), mano_pde stores (sample, y, x)",
        "import_note": "nu -> a and tensor[:, 0] -> u (the steady state of PDEBench's time-dependent run), "
        "transposed to (sample, y, x), values unchanged (cast to the output dtype); the source coordinates are "
        "kept in x and y",
    }
    for k, v in src_attrs.items():
        attrs["source_attr_" + re.sub(r"\W", "_", k)] = _plain(v)
    beta = src_attrs.get("beta")
    if beta is None:
        m = re.search(r"beta([0-9.eE+-]+?)(?:_|\.hdf5|\.h5|$)", path.name)
        if m:
            beta = m.group(1)
            attrs["forcing_note"] = f"beta = {beta} taken from the file name: the file has no beta attribute"
        else:
            attrs["forcing_note"] = "unknown: the file has no beta attribute and its name carries none"
            log.warning("%s: no beta attribute; the forcing is unknown", path)
    else:
        attrs["forcing_note"] = "f = beta, the root attribute of the PDEBench file"
    if beta is not None:
        try:
            attrs["forcing"] = float(np.asarray(beta).ravel()[0])
        except (TypeError, ValueError) as exc:
            raise DarcyDataError(f"{path}: beta = {beta!r} is not a number") from exc

    def read(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        u = tensor[i:j, 0] if tensor.ndim == 4 else tensor[i:j]
        return nu[i:j].transpose(0, 2, 1), u.transpose(0, 2, 1)

    return _Source(n, s, read, attrs, coords=coords)


_OPENERS: dict[str, Callable[[Path, contextlib.ExitStack, float, float], _Source]] = {
    "fno-mat-v5": _open_mat_v5,
    "fno-mat-v7.3": _open_mat_v73,
    "neuralop-pt": _open_pt,
    "pdebench-hdf5": _open_pdebench,
}


# --------------------------------------------------------------------------------------------- import
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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
    src, out = Path(src), Path(out)
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

    from .. import __version__

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
            attrs["source_sha256"] = _sha256(src)
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
            out, n, s, attrs, dtype=dtype, complevel=complevel, coords=source.coords, var_attrs=var_attrs
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
