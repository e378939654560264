"""neuraloperator's ``darcy_{train,test}_{res}.pt`` reader (``neuralop-pt``): torch is imported only here, when
such a file is opened, and loads it whole (``torch.load(weights_only=True)``: plain tensors only)."""

from __future__ import annotations

import contextlib
import pickle
import re
from pathlib import Path

import numpy as np

from ..schema import DarcyDataError
from .common import _REFERENCES, _check_grid, _mask_to_permeability, _no_coords_attrs, _shape, _Source, log


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
    attrs = _no_coords_attrs(
        "neuralop-pt",
        y,
        (1, 2),
        grid_note="the .pt file stores no coordinates and neuraloperator does not document the grid of its Darcy "
        "files: geometry decided from u (its small Darcy files are x_i = i/s grids, neuralop's own GridEmbeddingND "
        "coordinates)",
        forcing_note="assumed f = 1 (the FNO Darcy benchmark); the .pt file does not store the forcing",
        variables="; ".join(
            f"{k} {_shape(v.shape)} {str(v.dtype).replace('torch.', '')}"
            if isinstance(v, torch.Tensor)
            else f"{k} ({type(v).__name__})"
            for k, v in data.items()
        ),
        names=("x", "y"),
        shapes=(src_x_shape, src_y_shape),
        dtypes=(str(data["x"].dtype).replace("torch.", ""), str(data["y"].dtype).replace("torch.", "")),
        references=_REFERENCES["neuralop"],
        axis_mapping="a[n, i, j] = x[n, i, j], u[n, i, j] = y[n, i, j]: axis 1 stored as y, axis 2 as x",
    )
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
