"""Darcy data: generation, the netCDF4 file schema, lazy multi-resolution views and importers.

Nothing here imports torch; the torch dataset lives in :mod:`mano_pde.data.torch_dataset`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it. Loaded on first access (PEP 562), so that importing a light
#: submodule such as :mod:`mano_pde.data.presets` (the CLI's parser does) does not import xarray or netCDF4.
_LAZY = {
    **dict.fromkeys(("generate_chunk", "generate_darcy", "generate_sample", "sample_rng"), "generate"),
    **dict.fromkeys(("detect_format", "import_darcy"), "importers"),
    **dict.fromkeys(
        (
            "describe",
            "file_geometry",
            "load_arrays",
            "open_darcy",
            "reachable_resolutions",
            "same_sample_stream",
            "subsample_factor",
            "subsample_slice",
        ),
        "io",
    ),
    **dict.fromkeys(("DEFAULT_PRESET", "PRESETS", "DarcyConfig", "get_preset"), "presets"),
    **dict.fromkeys(("DarcyDataError", "DarcyWriter"), "schema"),
}

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "DarcyConfig",
    "DarcyDataError",
    "DarcyWriter",
    "describe",
    "detect_format",
    "file_geometry",
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
    "subsample_slice",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
