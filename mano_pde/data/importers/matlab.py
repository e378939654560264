"""FNO-paper MATLAB readers: ``fno-mat-v5`` (scipy, loaded whole) and ``fno-mat-v7.3`` (HDF5, read in chunks)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..schema import DarcyDataError
from .common import _REFERENCES, _attr_str, _check_grid, _h5_dataset, _no_coords_attrs, _shape, _Source, log


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
        u_all,
        (1, 2),
        variables="; ".join(f"{k} {_shape(v[0])} {v[1]}" for k, v in found.items()),
        a_shape=a_all.shape,
        u_shape=u_all.shape,
        a_dtype=a_all.dtype,
        u_dtype=u_all.dtype,
        header=_mat_header(data.get("__header__", b"")),
        layout="MATLAB v5 arrays as read by scipy.io.loadmat, axes unchanged",
    )
    return _Source(n, s, lambda i, j: (a_all[i:j], u_all[i:j]), attrs)


def _fno_attrs(
    fmt: str, u, u_axes, *, variables: str, a_shape, u_shape, a_dtype, u_dtype, header: str, layout: str
) -> dict:
    return _no_coords_attrs(
        fmt,
        u,
        u_axes,
        grid_note="the .mat file stores no coordinates: geometry decided from u (FNO's reference code treats "
        "these grids as linspace(0, 1, s) nodes and subsamples 421 -> (421 - 1)/r + 1)",
        forcing_note="f = 1: the FNO paper's Darcy benchmark (§5.2); the .mat file does not store it",
        variables=variables,
        names=("coeff", "sol"),
        shapes=(a_shape, u_shape),
        dtypes=(str(np.dtype(a_dtype)), str(np.dtype(u_dtype))),
        extra={"source_header": header or "none", "source_layout": layout},
        references=_REFERENCES["fno"],
        axis_mapping="a[n, i, j] = coeff[n, i, j], u[n, i, j] = sol[n, i, j]: axis 1 stored as y, axis 2 as x "
        "(rows are y in the reference MATLAB generator)",
        import_note="coeff -> a and sol -> u, values copied unchanged (cast to the output dtype)",
    )


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
        du,
        (0, 1) if reverse else (1, 2),
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
    return _Source(n, s, read, attrs)
