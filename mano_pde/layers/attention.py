"""Multi-head softmax self-attention on 2-D grids: the windowed core, and global (ViT-like) attention.

:class:`WindowedMultiheadAttention` is the single attention module (one set of Q/K/V/output weights) that
the mixers share: :class:`GlobalAttention` calls it with one window covering the grid, the Swin-like
:class:`~mano_pde.layers.window_attention.WindowAttention` with ``w x w`` windows (shifted in every other
block), and :class:`~mano_pde.layers.multipole_attention.MultipoleAttention` with ``w x w`` windows on
every level of its grid hierarchy.

The softmax attention itself is :func:`torch.nn.functional.scaled_dot_product_attention` (fused
flash/memory-efficient kernels on GPU, the fused flash kernel on CPU); windows are folded into the batch
dimension so one call covers every window of a level.

References
----------
.. [1] Vaswani, A. et al. "Attention is all you need" (2017). NeurIPS, arXiv 1706.03762.
.. [2] Dosovitskiy, A. et al. "An image is worth 16x16 words" (2021). ICLR, arXiv 2010.11929.
.. [3] Colagrande, A., Caillon, P., Feillet, E., Allauzen, A. "Linear Attention with Global Context:
       A Multipole Attention Mechanism for Vision and Physics" (2025). ICCV workshops, arXiv 2507.02748.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .grid_mixer import GridTokenMixer
from .windowing import axis_padding, effective_window, padding_key_mask

__all__ = ["GlobalAttention", "WindowedMultiheadAttention"]


class WindowedMultiheadAttention(nn.Module):
    """Multi-head softmax self-attention inside non-overlapping windows of a channels-last grid.

    Input and output are channels-last, ``[B, H, W, C_in] -> [B, H, W, C_out]``. The grid is split into
    ``wh x ww`` windows (optionally with the window grid shifted, Swin-style) and tokens attend only to
    tokens of their own window. Grids that do not tile exactly are zero-padded and the padded keys are
    masked out of the softmax, so the result equals attention restricted to each window's real tokens.

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in``.
    out_channels : int, optional
        Output channels ``C_out``; defaults to ``in_channels``.
    n_heads : int, optional
        Number of attention heads. Default 4.
    head_dim : int, optional
        Channels per head; defaults to ``in_channels // n_heads``.
    dropout : float, optional
        Dropout on the attention weights (inside SDPA) and on the output projection, training only.
    qkv_bias : bool, optional
        Whether the Q/K/V projection has a bias. Default True.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_heads: int = 4,
        head_dim: int | None = None,
        dropout: float = 0.0,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if n_heads < 1:
            raise ValueError(f"n_heads must be >= 1, got {n_heads}")
        if head_dim is None:
            if in_channels % n_heads:
                raise ValueError(
                    f"in_channels = {in_channels} is not divisible by n_heads = {n_heads}; "
                    f"pass head_dim explicitly or choose n_heads dividing {in_channels}"
                )
            head_dim = in_channels // n_heads
        if head_dim < 1:
            raise ValueError(f"head_dim must be >= 1, got {head_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.inner_channels = n_heads * head_dim
        self.dropout = dropout
        self.qkv = nn.Linear(in_channels, 3 * self.inner_channels, bias=qkv_bias)
        self.proj = nn.Linear(self.inner_channels, out_channels)
        self.proj_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        window: Sequence[int] | None = None,
        shift: Sequence[int] = (0, 0),
    ) -> torch.Tensor:
        """Attend within windows.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, H, W, C_in]``.
        window : (int, int), optional
            Window size ``(wh, ww)``; each is capped at the grid size. ``None``: one window covering the
            whole grid (global attention).
        shift : (int, int), optional
            Offset of the window grid (Swin's shifted windows); ignored along axes that fit one window.

        Returns
        -------
        torch.Tensor
            ``[B, H, W, C_out]``.
        """
        out, geo = self._attend(x, window, shift)
        return self._merge(out, geo)

    def forward_add(
        self,
        x: torch.Tensor,
        base: torch.Tensor,
        window: Sequence[int] | None = None,
        shift: Sequence[int] = (0, 0),
    ) -> torch.Tensor:
        """``base + forward(x, window, shift)`` with the window merge fused into the addition.

        When the grid tiles exactly into windows and ``base`` is a contiguous ``[B, H, W, C_out]``
        tensor, the window-layout attention output is added through a permuted view, which saves one
        full-size copy (and its allocation) per call.
        """
        out, geo = self._attend(x, window, shift)
        b, h, w, nh, nw, wh, ww, padded = geo[:8]
        c = out.shape[-1]
        if padded or not base.is_contiguous() or tuple(base.shape) != (b, h, w, c):
            return base + self._merge(out, geo)
        if nh == 1 and nw == 1:
            return base + out.view(b, h, w, c)
        out6 = out.view(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        # the sum follows the layout of its first operand (contiguous grid order): the reshape is a view
        return (base.view(b, nh, wh, nw, ww, c) + out6).reshape(b, h, w, c)

    def _attend(self, x: torch.Tensor, window: Sequence[int] | None, shift: Sequence[int]):
        """Window-layout attention: returns ``out [B * n_windows, wh * ww, C_out]`` and the geometry.

        Data flow (one copy in, none out): the input is partitioned into windows (one copy of ``C_in``
        channels, none for a single window), the Q/K/V projection runs on the window layout, SDPA reads
        ``q, k, v`` as strided views of that one tensor, its output (``[B', L, heads, d]`` memory order on
        CPU, the order of its inputs) is viewed as ``[B', L, heads * d]`` for the output projection.
        """
        b, h, w, c = x.shape
        if window is None:
            wh, ww = h, w
        else:
            wh, ww = effective_window(h, int(window[0])), effective_window(w, int(window[1]))
        sh = int(shift[0]) % wh if h > wh else 0
        sw = int(shift[1]) % ww if w > ww else 0
        top, bottom, nh = axis_padding(h, wh, sh)
        left, right, nw = axis_padding(w, ww, sw)
        padded = bool(top or bottom or left or right)
        mask = None
        if padded:
            x = F.pad(x, (0, 0, left, right, top, bottom))
            mask = padding_key_mask(h, w, (top, bottom, left, right), (wh, ww), b, x.device)
        hp, wp = h + top + bottom, w + left + right
        nwin, length, heads, d = b * nh * nw, wh * ww, self.n_heads, self.head_dim

        if nh == 1 and nw == 1:
            xw = x.reshape(b, length, c)
        else:  # window partition [B, nh, wh, nw, ww, C] -> [B * nh * nw, wh * ww, C]
            xw = x.reshape(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(nwin, length, c)
        # q, k, v: [B', heads, L, d] strided views of the projection (memory order [B', L, heads, d]);
        # chunk() keeps the backward a cheap cat along channels (unbind() of a permuted [3, ...] view
        # would make autograd stack and transpose the gradients: two slow full-size copies)
        q, k, v = (t.view(nwin, length, heads, d).transpose(1, 2) for t in self.qkv(xw).chunk(3, dim=-1))
        del xw, x  # lower the peak in inference (autograd keeps what backward needs)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        del q, k, v
        o = o.transpose(1, 2).reshape(nwin, length, heads * d)
        out = self.proj_drop(self.proj(o))
        return out, (b, h, w, nh, nw, wh, ww, padded, hp, wp, top, left)

    @staticmethod
    def _merge(out: torch.Tensor, geo: tuple) -> torch.Tensor:
        """Window layout ``[B * nh * nw, wh * ww, C]`` -> grid ``[B, H, W, C]`` (padding cropped)."""
        b, h, w, nh, nw, wh, ww, padded, hp, wp, top, left = geo
        c = out.shape[-1]
        if nh == 1 and nw == 1:
            grid = out.view(b, hp, wp, c)
        else:
            grid = out.view(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if padded:
            grid = grid[:, top : top + h, left : left + w]
        return grid


class GlobalAttention(GridTokenMixer):
    """Global (ViT-like) multi-head softmax attention over all ``H * W`` grid points.

    Quadratic in ``H * W`` in time (and, without a fused kernel, in memory): the baseline that
    :class:`~mano_pde.layers.multipole_attention.MultipoleAttention` approximates in linear time.

    Parameters
    ----------
    in_channels, out_channels, n_modes, resolution_scaling_factor
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    n_heads, head_dim, dropout, qkv_bias
        See :class:`WindowedMultiheadAttention`.
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
        dropout: float = 0.0,
        qkv_bias: bool = True,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        **neuralop_kwargs,
    ) -> None:
        super().__init__(in_channels, out_channels, n_modes, resolution_scaling_factor, **neuralop_kwargs)
        self.attention = WindowedMultiheadAttention(
            self.in_channels, self.out_channels, n_heads, head_dim, dropout, qkv_bias
        )

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: every point attends to every point."""
        return self.attention(x, window=None)
