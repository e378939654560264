"""Attention baselines of the MANO paper, on the same transformer-operator skeleton as MANO.

* :class:`GlobalAttentionOperator` -- ViT-like: softmax attention over all grid points in every block
  (Dosovitskiy et al., arXiv 2010.11929); quadratic in the number of grid points.
* :class:`WindowAttentionOperator` -- Swin-like: attention within ``w x w`` windows, shifted by
  ``w // 2`` in every other block, no hierarchy (Liu et al., arXiv 2103.14030).

Both differ from :class:`~mano_pde.models.MANO` only in the token mixer, so comparisons at equal
``hidden_channels`` / ``n_layers`` / ``n_heads`` are like for like.
"""

from __future__ import annotations

from typing import ClassVar

from .transformer_operator import TransformerOperator

__all__ = ["GlobalAttentionOperator", "WindowAttentionOperator"]


class GlobalAttentionOperator(TransformerOperator, name="GlobalAttentionOperator"):
    """Transformer operator with global (ViT-like) attention; see :class:`TransformerOperator`.

    ``mixer`` is fixed to ``"global"``; ``window_size``, ``factor``, ``downsample``, ``upsample`` and
    ``shift_windows`` are accepted for a uniform signature and ignored.
    """

    fixed_mixer: ClassVar[str] = "global"
    registry_name: ClassVar[str] = "global-attention"


class WindowAttentionOperator(TransformerOperator, name="WindowAttentionOperator"):
    """Transformer operator with Swin-like (shifted) window attention; see :class:`TransformerOperator`.

    ``mixer`` is fixed to ``"window"``; ``factor``, ``downsample`` and ``upsample`` are accepted for a
    uniform signature and ignored.
    """

    fixed_mixer: ClassVar[str] = "window"
    registry_name: ClassVar[str] = "window-attention"
