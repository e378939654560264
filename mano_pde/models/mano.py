"""MANO: the Multipole Attention Neural Operator (Colagrande et al., arXiv 2507.02748, ICCV-W 2025)."""

from __future__ import annotations

from typing import ClassVar

from .transformer_operator import TransformerOperator

__all__ = ["MANO"]


class MANO(TransformerOperator, name="MANO"):
    """Multipole Attention Neural Operator: a transformer operator whose token mixer is multipole attention.

    Every block attends within ``window_size x window_size`` windows on a hierarchy of grids (the input
    grid, then grids coarsened by ``factor`` until one window covers the domain) with one shared
    attention module per block, and combines the levels coarse to fine
    (:class:`~mano_pde.layers.MultipoleAttention`). Each head therefore has a global receptive field
    after one block, at a cost linear in the number of grid points; the number of levels follows the
    input grid at call time, so a model trained at 32 x 32 evaluates at 256 x 256 with the same weights.

    All parameters are those of :class:`~mano_pde.models.TransformerOperator` (``mixer`` is fixed to
    ``"multipole"``). Registered with neuraloperator as ``"mano"``: after ``import mano_pde.models``,
    ``neuralop.models.available_models()`` lists it and ``neuralop.models.get_model(config)`` with
    ``config.model["model_arch"] = "mano"`` builds it.

    References
    ----------
    .. [1] Colagrande, A., Caillon, P., Feillet, E., Allauzen, A. "Linear Attention with Global Context:
           A Multipole Attention Mechanism for Vision and Physics" (2025). ICCV 2025 workshops,
           arXiv 2507.02748.

    Examples
    --------
    >>> import torch
    >>> from mano_pde.models import MANO
    >>> model = MANO(in_channels=1, out_channels=1, hidden_channels=32, n_layers=2)
    >>> model(torch.randn(4, 1, 85, 85)).shape
    torch.Size([4, 1, 85, 85])
    """

    fixed_mixer: ClassVar[str] = "multipole"
