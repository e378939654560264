"""Gaussian random fields and permeability maps."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.fft

from solvers import grf_spectrum, lognormal_map, piecewise_constant_map, sample_grf


@pytest.mark.parametrize(("alpha", "tau"), [(2.0, 3.0), (1.5, 5.0)])
def test_empirical_spectrum_matches_covariance(alpha, tau):
    s, n = 16, 4000
    fields = sample_grf(s, np.random.default_rng(0), n=n, alpha=alpha, tau=tau)
    coeffs = scipy.fft.dctn(fields, type=2, norm="ortho", axes=(-2, -1))
    empirical = (coeffs**2).mean(axis=0)
    expected = (s * grf_spectrum(s, alpha, tau)) ** 2
    assert empirical[0, 0] < 1e-20  # the mean mode is removed
    ratio = empirical[expected > 0] / expected[expected > 0]
    # mean of n chi-square(1) variables: relative std sqrt(2/n) ~ 2.2 %; allow 5 sigma
    assert np.all(np.abs(ratio - 1.0) < 5 * np.sqrt(2.0 / n)), ratio.min()
    # and it decays as the covariance says: |k|^(-2 alpha) at large |k|
    assert expected[1, 0] > expected[4, 0] > expected[15, 15]


def test_pointwise_variance_does_not_depend_on_resolution():
    var = [sample_grf(s, np.random.default_rng(1), n=400).var(axis=0).mean() for s in (32, 64)]
    assert var[0] == pytest.approx(var[1], rel=0.1)


def test_same_seed_same_field_and_batch_shapes():
    f1 = sample_grf(20, np.random.default_rng(42))
    f2 = sample_grf(20, np.random.default_rng(42))
    f3 = sample_grf(20, np.random.default_rng(43))
    assert f1.shape == (20, 20)
    np.testing.assert_array_equal(f1, f2)
    assert not np.allclose(f1, f3)
    assert sample_grf(20, np.random.default_rng(0), n=3).shape == (3, 20, 20)


def test_piecewise_map_gives_exactly_two_values():
    field = sample_grf(33, np.random.default_rng(5))
    a = piecewise_constant_map(field)
    assert set(np.unique(a)) == {3.0, 12.0}
    np.testing.assert_array_equal(a == 12.0, field >= 0)
    assert set(np.unique(piecewise_constant_map(field, high=2.0, low=0.5))) == {0.5, 2.0}


def test_lognormal_map_is_positive_and_smooth_in_sigma():
    field = sample_grf(17, np.random.default_rng(6))
    a = lognormal_map(field, sigma=0.5)
    assert np.all(a > 0)
    np.testing.assert_allclose(np.log(a), 0.5 * field)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": -1.0}, "alpha"), ({"tau": 0.0}, "tau"), ({"n": 0}, "n must")],
)
def test_bad_grf_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_grf(8, np.random.default_rng(0), **kwargs)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="default_rng"):
        sample_grf(8, 0)


def test_bad_map_values():
    with pytest.raises(ValueError, match="positive"):
        piecewise_constant_map(np.zeros((3, 3)), high=-1.0)


def test_solvers_import_without_torch():
    code = "import sys, solvers, mano_pde.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
