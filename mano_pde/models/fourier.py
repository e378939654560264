"""FNO and TFNO baselines: neuraloperator's own classes with the FNO paper's Darcy-flow presets.

Nothing is reimplemented: :func:`fno_darcy` returns a :class:`neuralop.models.FNO` and
:func:`tfno_darcy` a :class:`neuralop.models.TFNO`.

Mode counting (checked in ``neuralop/layers/spectral_convolution.py``, neuraloperator 2.0)
------------------------------------------------------------------------------------------
The FNO paper's 2-D code (Li et al. 2021, ``fourier_2d.py``, ``modes1 = modes2 = 12``) keeps, after
``rfft2``, the rows ``[:12]`` and ``[-12:]`` (frequencies -12..11 along the first axis, 24 in all) and
the columns ``[:12]`` (frequencies 0..11 of the half-spectrum along the last axis): two complex weights
of shape ``(width, width, 12, 12)``.

neuralop's ``n_modes`` counts *total* modes per axis. Along the first axis it keeps ``n`` frequencies
centred on zero (``-n//2 .. n//2 - 1``, so ``n = 24`` gives -12..11); along the last (``rfft``) axis it
keeps ``n // 2 + 1`` non-negative frequencies. The paper's 0..11 (12 columns) is therefore
``n // 2 + 1 = 12``, i.e. ``n = 22``, **not** 24 (``n_modes=(24, 24)`` would keep 13 columns, 0..12).

Hence :data:`FNO_PAPER_N_MODES` ``= (24, 22)``: one complex weight of shape ``(width, width, 24, 12)``,
exactly the paper's modes and parameter count (``4 x 2 x 32 x 32 x 12 x 12`` complex numbers =
2,359,296 real parameters in the Fourier layers). neuralop's own docs' ``n_modes=(12, 12)`` keeps only
-6..5 x 0..6, about a quarter of the paper's modes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from neuralop.models import FNO, TFNO

from ..grids import GridGeometry
from ..layers.embeddings import make_positional_embedding
from ..layers.transformer_block import resolve_non_linearity
from .hyperparameters import check_fno_hyperparameters

__all__ = ["FNO_PAPER_N_MODES", "fno_darcy", "tfno_darcy"]

#: neuralop ``n_modes`` equal to the FNO paper's ``modes = 12`` in 2-D (see the module docstring).
FNO_PAPER_N_MODES: tuple[int, int] = (24, 22)


def _neuralop_kwargs(kwargs: dict, grid_geometry: str, **arguments) -> dict:
    """neuralop FNO/TFNO keywords from a preset's arguments: ranges checked, names resolved, ``kwargs`` added."""
    check_fno_hyperparameters(**arguments)
    embedding = make_positional_embedding(arguments["positional_embedding"], arguments["in_channels"], grid_geometry)
    return {
        **arguments,
        "n_modes": tuple(int(m) for m in arguments["n_modes"]),
        "positional_embedding": embedding,
        "non_linearity": resolve_non_linearity(arguments["non_linearity"]),
        **kwargs,
    }


def fno_darcy(
    in_channels: int = 1,
    out_channels: int = 1,
    hidden_channels: int = 32,
    n_layers: int = 4,
    n_modes: Sequence[int] = FNO_PAPER_N_MODES,
    positional_embedding: str | None = "node",
    non_linearity: str | Callable = "gelu",
    norm: str | None = None,
    lifting_channel_ratio: float = 0,
    projection_channel_ratio: float = 4,
    use_channel_mlp: bool = False,
    grid_geometry: GridGeometry = "node",
    **kwargs,
) -> FNO:
    """neuralop's :class:`~neuralop.models.FNO` configured like the FNO paper's Darcy-flow model.

    Li, Z. et al. "Fourier Neural Operator for Parametric Partial Differential Equations" (2021), ICLR,
    arXiv 2010.08895, Sec. 5.2: 4 Fourier layers, width 32, 12 modes per direction (``n_modes=(24, 22)``
    in neuralop's counting, see the module docstring), GELU, inputs ``(a(x), x, y)`` with the node
    coordinates ``x_i = i / (s - 1)`` of the data's grid (``positional_embedding="node"``,
    :class:`~mano_pde.layers.embeddings.NodeGridEmbedding`; ``"grid"`` is neuralop's periodic ``i / s``,
    whose coordinates move between resolutions), a linear lifting
    to the width (``lifting_channel_ratio=0``), a 128-wide projection MLP (``projection_channel_ratio=4``),
    a linear (1x1) skip in each Fourier layer and no extra channel MLP (``use_channel_mlp=False``).
    The paper's code additionally pads non-periodic inputs by 9 cells: pass ``domain_padding`` (a
    fraction, e.g. ``0.1``) to get that; the preset leaves it off.

    Parameters
    ----------
    in_channels, out_channels, hidden_channels, n_layers, n_modes, positional_embedding, norm,
    lifting_channel_ratio, projection_channel_ratio, use_channel_mlp
        As in :class:`neuralop.models.FNO`, with the paper's values as defaults.
    non_linearity : str or callable, optional
        Activation by name (``"gelu"``, ...; see :data:`mano_pde.layers.transformer_block.NON_LINEARITIES`)
        or a callable. Default ``"gelu"``.
    grid_geometry : {"node", "half-open", "cell"}, optional
        Where the data's grid points sit (:mod:`mano_pde.grids`): the coordinates ``"node"`` embedding appends
        (``i / (s - 1)``, ``i / s`` or ``(i + 1/2) / s``). ``mano-pde train`` sets it from the training file.
        Default ``"node"``.
    **kwargs
        Any other :class:`neuralop.models.FNO` argument (``domain_padding``, ``fno_skip``, ...).

    Returns
    -------
    neuralop.models.FNO
    """
    return FNO(**_neuralop_kwargs(**locals()))  # locals(): exactly the arguments at this point


def tfno_darcy(
    in_channels: int = 1,
    out_channels: int = 1,
    hidden_channels: int = 32,
    n_layers: int = 4,
    n_modes: Sequence[int] = FNO_PAPER_N_MODES,
    positional_embedding: str | None = "node",
    non_linearity: str | Callable = "gelu",
    norm: str | None = None,
    lifting_channel_ratio: float = 0,
    projection_channel_ratio: float = 4,
    use_channel_mlp: bool = False,
    factorization: str = "Tucker",
    rank: float = 0.1,
    grid_geometry: GridGeometry = "node",
    **kwargs,
) -> TFNO:
    """neuralop's :class:`~neuralop.models.TFNO` (Tucker-factorised FNO) with the same Darcy preset.

    Kossaifi, J. et al. "Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs" (2024),
    TMLR. Same architecture as :func:`fno_darcy`; the Fourier weights are stored as a Tucker
    factorisation of relative ``rank`` (default 0.1, neuralop's TFNO default: about 10 % of the
    dense weights' parameters).

    Returns
    -------
    neuralop.models.TFNO
    """
    return TFNO(**_neuralop_kwargs(**locals()))  # locals(): exactly the arguments at this point
