"""Darcy data: generation, the netCDF4 file schema, lazy multi-resolution views and importers.

Nothing here imports torch; the torch dataset lives in :mod:`mano_pde.data.torch_dataset`.
"""

from .generate import generate_chunk, generate_darcy, generate_sample, sample_rng
from .io import describe, open_darcy, reachable_resolutions, subsample_factor
from .presets import DEFAULT_PRESET, PRESETS, DarcyConfig, get_preset
from .schema import DarcyDataError, DarcyWriter

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "DarcyConfig",
    "DarcyDataError",
    "DarcyWriter",
    "describe",
    "generate_chunk",
    "generate_darcy",
    "generate_sample",
    "get_preset",
    "open_darcy",
    "reachable_resolutions",
    "sample_rng",
    "subsample_factor",
]
