"""Darcy data: generation, the netCDF4 file schema, lazy multi-resolution views and importers.

Nothing here imports torch; the torch dataset lives in :mod:`mano_pde.data.torch_dataset`.
"""

from .generate import generate_chunk, generate_darcy, generate_sample, sample_rng
from .importers import detect_format, import_darcy
from .io import describe, load_arrays, open_darcy, reachable_resolutions, same_sample_stream, subsample_factor
from .presets import DEFAULT_PRESET, PRESETS, DarcyConfig, get_preset
from .schema import DarcyDataError, DarcyWriter

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "DarcyConfig",
    "DarcyDataError",
    "DarcyWriter",
    "describe",
    "detect_format",
    "generate_chunk",
    "generate_darcy",
    "generate_sample",
    "get_preset",
    "import_darcy",
    "load_arrays",
    "open_darcy",
    "reachable_resolutions",
    "sample_rng",
    "same_sample_stream",
    "subsample_factor",
]
