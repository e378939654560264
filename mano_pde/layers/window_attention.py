"""Swin-like window attention: softmax attention inside ``w x w`` windows, no hierarchy.

The baseline of the MANO paper's comparisons: local attention whose receptive field grows only through
depth and shifted windows (Liu, Z. et al. "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows" (2021), ICCV, arXiv 2103.14030). The shift is realised by padding the grid so that the
window grid starts at ``-shift``, and masking padded keys, which gives the same attention groups as
Swin's cyclic roll + region mask on a non-periodic domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .attention import WindowedMultiheadAttention
from .grid_mixer import GridTokenMixer

__all__ = ["WindowAttention"]


class WindowAttention(GridTokenMixer):
    """Multi-head softmax attention within non-overlapping (optionally shifted) ``w x w`` windows.

    Parameters
    ----------
    in_channels, out_channels, n_modes, resolution_scaling_factor
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    n_heads, head_dim, dropout, qkv_bias, position_bias
        See :class:`~mano_pde.layers.attention.WindowedMultiheadAttention`.
    window_size : int, optional
        Window side ``w`` (capped at the grid size). Default 8.
    shift : int, optional
        Offset of the window grid, ``0 <= shift < window_size`` (Swin uses ``w // 2`` in every other
        block). Default 0.
    **neuralop_kwargs
        Spectral-convolution options passed by neuralop's FNOBlocks; ignored.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_modes: Sequence[int] | None = None,
        *,
        n_heads: int = 4,
        head_dim: int | None = None,
        window_size: int = 8,
        shift: int = 0,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        position_bias: bool = False,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        **neuralop_kwargs,
    ) -> None:
        super().__init__(in_channels, out_channels, n_modes, resolution_scaling_factor, **neuralop_kwargs)
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if not 0 <= shift < window_size:
            raise ValueError(f"shift must satisfy 0 <= shift < window_size = {window_size}, got {shift}")
        self.window_size = int(window_size)
        self.shift = int(shift)
        self.attention = WindowedMultiheadAttention(
            self.in_channels, self.out_channels, n_heads, head_dim, dropout, qkv_bias, position_bias
        )

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: attention within (shifted) windows."""
        w = self.window_size
        return self.attention(x, window=(w, w), shift=(self.shift, self.shift))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift={self.shift}"
