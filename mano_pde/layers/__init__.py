"""Attention layers for neural operators on 2-D grids (inputs ``[B, C, H, W]``, neuraloperator's layout).

* :class:`MultipoleAttention` -- MANO's multipole attention (Colagrande et al., arXiv 2507.02748):
  windowed attention on a hierarchy of grids, global receptive field, linear cost in ``H * W``.
* :class:`WindowAttention` -- Swin-like attention in (shifted) windows, no hierarchy.
* :class:`GlobalAttention` -- ViT-like attention over all grid points (quadratic cost).
* :class:`TransformerBlock` -- pre-norm transformer block with any of the mixers above.

All three mixers meet the ``conv_module`` contract of :class:`neuralop.layers.fno_block.FNOBlocks`.
"""

from .attention import AttentionMixer, GlobalAttention, WindowedMultiheadAttention
from .grid_mixer import GridTokenMixer
from .multipole_attention import MultipoleAttention, multipole_level_shapes
from .transformer_block import TransformerBlock, make_mixer
from .window_attention import WindowAttention

__all__ = [
    "AttentionMixer",
    "GlobalAttention",
    "GridTokenMixer",
    "MultipoleAttention",
    "TransformerBlock",
    "WindowAttention",
    "WindowedMultiheadAttention",
    "make_mixer",
    "multipole_level_shapes",
]
