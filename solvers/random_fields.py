"""Gaussian random fields and permeability maps for the Darcy benchmark.

The fields follow the FNO Darcy benchmark (Li et al., "Fourier Neural Operator for Parametric Partial
Differential Equations", arXiv 2010.08895, App. A.3.2): a centred Gaussian measure
``N(0, (-Δ + τ² I)^(-α))`` with zero-Neumann boundary conditions on the unit square, sampled by a
Karhunen–Loève expansion on the cosine basis and evaluated with an inverse type-II DCT, exactly as the
reference MATLAB generator (``GRF.m``) of the neuraloperator repository does.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = [
    "GRF_SCALE_RANGE",
    "check_grf_parameters",
    "grf_spectrum",
    "sample_grf",
    "piecewise_constant_map",
    "lognormal_map",
    "PERMEABILITY_MAPS",
]


def grf_spectrum(s: int, alpha: float = 2.0, tau: float = 3.0) -> np.ndarray:
    """Square roots of the covariance eigenvalues on the cosine basis.

    Parameters
    ----------
    s : int
        Number of grid points per direction.
    alpha, tau : float
        Smoothness and inverse length scale of ``(-Δ + τ² I)^(-α)``.

    Returns
    -------
    numpy.ndarray
        ``[s, s]`` array ``τ^(α-1) (π² (k1² + k2²) + τ²)^(-α/2)`` for wave numbers ``k1, k2 = 0 … s-1``,
        with the constant mode set to zero (the benchmark's fields have no mean mode).
    """
    _check_grf_args(s, alpha, tau)
    alpha, tau = float(alpha), float(tau)
    k = np.arange(s, dtype=np.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    try:  # the reference formula (bit-identical to earlier files); the constant mode may overflow: it is dropped
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            coef = tau ** (alpha - 1.0) * (np.pi**2 * k2 + tau**2) ** (-alpha / 2.0)
        coef[0, 0] = 0.0
        direct = bool(np.isfinite(coef).all())
    except OverflowError:  # tau ** (alpha - 1) or tau ** 2 beyond float64, although the product is not
        direct = False
    if not direct:
        with np.errstate(under="ignore"):
            coef = np.exp(_log_spectrum(k2, alpha, tau))
        coef[0, 0] = 0.0
    return coef


def _log_spectrum(k2: np.ndarray | float, alpha: float, tau: float) -> np.ndarray:
    """``log`` of ``τ^(α-1) (π² k² + τ²)^(-α/2) = τ^(-1) (1 + π² k² / τ²)^(-α/2)``, free of overflow."""
    with np.errstate(divide="ignore"):  # k2 = 0: log 0 = -inf, and logaddexp(0, -inf) = 0
        ratio = np.log(np.pi**2 * np.asarray(k2, dtype=np.float64)) - 2.0 * np.log(tau)
    return -np.log(tau) - 0.5 * alpha * np.logaddexp(0.0, ratio)


#: The range of the field's scale (the standard deviation of its largest mode, the first coefficient of
#: :func:`grf_spectrum`) that float64 computes reliably: below it the field underflows towards 0 (every sample
#: would get the same constant permeability), above it its variance overflows.
GRF_SCALE_RANGE = (1e-150, 1e150)


def check_grf_parameters(alpha: float, tau: float) -> None:
    """Refuse ``alpha``/``tau`` whose random field float64 cannot compute.

    The field's scale is the largest coefficient of :func:`grf_spectrum`, ``τ^(α-1) (π² + τ²)^(-α/2)`` (the
    modes ``(0, 1)`` and ``(1, 0)``), computed here without overflow. It must lie in :data:`GRF_SCALE_RANGE`:
    ``alpha = 1e300`` gives a scale of about ``10^-1.6e299`` (the field is 0 everywhere, the piecewise map gives
    a constant permeability), ``tau = 1e300`` one of ``1e-300``.

    Raises
    ------
    ValueError
        ``alpha`` or ``tau`` not positive and finite, or a scale outside :data:`GRF_SCALE_RANGE`.
    """
    try:
        alpha, tau = float(alpha), float(tau)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("alpha and tau must be positive numbers that float64 holds") from None
    for name, v in (("alpha", alpha), ("tau", tau)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v}")
    log10_scale = float(_log_spectrum(1.0, alpha, tau)) / np.log(10.0)
    low, high = (float(np.log10(v)) for v in GRF_SCALE_RANGE)
    if not low <= log10_scale <= high:
        effect = (
            "float64 loses so small a field (it underflows towards 0: every sample would get the same constant "
            "permeability)"
            if log10_scale < low
            else "float64 cannot hold its variance"
        )
        raise ValueError(
            f"alpha={alpha:g} with tau={tau:g} gives a random field of scale about 10^{log10_scale:.4g} (the "
            f"standard deviation of its largest mode, tau^(alpha-1) (pi^2 + tau^2)^(-alpha/2)); {effect}. Choose "
            f"alpha and tau giving a scale between 10^{low:.0f} and 10^{high:.0f} (the FNO benchmark's alpha=2, "
            "tau=3 give 0.16)"
        )


def sample_grf(
    s: int,
    rng: np.random.Generator,
    *,
    n: int | None = None,
    alpha: float = 2.0,
    tau: float = 3.0,
) -> np.ndarray:
    """Sample Gaussian random fields with covariance ``(-Δ + τ² I)^(-α)`` (zero-Neumann).

    The Karhunen–Loève coefficients ``s · sqrt(λ_k) · ξ_k`` (ξ standard normal) are mapped to the grid by an
    orthonormal inverse 2-D DCT-II, which evaluates ``Σ_k sqrt(λ_k) ξ_k φ_k`` with the L²-normalised cosine
    eigenfunctions ``φ_k`` at the cell centres ``(j + 1/2)/s``; the result is therefore a discretisation of
    one continuous field, with pointwise variance independent of ``s``. This matches ``GRF.m`` of the FNO
    reference generator.

    Parameters
    ----------
    s : int
        Grid points per direction (``s >= 2``).
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same fields.
    n : int, optional
        Batch size. ``None`` returns one ``[s, s]`` field, an integer returns ``[n, s, s]``.
    alpha, tau : float
        Covariance parameters (defaults: the FNO benchmark's α = 2, τ = 3).

    Returns
    -------
    numpy.ndarray
        float64 field(s).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (got {type(rng).__name__}); "
            "create one with numpy.random.default_rng(seed)"
        )
    coef = grf_spectrum(s, alpha, tau)
    shape = (s, s) if n is None else (int(n), s, s)
    if n is not None and int(n) < 1:
        raise ValueError(f"n must be a positive number of fields, got {n}")
    xi = rng.standard_normal(shape)
    return scipy.fft.idctn(s * coef * xi, type=2, norm="ortho", axes=(-2, -1))


