"""MANO: the Multipole Attention Neural Operator (Colagrande et al., arXiv 2507.02748, ICCV-W 2025)."""

from __future__ import annotations

from typing import ClassVar

from .transformer_operator import TransformerOperator

__all__ = ["MANO"]


class MANO(TransformerOperator, name="MANO"):
    """Multipole Attention Neural Operator, as the authors built it (with node-grid coordinates as input).

    The architecture of the authors' released ``MANO`` model::

        x -> linear lift -> n_layers x [x = MA(x) + x;  x = FF(x) + x] -> LayerNorm
          -> linear (width -> width) -> tanh -> linear (width -> out_channels)

    where ``MA`` is :class:`~mano_pde.layers.MultipoleAttention` with its defaults (the authors' layer:
    LayerNorms inside on every level, ``floor(log_r N)`` levels, V-cycle weights from the coarse end,
    bias-free Q/K/V and resampling convolutions) and ``FF`` the pre-norm MLP ``LN -> Linear -> GELU ->
    Linear`` (width ``mlp_ratio * hidden_channels``, the authors' ``mlp_dim``).

    One addition, the same for every model of this package: ``positional_embedding="node"`` appends the
    grid coordinates of the data (node grids ``(i / (H - 1), j / (W - 1))``; ``grid_geometry="half-open"``:
    ``(i / H, j / W)``) to the input (the authors' model file has no positional embedding; pass
    ``positional_embedding=None`` for exactly their model). Every option of this package
    on top of the authors' layer is a named argument documented as a departure in
    :class:`~mano_pde.layers.MultipoleAttention` (``level_rule="window"``, ``level_norm=False``,
    ``position_bias=True``, ``shift_multipole=True``, ``resample_init="average"``, ``reference_grid``).

    ``image_size`` is the grid the number of levels is counted for (the authors' constructor argument):
    ``mano-pde train`` sets it to the training grid; left ``None``, the levels follow each input.

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
    >>> model = MANO(in_channels=1, out_channels=1, hidden_channels=32, n_layers=2, image_size=33)
    >>> model(torch.randn(4, 1, 33, 33)).shape
    torch.Size([4, 1, 33, 33])
    """

    fixed_mixer: ClassVar[str] = "multipole"
    registry_name: ClassVar[str] = "mano"
    class_defaults: ClassVar[dict] = {
        "lifting_channel_ratio": 0,
        "projection_channel_ratio": 1,
        "projection_non_linearity": "tanh",
    }
