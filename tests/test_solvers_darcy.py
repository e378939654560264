"""Finite-difference Darcy solver: convergence order, matrix properties, validation."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from solvers import assemble_darcy, check_permeability, solve_darcy

PI = np.pi


def _manufactured(s: int):
    """u = sin(pi x) sin(pi y) (zero on the boundary) with a smooth, anisotropic a; f = -div(a grad u)."""
    x = np.linspace(0.0, 1.0, s)
    X, Y = np.meshgrid(x, x, indexing="xy")  # arrays indexed [y, x]
    a = 2.0 + np.sin(2 * PI * X) * np.cos(PI * Y) + 0.5 * X * Y
    ax = 2 * PI * np.cos(2 * PI * X) * np.cos(PI * Y) + 0.5 * Y
    ay = -PI * np.sin(2 * PI * X) * np.sin(PI * Y) + 0.5 * X
    u = np.sin(PI * X) * np.sin(PI * Y)
    ux = PI * np.cos(PI * X) * np.sin(PI * Y)
    uy = PI * np.sin(PI * X) * np.cos(PI * Y)
    lap = -2 * PI**2 * u
    f = -(ax * ux + ay * uy + a * lap)
    return a, f, u


@pytest.mark.parametrize("face", ["harmonic", "arithmetic"])
def test_manufactured_solution_second_order(face):
    sizes = (17, 33, 65)
    errors = []
    for s in sizes:
        a, f, u = _manufactured(s)
        errors.append(np.abs(solve_darcy(a, f, face=face) - u).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.15), (errors, orders)
    assert errors[-1] < 1e-3


def test_constant_coefficient_matches_poisson_series():
    # -Δu = 1 on the unit square: u(1/2, 1/2) = 0.0736713532814... (classical series value)
    u = solve_darcy(np.ones((129, 129)))
    assert u[64, 64] == pytest.approx(0.07367135328, rel=2e-4)


@pytest.mark.parametrize("face", ["harmonic", "arithmetic"])
def test_matrix_is_symmetric_positive_definite(face):
    rng = np.random.default_rng(1)
    a = rng.uniform(0.1, 10.0, size=(9, 9))
    A, _ = assemble_darcy(a, face=face)
    assert abs(A - A.T).max() == 0.0
    eig = np.linalg.eigvalsh(A.toarray())
    assert eig.min() > 0.0
    # M-matrix sign pattern: positive diagonal, non-positive off-diagonal
    D = A.diagonal()
    assert np.all(D > 0)
    off = A - np.diag(D)
    assert off.max() <= 0.0


def test_residual_boundary_and_maximum_principle():
    rng = np.random.default_rng(2)
    s = 41
    a = np.exp(rng.standard_normal((s, s)))
    f = rng.uniform(0.0, 2.0, size=(s, s))
    u = solve_darcy(a, f)
    assert np.all(u[0] == 0) and np.all(u[-1] == 0) and np.all(u[:, 0] == 0) and np.all(u[:, -1] == 0)
    A, b = assemble_darcy(a, f)
    res = A @ u[1:-1, 1:-1].ravel() - b
    assert np.linalg.norm(res) / np.linalg.norm(b) < 1e-12
    assert u.min() >= 0.0 and u[1:-1, 1:-1].min() > 0.0


def test_face_averages_agree_for_constant_a_and_differ_otherwise():
    a = np.full((21, 21), 3.0)
    np.testing.assert_allclose(solve_darcy(a, face="harmonic"), solve_darcy(a, face="arithmetic"), rtol=1e-12)
    a[5:12, 3:9] = 12.0
    assert not np.allclose(solve_darcy(a, face="harmonic"), solve_darcy(a, face="arithmetic"))


def test_solution_scales_inversely_with_permeability():
    rng = np.random.default_rng(3)
    a = rng.uniform(1, 5, size=(17, 17))
    np.testing.assert_allclose(solve_darcy(4 * a), solve_darcy(a) / 4, rtol=1e-10)


def test_orderings_give_the_same_solution():
    rng = np.random.default_rng(4)
    a = np.where(rng.standard_normal((33, 33)) > 0, 12.0, 3.0)
    ref = solve_darcy(a, permc_spec="NATURAL")
    np.testing.assert_allclose(solve_darcy(a), ref, rtol=1e-10, atol=1e-14)
    A, b = assemble_darcy(a)
    np.testing.assert_allclose(spla.spsolve(A, b), ref[1:-1, 1:-1].ravel(), rtol=1e-10)


@pytest.mark.parametrize(
    ("a", "match"),
    [
        (np.full((9, 9), np.nan), "non-finite"),
        (np.full((9, 9), np.inf), "non-finite"),
        (-np.ones((9, 9)), "strictly positive"),
        (np.zeros((9, 9)), "strictly positive"),
        (np.ones((9, 8)), "square"),
        (np.ones((2, 2)), "too small"),
        (np.ones(9), "2-D"),
        (np.ones((3, 9, 9)), "2-D"),
    ],
)
def test_bad_permeability_is_rejected_clearly(a, match):
    with pytest.raises(ValueError, match=match):
        solve_darcy(a)


def test_single_bad_value_is_counted():
    a = np.ones((9, 9))
    a[4, 4] = -1.0
    with pytest.raises(ValueError, match=r"1 value\(s\) are <= 0"):
        check_permeability(a)


@pytest.mark.parametrize("f", [np.ones((8, 8)), np.nan])
def test_bad_forcing_is_rejected(f):
    with pytest.raises(ValueError, match="forcing"):
        solve_darcy(np.ones((9, 9)), f)


def test_unknown_face_average():
    with pytest.raises(ValueError, match="face average"):
        solve_darcy(np.ones((9, 9)), face="geometric")
