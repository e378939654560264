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

from .attention import AttentionMixer
from .windowing import check_window

__all__ = ["WindowAttention"]


class WindowAttention(AttentionMixer):
    """Multi-head softmax attention within non-overlapping (optionally shifted) ``w x w`` windows.

    Parameters
    ----------
    in_channels, out_channels, n_modes
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    window_size : int, optional
        Window side ``w`` (capped at the grid size). Default 8.
    shift : int, optional
        Offset of the window grid, ``0 <= shift < window_size`` (Swin uses ``w // 2`` in every other
        block). Default 0.
    **options
        ``n_heads``, ``head_dim``, ``dropout``, ``qkv_bias``, ``position_bias``, ``resolution_scaling_factor``
        and neuralop's spectral-convolution options: see :class:`~mano_pde.layers.attention.AttentionMixer`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_modes: Sequence[int] | None = None,
        *,
        window_size: int = 8,
        shift: int = 0,
        **options,
    ) -> None:
        check_window(window_size, shift)
        super().__init__(in_channels, out_channels, n_modes, **options)
        self.window_size = int(window_size)
        self.shift = int(shift)

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: attention within (shifted) windows."""
        w = self.window_size
        return self.attend(x, window=(w, w), shift=(self.shift, self.shift))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift={self.shift}"
