"""Darcy files as torch datasets in neuraloperator's ``{"x", "y"}`` convention, and normalisation.

The permeability ``a`` is the input ``x`` (one channel) and the pressure ``u`` the target ``y`` (one channel);
grid coordinates are not data: models add them as a positional embedding, so the same data serves any grid.
Samples are read once into memory at the requested resolution (:func:`mano_pde.data.io.load_arrays`), so an
epoch never waits on disk.

Normalisation: neuraloperator's normaliser, fitted and stored here
------------------------------------------------------------------
The normalisers are neuralop's ``UnitGaussianNormalizer`` (its transform ``(x - mean) / (std + eps)``, its
inverse, ``eps = 1e-7``); :func:`fit_normalizers` computes their mean and standard deviation itself, as the
float64 mean and unbiased standard deviation of every training value of every grid, cast to float32. Why
not neuralop's fitting (checked against neuraloperator 2.0.0):

* ``fit(x)`` takes one tensor and reduces in its dtype. Training sets at several grids do not stack into
  one tensor, and on float32 data the statistics differ in the last bits (mean off by 4.8e-7 on 100 samples
  at 129^2).
* ``partial_fit`` / ``from_dataset``, neuralop's way of pooling batches, accumulate ``E[x]`` and ``E[x^2]``
  in the data's dtype and set ``std = sqrt(E[x^2] - E[x]^2) * n / (n - 1)``: the unbiased standard
  deviation times ``sqrt(n / (n - 1))``, about ``1 + 1 / (2 n)`` for ``n`` pooled values. Measured: std
  larger by 8.5e-5 (relative) for 5780 values, by 2.5e-6 for 265700; mean off by up to 1.4e-6.
* ``fit`` on the pooled float64 values viewed as one batch (``[1, 1, N, 1]``, ``dim=[0, 2, 3]``) gives the
  same mean and standard deviation bit for bit (checked on 36 pools of 1 to 3 grids with 1 and 2
  threads; ``tests/test_data_normalizers.py`` keeps three), but it also computes ``E[x^2]`` of the pool,
  a second float64 array the size of the training data (1.4 GB more for 1000 samples at 421^2) for a
  value nothing uses.

The record is JSON (``normalizers.json``: mean, std, eps; :func:`normalizer_to_dict`), not the module's
``state_dict`` (a torch file): readable, loaded without unpickling, and the format of every existing run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserInputError
from .io import load_arrays

__all__ = ["DarcyTorchDataset", "fit_normalizers", "load_normalizers", "normalizer_to_dict", "normalizer_from_dict"]


class DarcyTorchDataset(Dataset):
    """Samples of a Darcy file at one resolution, as ``{"x": [1, s, s], "y": [1, s, s]}`` float32 tensors.

    Parameters
    ----------
    path : path-like
        A mano_pde Darcy file.
    resolution : int, optional
        A reachable grid size (default: the file's own).
    indices : sequence of int, optional
        Which samples (default: all).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        arrays = load_arrays(path, resolution, indices)
        self.path = os.fspath(path)
        self.x = torch.from_numpy(arrays["a"]).unsqueeze(1)
        self.y = torch.from_numpy(arrays["u"]).unsqueeze(1)
        self.resolution = int(self.x.shape[-1])
        n = self.x.shape[0]
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}

    def __repr__(self) -> str:
        return f"DarcyTorchDataset({self.path!r}, resolution={self.resolution}, n={len(self)})"


def fit_normalizers(datasets: Sequence[DarcyTorchDataset]):
    """Per-channel unit-Gaussian normalisers of ``x`` and ``y`` fitted on training data only.

    The statistics are one mean and one standard deviation per channel (neuraloperator's
    ``UnitGaussianNormalizer(dim=[0, 2, 3])``), pooled over every sample and grid point of every given
    dataset. Unlike pointwise statistics (one per grid point, as in the FNO paper's code) they do not depend
    on the grid, so the same normaliser is valid at every test resolution.
    """
    from neuralop.data.transforms.normalizers import UnitGaussianNormalizer

    out = []
    for key, name in (("x", "permeability a"), ("y", "pressure u")):
        data = torch.cat([getattr(d, key).reshape(-1).double() for d in datasets])
        mean = data.mean().reshape(1, 1, 1, 1).float()
        std = data.std().reshape(1, 1, 1, 1).float()
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and float(std.min()) > 0):
            files = sorted({d.path for d in datasets})
            raise UserInputError(
                f"the training {name} of {', '.join(files)} has mean {float(mean.min()):g} and standard deviation "
                f"{float(std.min()):g}: a normaliser needs a finite, non-zero spread (constant fields, e.g. u = 0 "
                "everywhere, give none); train on data whose fields vary"
            )
        out.append(UnitGaussianNormalizer(mean=mean, std=std, dim=[0, 2, 3]))
    return tuple(out)


def normalizer_to_dict(normalizer) -> dict:
    """A JSON-friendly record of a fitted ``UnitGaussianNormalizer``."""
    return {
        "class": "neuralop.data.transforms.normalizers.UnitGaussianNormalizer",
        "dim": [0, 2, 3],
        "mean": normalizer.mean.reshape(-1).tolist(),
        "std": normalizer.std.reshape(-1).tolist(),
        "eps": normalizer.eps,
    }


def normalizer_from_dict(record: dict, source: str | os.PathLike | None = None):
    """Rebuild a ``UnitGaussianNormalizer`` from :func:`normalizer_to_dict` output.

    Parameters
    ----------
    record : dict
        ``{"mean": [...], "std": [...], "eps": ...}``.
    source : path-like, optional
        The file the record came from, named in the error message.

    Raises
    ------
    mano_pde.errors.UserInputError
        A malformed record, or a degenerate normaliser (a standard deviation that is 0, negative or not
        finite, or a non-finite mean): de-normalised predictions would be NaN or constant.
    """
    from neuralop.data.transforms.normalizers import UnitGaussianNormalizer

    where = f"{os.fspath(source)}: " if source is not None else ""
    try:
        mean = torch.tensor(record["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.tensor(record["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserInputError(f"{where}not a normaliser record ({type(exc).__name__}: {exc})") from None
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and float(std.min()) > 0):
        raise UserInputError(
            f"{where}degenerate normaliser (mean {mean.reshape(-1).tolist()}, std {std.reshape(-1).tolist()}): "
            "the standard deviation must be finite and > 0, or every prediction is NaN or constant. The run was "
            "trained on constant or non-finite data; retrain it on a valid data file"
        )
    return UnitGaussianNormalizer(mean=mean, std=std, eps=record.get("eps", 1e-7), dim=[0, 2, 3])


def load_normalizers(path: str | os.PathLike):
    """The ``(x, y)`` normalisers of a run's ``normalizers.json``, checked (see :func:`normalizer_from_dict`).

    Raises
    ------
    mano_pde.errors.UserInputError
        The file is not JSON, lacks ``x``/``y``, or holds a degenerate normaliser; the message names the file.
    """
    from mano_pde.models.checkpoint import read_json

    record = read_json(path, "the normalisers of a run")
    if not isinstance(record, dict) or not {"x", "y"} <= set(record):
        raise UserInputError(f"{os.fspath(path)}: expected the normalisers 'x' and 'y' of a run")
    return (
        normalizer_from_dict(record["x"], f"{os.fspath(path)} (x, permeability)"),
        normalizer_from_dict(record["y"], f"{os.fspath(path)} (y, pressure)"),
    )
