"""mano_pde: neural-operator surrogates of PDEs.

Darcy-flow data (:mod:`mano_pde.data`, built on the numpy/scipy :mod:`solvers` package), the Multipole
Attention Neural Operator for ``neuraloperator`` (:mod:`mano_pde.layers`, :mod:`mano_pde.models`), training
and zero-shot resolution-transfer evaluation.

Importing ``mano_pde`` is cheap: torch and neuraloperator are imported only by the sub-packages that need
them (``mano_pde.models``, ``mano_pde.layers``), so data generation never pays for them.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("mano-pde")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
