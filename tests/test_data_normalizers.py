"""The normalisers: neuralop's UnitGaussianNormalizer with float64 statistics pooled over every training grid."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer

from mano_pde.data.torch_dataset import fit_normalizers, normalizer_from_dict, normalizer_to_dict


def _sets(sizes: list[tuple[int, int]], seed: int = 0) -> list[SimpleNamespace]:
    """Stand-ins for DarcyTorchDataset (fit_normalizers reads x, y and path): piecewise a, positive u."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, s in sizes:
        field = torch.randn(n, 1, s, s, generator=g)
        out.append(SimpleNamespace(x=torch.where(field >= 0, 12.0, 3.0), y=field.abs() * 1e-2, path="train.nc"))
    return out


@pytest.mark.parametrize("sizes", [[(6, 9)], [(5, 9), (4, 17)], [(3, 5), (2, 9), (2, 17)]])
def test_statistics_are_neuralop_fit_of_the_pooled_float64_values(sizes):
    datasets = _sets(sizes)
    for norm, key in zip(fit_normalizers(datasets), ("x", "y"), strict=True):
        assert isinstance(norm, UnitGaussianNormalizer)
        pooled = torch.cat([getattr(d, key).reshape(-1).double() for d in datasets])
        ref = UnitGaussianNormalizer(dim=[0, 2, 3])
        ref.fit(pooled.view(1, 1, -1, 1))
        assert norm.mean.dtype == norm.std.dtype == torch.float32
        assert torch.equal(norm.mean, ref.mean.float()) and torch.equal(norm.std, ref.std.float())
        assert norm.eps == ref.eps == 1e-7
        back = normalizer_from_dict(normalizer_to_dict(norm))  # the normalizers.json record is exact
        assert torch.equal(back.mean, norm.mean) and torch.equal(back.std, norm.std) and back.eps == norm.eps


def test_neuralop_pooling_by_partial_fit_is_not_the_unbiased_std():
    """Why fit_normalizers does not pool with partial_fit (module docstring): std * sqrt(n / (n - 1))."""
    (data,) = _sets([(4, 9)])
    x = data.x.double()
    pooled = UnitGaussianNormalizer(dim=[0, 2, 3])
    for sample in x:
        pooled.partial_fit(sample.unsqueeze(0))
    n = x.numel()
    torch.testing.assert_close(pooled.mean.reshape(()), x.mean())
    torch.testing.assert_close(pooled.std.reshape(()), x.std() * (n / (n - 1)) ** 0.5)
    assert not torch.isclose(pooled.std.reshape(()), x.std(), rtol=1e-5, atol=0)
