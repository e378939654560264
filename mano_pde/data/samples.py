"""One Darcy sample, one chunk of samples: pure functions of ``(config, index)``.

Sample ``i`` of a configuration depends only on ``(config, i)`` — never on worker count, chunking or order —
so every back end (in-process, process pool, dask) and every resumed run computes the same data.
"""

from __future__ import annotations

import numpy as np

from solvers import lognormal_map, piecewise_constant_map, sample_grf, solve_darcy

from ..errors import UserInputError
from .presets import DarcyConfig

__all__ = [
    "sample_rng",
    "generate_sample",
    "generate_chunk",
    "chunk_arrays",
    "check_storable",
    "default_chunk_size",
]


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: independent streams from one root seed."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def generate_sample(config: DarcyConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Permeability and pressure ``[s, s]`` (float64) of sample ``index``.

    Raises
    ------
    UserInputError
        If the configuration gives a permeability the solver refuses (e.g. a contrast or scale beyond its
        range, see :func:`solvers.solve_darcy`): the solver's message, naming the sample.
    """
    rng = sample_rng(config.seed, index)
    field = sample_grf(config.resolution, rng, alpha=config.alpha, tau=config.tau)
    try:
        if config.permeability_map == "piecewise":
            a = piecewise_constant_map(field, config.high, config.low)
        else:
            a = lognormal_map(field, config.sigma)
        u = solve_darcy(a, config.forcing, face=config.face_average)
    except ValueError as exc:  # the maps' and solver's input checks: here they are caused by the user's parameters
        raise UserInputError(f"sample {index}: {exc}") from exc
    return a, u


def generate_chunk(config: DarcyConfig, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``start … stop - 1`` as float64 arrays ``[stop - start, s, s]``."""
    s = config.resolution
    a = np.empty((stop - start, s, s))
    u = np.empty((stop - start, s, s))
    for k, i in enumerate(range(start, stop)):
        a[k], u[k] = generate_sample(config, i)
    return a, u


def default_chunk_size(resolution: int) -> int:
    """Samples per chunk: about 4 M grid values (≈ 10–20 s of solving at 421²), between 1 and 64."""
    return int(min(64, max(1, 4_000_000 // (resolution * resolution))))


def chunk_arrays(config: DarcyConfig, start: int, stop: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``start … stop - 1`` in the storage ``dtype``: the content of one shard.

    A pure function of its arguments (the task that dask workers run).

    Raises
    ------
    UserInputError
        A value of the chunk does not survive the conversion to ``dtype`` (see :func:`check_storable`).
    """
    a, u = generate_chunk(config, start, stop)
    check_storable(a, u, dtype, start)
    return a.astype(dtype, copy=False), u.astype(dtype, copy=False)


#: The generator option behind each stored variable (for the message of :func:`check_storable`).
_CAUSE = {"a": "--high/--low (or --sigma)", "u": "--forcing (or the permeability's scale)"}


def check_storable(a: np.ndarray, u: np.ndarray, dtype: str, start: int = 0) -> None:
    """Refuse float64 values that the storage ``dtype`` cannot hold: overflow to inf, or nonzero values below its
    smallest normal number (they lose their digits or become 0: ``--forcing 1e-300`` would store u = 0).

    Raises
    ------
    UserInputError
        Naming the variable, the first sample, the extreme value and the option to change.
    """
    info = np.finfo(dtype)
    for name, arr in (("a", a), ("u", u)):
        mag = np.abs(arr).reshape(len(arr), -1)
        over = ~(mag <= info.max)  # NaN counts as bad too
        under = (mag > 0) & (mag < info.tiny)
        for bad, what in ((over, "overflows"), (under, "underflows")):
            rows = np.flatnonzero(bad.any(axis=1))
            if rows.size:
                k = int(rows[0])
                value = float(mag[k][bad[k]].max() if what == "overflows" else mag[k][bad[k]].min())
                raise UserInputError(
                    f"sample {start + k}: {name} {what} {dtype} (|{name}| reaches {value:.3g}; {dtype} holds "
                    f"{info.tiny:.3g} to {info.max:.3g}); change {_CAUSE[name]} or use --dtype float64"
                )