def piecewise_constant_map(field: np.ndarray, high: float = 12.0, low: float = 3.0) -> np.ndarray:
    """The FNO benchmark's push-forward ``ψ``: ``high`` where ``field >= 0``, ``low`` elsewhere.

    Raises
    ------
    ValueError
        ``high``/``low`` not positive and finite, or ``field`` holding NaN/inf (a NaN would silently map to
        ``low``).
    """
    _check_positive_values(high=high, low=low)
    field = _finite_field(field)
    return np.where(field >= 0.0, float(high), float(low))


def lognormal_map(field: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Smooth log-normal permeability ``exp(σ · field)``.

    Raises
    ------
    ValueError
        ``sigma`` not finite, ``field`` holding NaN/inf, or ``exp(σ · field)`` overflowing to inf or underflowing
        to 0 (the permeability would not be a positive finite number; lower ``sigma``).
    """
    if not np.isfinite(sigma):
        raise ValueError(f"sigma must be finite, got {sigma}")
    field = _finite_field(field)
    with np.errstate(over="ignore", under="ignore"):
        a = np.exp(float(sigma) * field)
    bad = ~np.isfinite(a) | (a <= 0)
    if bad.any():
        x = float(np.max(np.abs(float(sigma) * field)))
        raise ValueError(
            f"lognormal permeability exp(sigma * field) over- or underflows (|sigma * field| reaches {x:.3g}; "
            f"float64 holds exp(x) for |x| < 709): {int(bad.sum())} value(s) would be inf or 0. Lower sigma"
        )
    return a


#: Names accepted wherever a permeability map is chosen by name.
PERMEABILITY_MAPS = ("piecewise", "lognormal")


def _check_grf_args(s: int, alpha: float, tau: float) -> None:
    if int(s) != s or s < 2:
        raise ValueError(f"grid size s must be an integer >= 2, got {s}")
    check_grf_parameters(alpha, tau)


def _finite_field(field: np.ndarray) -> np.ndarray:
    field = np.asarray(field, dtype=np.float64)
    bad = ~np.isfinite(field)
    if bad.any():
        raise ValueError(f"field holds {int(bad.sum())} NaN or infinite value(s) of {field.size}; pass a finite field")
    return field


def _check_positive_values(**values: float) -> None:
    for name, v in values.items():
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"permeability value {name} must be positive and finite, got {v}")
