"""Paired comparisons of two sets of runs over seeds × test samples, with a bootstrap interval and a
Student-t interval over seeds (numpy; scipy for the t quantile).

The errors of one side form a matrix ``E[s, i]``: seed ``s`` (a run trained with that model seed) scored on test
sample ``i``. Both sides are scored on the *same* test samples, so samples are paired; seeds are paired only when
the two sides are the same runs (a zero-shot method against the same model's resample), otherwise the seed of one
model has nothing to do with the seed of another and the two sides' seeds are resampled independently.

Seeds and samples are *crossed*, not nested (every seed is scored on every sample), and both are random draws:
another seed gives another model, another test set other samples. The interval resamples both factors at once —
the "pigeonhole" bootstrap for crossed random effects (Owen 2007, Ann. Appl. Stat. 1(2), 2007): each replicate
draws seeds with replacement (one draw shared by both sides when paired, one per side otherwise) and test samples
with replacement (one draw shared by both sides: the pairing), and recomputes the difference of the two grand
means. Resampling only samples would ignore the seed-to-seed spread (the spread the study is about); resampling
only seeds would ignore that the test set is a sample too.

With few seeds the bootstrap alone is too narrow in the seed factor: the bootstrap variance of a mean of ``n`` draws
is ``(n − 1)/n`` of the usual unbiased ``s²/n``, and its percentiles carry no small-sample (Student) correction for
a spread estimated from 3 values. In a seeded null simulation with 3 seeds per side (seed spread comparable to the
per-sample spread, `tests/test_seeded_study.py::test_bootstrap_alone_overclaims_with_three_seeds`) the bootstrap
interval excluded 0 in 18 % (seeds unpaired) and 15 % (paired) of 120 cases each instead of 5 %. :func:`compare`
therefore pairs it with a Student-t interval over the seed means (:func:`seed_interval`: paired t for the same runs,
Welch otherwise) and claims a difference only when *both* intervals exclude 0 on the same side: 3 % of the same
cases. The price is power: a true gap must be steady across seeds to be claimed with 3 seeds.

The bootstrap interval is the percentile interval of the replicates. A verdict is ``better`` when the intervals lie
below zero (left has the lower error), ``worse`` when they lie above, ``within noise`` otherwise, and
``one seed: no claim`` when a side has a single seed (no spread over seeds to judge a difference by). Everything
is deterministic: the generator is seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserInputError

__all__ = ["VERDICTS", "compare", "paired_bootstrap", "seed_interval", "verdict"]

#: What :func:`compare` can conclude.
VERDICTS = ("better", "within noise", "worse", "one seed: no claim")
ONE_SEED = VERDICTS[3]


def verdict(low: float, high: float) -> str:
    """``better`` (interval below 0), ``worse`` (above 0) or ``within noise`` (it contains 0)."""
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "within noise"


def _check_sides(a: np.ndarray, b: np.ndarray, paired_seeds: bool, level: float) -> None:
    if a.shape[1] != b.shape[1]:
        raise UserInputError(
            f"the two sides are scored on {a.shape[1]} and {b.shape[1]} test samples; a paired comparison needs "
            "the same samples on both sides"
        )
    if paired_seeds and a.shape[0] != b.shape[0]:
        raise UserInputError(f"paired seeds need the same seeds on both sides, got {a.shape[0]} and {b.shape[0]}")
    if not 0 < level < 1:
        raise UserInputError(f"level must lie in (0, 1), got {level!r}")


def _matrix(values: Any, side: str) -> np.ndarray:
    m = np.asarray(values, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise UserInputError(f"{side}: expected errors of shape (seeds, samples), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise UserInputError(f"{side}: the errors hold non-finite values; a comparison over them means nothing")
    return m


def paired_bootstrap(
    left: Any,
    right: Any,
    *,
    paired_seeds: bool = False,
    factor: float = 1.0,
    n_boot: int = 4000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Difference ``mean(left) − factor × mean(right)`` with a two-factor (seeds × samples) bootstrap interval.

    Parameters
    ----------
    left, right : array-like, shape (seeds, samples)
        Per-sample errors of each side, one row per seed; the columns of both are the same test samples in the
        same order. A 1-D array is one seed.
    paired_seeds : bool
        Row ``s`` of both sides is the same run (same model and seed): resample rows jointly. Then both sides
        need the same number of seeds. Otherwise each side's rows are resampled on their own.
    factor : float
        Compare ``left`` with ``factor × right`` (1: a plain difference).
    n_boot : int
        Bootstrap replicates.
    level : float
        Coverage of the percentile interval (0.95: the 2.5 % and 97.5 % quantiles).
    seed : int
        Seed of the bootstrap generator (the result is a pure function of the inputs and this seed).

    Returns
    -------
    dict
        ``left_mean``, ``right_mean``, ``difference`` (left − factor × right), ``relative`` (difference /
        (factor × right mean)), ``low``, ``high`` (the interval), ``verdict`` (:func:`verdict`), ``n_seeds``
        (left, right), ``n_samples``, ``n_boot``, ``level``, ``paired_seeds``. The verdict is the bootstrap's
        alone; a study's verdict is :func:`compare`'s, which also asks the seed interval.

    Raises
    ------
    mano_pde.errors.UserInputError
        Mismatched sample counts, unpaired seeds of different counts when ``paired_seeds``, bad ``n_boot`` or
        ``level``, non-finite errors.
    """
    a, b = _matrix(left, "left"), _matrix(right, "right")
    _check_sides(a, b, paired_seeds, level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise UserInputError(f"n_boot must be an int >= 100, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    n_samples = a.shape[1]
    # counts of each sample / seed in each replicate: the replicate's mean is a weighted mean of the matrix
    w_samples = _counts(rng, n_boot, n_samples)
    w_left = _counts(rng, n_boot, a.shape[0])
    w_right = w_left if paired_seeds else _counts(rng, n_boot, b.shape[0])
    boot_a = ((w_left @ a) * w_samples).sum(axis=1) / (a.shape[0] * n_samples)
    boot_b = ((w_right @ b) * w_samples).sum(axis=1) / (b.shape[0] * n_samples)
    diffs = boot_a - factor * boot_b
    alpha = (1 - level) / 2
    low, high = (float(q) for q in np.quantile(diffs, [alpha, 1 - alpha]))
    mean_a, mean_b = float(a.mean()), float(b.mean())
    difference = mean_a - factor * mean_b
    scale = factor * mean_b
    return {
        "left_mean": mean_a,
        "right_mean": mean_b,
        "difference": difference,
        "relative": difference / scale if scale else float("nan"),
        "low": low,
        "high": high,
        "verdict": verdict(low, high),
        "n_seeds": [int(a.shape[0]), int(b.shape[0])],
        "n_samples": int(n_samples),
        "n_boot": int(n_boot),
        "level": float(level),
        "paired_seeds": bool(paired_seeds),
    }


def seed_interval(
    left: Any, right: Any, *, paired_seeds: bool = False, factor: float = 1.0, level: float = 0.95
) -> dict[str, float] | None:
    """Student-t interval of ``mean(left) − factor × mean(right)`` over the seeds' mean errors.

    Each seed (row) is reduced to its mean over the test samples, so the test set is held fixed and only the
    seed-to-seed spread counts, with the small-sample correction the bootstrap lacks. ``paired_seeds``: a paired t
    interval of the per-seed differences (``n − 1`` degrees of freedom; ``scipy.stats.ttest_rel``); otherwise
    Welch's interval with the Welch–Satterthwaite degrees of freedom (``scipy.stats.ttest_ind``, unequal variances).

    Returns
    -------
    dict or None
        ``seed_low``, ``seed_high``, ``seed_df``; None when a side has a single seed (no spread to estimate).
    """
    import warnings

    from scipy import stats

    a, b = _matrix(left, "left"), _matrix(right, "right")
    _check_sides(a, b, paired_seeds, level)
    mean_a, mean_b = a.mean(axis=1), factor * b.mean(axis=1)
    if min(len(mean_a), len(mean_b)) < 2:
        return None
    with warnings.catch_warnings():  # identical seed means: scipy warns, and the interval is the point itself
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        if paired_seeds:
            test = stats.ttest_rel(mean_a, mean_b)
        else:
            test = stats.ttest_ind(mean_a, mean_b, equal_var=False)
        ci = test.confidence_interval(level)
    return {"seed_low": float(ci.low), "seed_high": float(ci.high), "seed_df": float(test.df)}


def compare(
    left: Any,
    right: Any,
    *,
    paired_seeds: bool = False,
    factor: float = 1.0,
    n_boot: int = 4000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """A study's comparison: :func:`paired_bootstrap` (seeds × samples) and :func:`seed_interval` (seeds, Student
    t), with one verdict that claims a difference only when both intervals exclude 0 on the same side.

    Parameters are those of :func:`paired_bootstrap`. Returns its dict, with its verdict renamed
    ``bootstrap_verdict``, plus ``seed_low``, ``seed_high``, ``seed_df`` (None with a single seed on a side) and
    ``verdict``: one of :data:`VERDICTS`.
    """
    out = paired_bootstrap(left, right, paired_seeds=paired_seeds, factor=factor, n_boot=n_boot, level=level, seed=seed)
    out["bootstrap_verdict"] = out.pop("verdict")
    seeds = seed_interval(left, right, paired_seeds=paired_seeds, factor=factor, level=level)
    out.update(seeds or {"seed_low": None, "seed_high": None, "seed_df": None})
    if seeds is None:
        out["verdict"] = ONE_SEED
    else:
        by_seeds = verdict(seeds["seed_low"], seeds["seed_high"])
        out["verdict"] = by_seeds if by_seeds == out["bootstrap_verdict"] else "within noise"
    return out


def _counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of ``n`` items drawn ``n`` times with replacement, per replicate."""
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (np.arange(n_boot)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)
