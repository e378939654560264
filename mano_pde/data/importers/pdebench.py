"""PDEBench ``2D_DarcyFlow_beta{β}_Train.hdf5`` reader (``pdebench-hdf5``): read in chunks of samples, transposed
from PDEBench's ``[sample, x, y]`` to mano_pde's ``(sample, y, x)``."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np

from ..schema import DarcyDataError
from .common import _REFERENCES, _check_grid, _h5_dataset, _plain, _shape, _Source, _source_attrs, log


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
    src_attrs = {k: f.attrs[k] for k in f.attrs}
    attrs = _source_attrs(
        "pdebench-hdf5",
        variables="; ".join(f"{k} {_shape(v.shape)} {v.dtype}" for k, v in f.items() if isinstance(v, h5py.Dataset)),
        names=("nu", "tensor"),
        shapes=(nu.shape, tensor.shape),
        dtypes=(str(nu.dtype), str(tensor.dtype)),
        references=_REFERENCES["pdebench"],
        grid="PDEBench finite volumes: x and y hold the source's x-coordinate and y-coordinate values",
        axis_mapping="a[n, j, i] = nu[n, i, j], u[n, j, i] = tensor[n, 0, i, j]: PDEBench indexes its arrays "
        "[sample, x, y] (its generator builds nu from x-coordinates along axis 1), mano_pde stores (sample, y, x)",
        import_note="nu -> a and tensor[:, 0] -> u (the steady state of PDEBench's time-dependent run), "
        "transposed to (sample, y, x), values unchanged (cast to the output dtype); the source coordinates are "
        "kept in x and y",
    )
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
