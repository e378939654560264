"""Darcy files as torch datasets in neuraloperator's ``{"x", "y"}`` convention, and normalisation.

The permeability ``a`` is the input ``x`` (one channel) and the pressure ``u`` the target ``y`` (one channel);
grid coordinates are not data: models add them as a positional embedding, so the same data serves any grid.
Samples are read once into memory at the requested resolution (:func:`mano_pde.data.io.load_arrays`), so an
epoch never waits on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import load_arrays

__all__ = ["DarcyTorchDataset", "fit_normalizers", "normalizer_to_dict", "normalizer_from_dict"]


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
    for key in ("x", "y"):
        data = torch.cat([getattr(d, key).reshape(-1).double() for d in datasets])
        mean = data.mean().reshape(1, 1, 1, 1).float()
        std = data.std().reshape(1, 1, 1, 1).float()
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


def normalizer_from_dict(record: dict):
    """Rebuild a ``UnitGaussianNormalizer`` from :func:`normalizer_to_dict` output."""
    from neuralop.data.transforms.normalizers import UnitGaussianNormalizer

    mean = torch.tensor(record["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(record["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
    return UnitGaussianNormalizer(mean=mean, std=std, eps=record.get("eps", 1e-7), dim=[0, 2, 3])
