"""Multi-head softmax self-attention on 2-D grids: the windowed core, the mixers' base, and global attention.

:class:`WindowedMultiheadAttention` is the single attention module (one set of Q/K/V/output weights) of
every mixer, built by their base :class:`AttentionMixer` (with the MANO authors' token LayerNorms as an
option): :class:`GlobalAttention` calls it with one window covering the grid, the Swin-like
:class:`~mano_pde.layers.window_attention.WindowAttention` with ``w x w`` windows (shifted in every other
block), and :class:`~mano_pde.layers.multipole_attention.MultipoleAttention` with ``w x w`` windows on
every level of its grid hierarchy.

The softmax attention itself is :func:`softmax_attention`: :func:`torch.nn.functional.scaled_dot_product_attention`
(fused flash/memory-efficient kernels on GPU, the fused flash kernel on CPU), except in bf16 on the CPU,
where it is the same softmax attention written as two batched matmuls around a softmax (faster than the CPU's
bf16 flash-attention kernel for MANO's small windows, forward and backward). Windows are folded into the
batch dimension so one call covers every window of a level.

References
----------
.. [1] Vaswani, A. et al. "Attention is all you need" (2017). NeurIPS, arXiv 1706.03762.
.. [2] Dosovitskiy, A. et al. "An image is worth 16x16 words" (2021). ICLR, arXiv 2010.11929.
.. [3] Colagrande, A., Caillon, P., Feillet, E., Allauzen, A. "Linear Attention with Global Context:
       A Multipole Attention Mechanism for Vision and Physics" (2025). ICCV workshops, arXiv 2507.02748.
.. [4] Liu, Z. et al. "Swin Transformer V2: Scaling Up Capacity and Resolution" (2022). CVPR, arXiv 2111.09883.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .grid_mixer import GridTokenMixer
from .windowing import axis_padding, effective_window, overlap_padding, padding_key_mask, window_segments

__all__ = ["AttentionMixer", "GlobalAttention", "WindowedMultiheadAttention", "softmax_attention"]

#: Longest token sequence (window) that bf16 attention on the CPU runs in the explicit form (32 x 32 windows).
EXPLICIT_MAX_TOKENS = 1024


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v``, called like :func:`torch.nn.functional.scaled_dot_product_attention`.

    One function, two kernels. On the CPU in bf16 (under autocast) it runs as ``bmm -> softmax -> bmm``:
    with MANO's 64-token windows and head dimension 16, torch 2.13's CPU flash-attention kernel in bf16 is
    slower than this explicit form (forward 6.4 vs 4.7 ms for the 256 windows x 4 heads of a 128² level, 2
    threads), and its backward takes 3x the time of its own fp32 version (on a loaded machine it was 70 % of
    a bf16 training step, which then ran slower than fp32). The explicit form also serves a float mask that
    needs a gradient (the learned position bias in training): torch's SDPA then runs its unfused math path
    anyway, plus a "safe softmax" scan of the scores for fully masked rows (``aten::all``, ``isneginf``,
    ``where``: 12 % of the demo MANO's training step, profiled) that this mask never needs. Everywhere else
    (fp32 without such a mask, CUDA) it is ``scaled_dot_product_attention``: the explicit form was slower there
    (fp32 inference at 128², 185 vs 121 ms per MANO call). Both compute the same function
    (``tests/test_attention_kernels.py``); the bf16 path adds a float mask in bf16, and rows always keep at
    least one key (padding masks only mask padded keys), so no row is all ``-inf``. The explicit form holds
    the ``L x L`` scores of every window and head, so it is used for windows of at most
    :data:`EXPLICIT_MAX_TOKENS` tokens (global attention on a fine grid keeps the flash kernel).
    Measurements: BENCHMARKS.md, "bf16 and compiled MANO on a quiet machine" and "Level-batched multipole
    attention".

    Parameters
    ----------
    q, k, v : torch.Tensor
        ``[B, heads, L, d]`` (``v`` may have another last size).
    attn_mask : torch.Tensor, optional
        Boolean (``True`` = attend) or additive float mask broadcastable to ``[B, heads, L, L]``.
    dropout_p : float
        Dropout on the attention weights (training only; the caller passes 0 in eval mode).
    scale : float, optional
        Default ``d ** -0.5``.
    """
    explicit = q.device.type == "cpu" and q.shape[-2] <= EXPLICIT_MAX_TOKENS
    explicit = explicit and (q.dtype == torch.bfloat16 or (attn_mask is not None and attn_mask.requires_grad))
    if not explicit:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    # the scale on q ([L, d]) rather than on the scores ([L, L]): 4x less elementwise work for 64-token windows
    s = torch.matmul(q * (q.shape[-1] ** -0.5 if scale is None else scale), k.transpose(-2, -1))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask.to(s.dtype)
    p = torch.softmax(s, dim=-1)
    if dropout_p:
        p = F.dropout(p, dropout_p)
    return torch.matmul(p, v)


def _assemble(blocks: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
    """One grid ``[B, H, W, C]`` from its rectangular blocks keyed by their top-left corner ``(row, column)``."""
    rows: dict[int, list[tuple[int, torch.Tensor]]] = {}
    for (r0, c0), block in blocks.items():
        rows.setdefault(r0, []).append((c0, block))
    bands = []
    for _, row in sorted(rows.items(), key=lambda item: item[0]):
        row.sort(key=lambda item: item[0])
        bands.append(torch.cat([block for _, block in row], dim=2) if len(row) > 1 else row[0][1])
    return torch.cat(bands, dim=1) if len(bands) > 1 else bands[0]


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
    position_bias : bool, optional
        Add a learned relative-position bias ``b(Δ / extent)`` to the attention logits: a per-head MLP
        (2 → 64 → heads) of the displacement between query and key divided by the window size (by the grid
        size for global attention), the continuous position bias of Swin V2 [4]_. Measured in units of the
        window, it is the same function of physical displacement in reference-grid mode. Its last layer starts
        at zero (plain attention). Default False.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_heads: int = 4,
        head_dim: int | None = None,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        position_bias: bool = False,
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
        self.position_bias = None
        if position_bias:
            # continuous relative-position bias (Swin V2): a small MLP of the normalised displacement
            self.position_bias = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, n_heads))
            nn.init.zeros_(self.position_bias[2].weight)
            nn.init.zeros_(self.position_bias[2].bias)

    def _bias(self, wh: int, ww: int, extent: Sequence[float], device: torch.device) -> torch.Tensor:
        """Relative-position bias ``[heads, wh * ww, wh * ww]`` for displacements divided by ``extent``."""
        return self._bias_from_table(self._bias_table((wh, ww), extent, device), (wh, ww), wh, ww)

    def _bias_table(self, span: Sequence[int], extent: Sequence[float], device: torch.device) -> torch.Tensor:
        """The bias MLP on every displacement of a ``span`` window: ``[2 sh - 1, 2 sw - 1, heads]``."""
        dy = torch.arange(-(span[0] - 1), span[0], device=device, dtype=torch.float32) / float(extent[0])
        dx = torch.arange(-(span[1] - 1), span[1], device=device, dtype=torch.float32) / float(extent[1])
        return self.position_bias(torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1))

    @staticmethod
    def _bias_from_table(table: torch.Tensor, span: Sequence[int], wh: int, ww: int) -> torch.Tensor:
        """Bias ``[heads, wh * ww, wh * ww]`` of a ``wh x ww`` window from the table of a ``span`` window
        (``wh <= span[0]``, ``ww <= span[1]``: its displacements are a centred part of the table)."""
        iy = torch.arange(wh, device=table.device).repeat_interleave(ww)
        ix = torch.arange(ww, device=table.device).repeat(wh)
        rel_y = iy[:, None] - iy[None, :] + (span[0] - 1)
        rel_x = ix[:, None] - ix[None, :] + (span[1] - 1)
        return table[rel_y, rel_x].permute(2, 0, 1)

    def forward(
        self,
        x: torch.Tensor,
        window: Sequence[int] | None = None,
        shift: Sequence[int] = (0, 0),
        stride: Sequence[int] | None = None,
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
        stride : (int, int), optional
            Step between window starts. ``None`` or equal to the window: non-overlapping windows. Smaller:
            overlapping windows (the unfold/fold windows of the MANO authors' layer), starting at
            ``0, stride, ...``; each point's output is the mean of its outputs in the windows that contain it.
            The axis is zero-padded behind so that the windows cover it, and padded keys are masked. Cannot be
            combined with ``shift``.

        Returns
        -------
        torch.Tensor
            ``[B, H, W, C_out]``.
        """
        out, geo = self._attend(x, window, shift, stride)
        return self._merge(out, geo)

    def forward_add(
        self,
        x: torch.Tensor,
        base: torch.Tensor,
        window: Sequence[int] | None = None,
        shift: Sequence[int] = (0, 0),
        stride: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """``base + forward(x, window, shift, stride)`` with the window merge fused into the addition.

        When the grid tiles exactly into non-overlapping windows and ``base`` is a contiguous
        ``[B, H, W, C_out]`` tensor, the window-layout attention output is added through a permuted view,
        which saves one full-size copy (and its allocation) per call.
        """
        return self.merge_add(*self._attend(x, window, shift, stride), base)

    @classmethod
    def merge_add(cls, out: torch.Tensor, geo: tuple, base: torch.Tensor) -> torch.Tensor:
        """``base +`` the window-layout ``out`` put back on the grid (:meth:`_merge`), fused where it can be:
        a permuted view added to ``base`` when the windows tile the grid exactly (no full-size copy)."""
        b, h, w, nh, nw, wh, ww, padded = geo[:8]
        c = out.shape[-1]
        if padded or geo[-1] is not None or not base.is_contiguous() or tuple(base.shape) != (b, h, w, c):
            return base + cls._merge(out, geo)
        if nh == 1 and nw == 1:
            return base + out.view(b, h, w, c)
        out6 = out.view(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
        # the sum follows the layout of its first operand (contiguous grid order): the reshape is a view
        return (base.view(b, nh, wh, nw, ww, c) + out6).reshape(b, h, w, c)

    def _attend(
        self, x: torch.Tensor, window: Sequence[int] | None, shift: Sequence[int], stride: Sequence[int] | None = None
    ):
        """Window-layout attention: returns ``out [B * n_windows, wh * ww, C_out]`` and the geometry.

        Data flow (one copy in, none out): the input is partitioned into windows (one copy of ``C_in``
        channels, none for a single window, :meth:`_partition`), the Q/K/V projection runs on the window layout,
        SDPA reads ``q, k, v`` as strided views of that one tensor, its output (``[B', L, heads, d]`` memory order
        on CPU, the order of its inputs) is viewed as ``[B', L, heads * d]`` for the output projection
        (:meth:`_window_attention`).
        """
        windows, mask, geo = self._partition(x, window, shift, stride)
        del x  # lower the peak in inference (autograd keeps what backward needs)
        holder = [windows]
        del windows
        return self._window_attention(holder, mask, geo[5], geo[6], self._extent(window, geo[1], geo[2])), geo

    @staticmethod
    def _extent(window: Sequence[int] | None, h: int, w: int) -> tuple[int, int]:
        """Units of the position bias' displacements: the requested window (the grid for global attention)."""
        return (max(h - 1, 1), max(w - 1, 1)) if window is None else (int(window[0]), int(window[1]))

    def _partition(
        self, x: torch.Tensor, window: Sequence[int] | None, shift: Sequence[int], stride: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple]:
        """Windows of a channels-last grid ``x [B, H, W, C]``.

        Returns
        -------
        windows : torch.Tensor
            ``[B * n_windows, wh * ww, C]`` tokens of every window (padded grids hold zeros at padded points).
        mask : torch.Tensor or None
            Key mask ``[B * n_windows, 1, 1, wh * ww]`` (``True`` = real token), ``None`` if nothing is padded.
        geo : tuple
            ``(b, h, w, nh, nw, wh, ww, padded, hp, wp, top, left, steps)``, what :meth:`_merge` needs.
        """
        b, h, w, c = x.shape
        if window is None:
            wh, ww = h, w
        else:
            wh, ww = effective_window(h, int(window[0])), effective_window(w, int(window[1]))
        steps = None
        if stride is not None:
            th = min(int(stride[0]), wh) if h > wh else wh
            tw = min(int(stride[1]), ww) if w > ww else ww
            if th < 1 or tw < 1:
                raise ValueError(f"window stride must be >= 1, got {tuple(stride)}")
            if (th, tw) != (wh, ww):
                steps = (th, tw)
        if steps is not None:
            if any(int(t) for t in shift):
                raise ValueError("overlapping windows (stride < window) cannot be combined with a window shift")
            top = left = 0
            bottom, nh = overlap_padding(h, wh, steps[0])
            right, nw = overlap_padding(w, ww, steps[1])
        else:
            sh = int(shift[0]) % wh if h > wh else 0
            sw = int(shift[1]) % ww if w > ww else 0
            top, bottom, nh = axis_padding(h, wh, sh)
            left, right, nw = axis_padding(w, ww, sw)
        padded = bool(top or bottom or left or right)
        mask = None
        if padded:
            x = F.pad(x, (0, 0, left, right, top, bottom))
        hp, wp = h + top + bottom, w + left + right
        nwin, length = b * nh * nw, wh * ww
        if steps is not None:  # overlapping windows: [B, nh, nw, C, wh, ww] strided view -> one copy
            xw = x.unfold(1, wh, steps[0]).unfold(2, ww, steps[1]).permute(0, 1, 2, 4, 5, 3).reshape(nwin, length, c)
            if padded:
                valid = torch.zeros(hp, wp, dtype=torch.bool, device=x.device)
                valid[:h, :w] = True
                valid = valid.unfold(0, wh, steps[0]).unfold(1, ww, steps[1]).reshape(1, nh * nw, length)
                mask = valid.expand(b, -1, -1).reshape(nwin, 1, 1, length)
        else:
            if padded:
                mask = padding_key_mask(h, w, (top, bottom, left, right), (wh, ww), b, x.device)
            if nh == 1 and nw == 1:
                xw = x.reshape(b, length, c)
            else:  # window partition [B, nh, wh, nw, ww, C] -> [B * nh * nw, wh * ww, C]
                xw = x.reshape(b, nh, wh, nw, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(nwin, length, c)
        return xw, mask, (b, h, w, nh, nw, wh, ww, padded, hp, wp, top, left, steps)

    def _window_attention(
        self, holder: list[torch.Tensor], mask: torch.Tensor | None, wh: int, ww: int, extent: Sequence[int]
    ) -> torch.Tensor:
        """Attention inside windows: ``holder = [windows [N, wh * ww, C_in]]`` -> ``[N, wh * ww, C_out]``.

        The window tokens come in a one-element list that is emptied once they are projected, so that their
        memory can go before the attention runs (inference peak). ``mask`` as returned by :meth:`_partition`;
        ``extent``: the units of the position bias' displacements (:meth:`_extent`).
        """
        nwin, length, heads, d = holder[0].shape[0], wh * ww, self.n_heads, self.head_dim
        # q, k, v: [B', heads, L, d] strided views of the projection (memory order [B', L, heads, d]);
        # chunk() keeps the backward a cheap cat along channels (unbind() of a permuted [3, ...] view
        # would make autograd stack and transpose the gradients: two slow full-size copies)
        q, k, v = (t.view(nwin, length, heads, d).transpose(1, 2) for t in self.qkv(holder.pop()).chunk(3, dim=-1))
        p_drop = self.dropout if self.training else 0.0
        if self.position_bias is None:
            o = softmax_attention(q, k, v, attn_mask=mask, dropout_p=p_drop)
        else:
            # 4-D [1, heads, L, L]: a 3-D mask sends CPU SDPA to its unfused path (measured: 11x time, 29x memory)
            bias = self._bias(wh, ww, extent, q.device).unsqueeze(0)
            if mask is None:
                o = softmax_attention(q, k, v, attn_mask=bias, dropout_p=p_drop)
            else:
                # SDPA takes one mask: the bias (shared by all windows, never materialised per window) is the
                # mask, and the key padding is folded into q.k through one extra channel: 1 for every query,
                # 0 for real keys and -1e4 sqrt(d) for padded ones (softmax weight exp(-1e4) = 0)
                real = mask.view(nwin, 1, length, 1)
                k_extra = torch.zeros(real.shape, dtype=k.dtype, device=k.device).masked_fill(~real, -1e4 * d**0.5)
                q = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)
                k = torch.cat([k, k_extra.expand(nwin, heads, length, 1)], dim=-1)
                v = torch.cat([v, torch.zeros_like(v[..., :1])], dim=-1)
                o = softmax_attention(q, k, v, attn_mask=bias, dropout_p=p_drop, scale=d**-0.5)
                o = o[..., :d]
        del q, k, v
        o = o.transpose(1, 2).reshape(nwin, length, heads * d)
        return self.proj_drop(self.proj(o))

    def attend_grids(
        self,
        grids: Sequence[torch.Tensor],
        window: Sequence[int],
        shift: Sequence[int] = (0, 0),
        token_norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """:meth:`forward` of several grids at once, with non-overlapping windows: ``[B, H_l, W_l, C_in]`` grids
        (e.g. the levels of a multipole hierarchy) -> their ``[B, H_l, W_l, C_out]`` outputs.

        Each grid is cut into the windows :meth:`forward` uses (``window`` capped at the grid, the window grid
        offset by ``shift``), but without padding: the windows a grid edge cuts short are kept at their real size,
        so no padded token is computed and no key mask is needed. The windows of all grids are grouped by shape
        (on a 33² grid with 8 x 8 windows: 8 x 8, 8 x 1, 1 x 8 and 1 x 1; a 5 x 5 level is one 5 x 5 window). The
        token norm (``token_norm``, applied to every token once) and the Q/K/V and output projections run once on
        the tokens of every window; the attention runs once per window shape, with the position bias of that
        shape (the bias of a cut window is the bias of its displacements, as in the padded and masked windows of
        :meth:`forward`). Each grid's result equals its :meth:`forward` (to rounding).
        """
        k_h, k_w = int(window[0]), int(window[1])
        regions: dict[tuple[int, int], list[tuple[int, tuple]]] = {}  # window shape -> [(grid index, region)]
        for g, x in enumerate(grids):
            rows = window_segments(x.shape[1], k_h, int(shift[0]))
            cols = window_segments(x.shape[2], k_w, int(shift[1]))
            for row in rows:
                for col in cols:
                    regions.setdefault((row[1], col[1]), []).append((g, (row, col)))
        pieces, sizes = [], []  # tokens of every window, grouped by window shape
        for (eh, ew), items in regions.items():
            for g, ((r0, _, nr), (c0, _, nc)) in items:
                x = grids[g]
                b, c = x.shape[0], x.shape[-1]
                block = x[:, r0 : r0 + nr * eh, c0 : c0 + nc * ew]
                pieces.append(block.reshape(b, nr, eh, nc, ew, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, c))
            sizes.append(sum(p.shape[0] for p in pieces[len(pieces) - len(items) :]))
        tokens = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        del pieces
        if token_norm is not None:
            tokens = token_norm(tokens)
        qkv = self.qkv(tokens)
        del tokens
        heads, d = self.n_heads, self.head_dim
        table = self._bias_table((k_h, k_w), (k_h, k_w), qkv.device) if self.position_bias is not None else None
        p_drop = self.dropout if self.training else 0.0
        outs = []
        for ((eh, ew), _), part in zip(regions.items(), qkv.split(sizes), strict=True):
            length = eh * ew
            n = part.shape[0] // length
            q, k, v = (t.view(n, length, heads, d).transpose(1, 2) for t in part.chunk(3, dim=-1))
            bias = None if table is None else self._bias_from_table(table, (k_h, k_w), eh, ew).unsqueeze(0)
            o = softmax_attention(q, k, v, attn_mask=bias, dropout_p=p_drop)
            outs.append(o.transpose(1, 2).reshape(n * length, heads * d))
        del qkv, q, k, v
        out = self.proj_drop(self.proj(torch.cat(outs) if len(outs) > 1 else outs[0]))
        del outs
        # back onto the grids: each region's windows, then the regions of a grid side by side
        blocks: dict[int, dict[tuple[int, int], torch.Tensor]] = {}
        offset = 0
        for (eh, ew), items in regions.items():
            for g, ((r0, _, nr), (c0, _, nc)) in items:
                b = grids[g].shape[0]
                count = b * nr * nc * eh * ew
                piece = out[offset : offset + count].view(b, nr, nc, eh, ew, -1).permute(0, 1, 3, 2, 4, 5)
                blocks.setdefault(g, {})[(r0, c0)] = piece.reshape(b, nr * eh, nc * ew, -1)
                offset += count
        return [_assemble(blocks[g]) for g in range(len(grids))]

    @staticmethod
    def _merge(out: torch.Tensor, geo: tuple) -> torch.Tensor:
        """Window layout ``[B * nh * nw, wh * ww, C]`` -> grid ``[B, H, W, C]`` (padding cropped).

        Overlapping windows are summed back onto the grid (:func:`torch.nn.functional.fold`) and divided
        by the number of windows that hold each point.
        """
        b, h, w, nh, nw, wh, ww, padded, hp, wp, top, left, steps = geo
        c = out.shape[-1]
        if steps is not None:
            cols = out.reshape(b, nh * nw, wh, ww, c).permute(0, 4, 2, 3, 1).reshape(b, c * wh * ww, nh * nw)
            summed = F.fold(cols, (hp, wp), (wh, ww), stride=steps)[:, :, :h, :w]
            ones = torch.ones(1, wh * ww, nh * nw, dtype=out.dtype, device=out.device)
            count = F.fold(ones, (hp, wp), (wh, ww), stride=steps)[:, :, :h, :w]
            return (summed / count).permute(0, 2, 3, 1)
        if nh == 1 and nw == 1:
            grid = out.view(b, hp, wp, c)
        else:
            grid = out.view(b, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if padded:
            grid = grid[:, top : top + h, left : left + w]
        return grid


class AttentionMixer(GridTokenMixer):
    """Base of the attention mixers: one :class:`WindowedMultiheadAttention` (one set of Q/K/V/output weights),
    optionally preceded by the MANO authors' LayerNorms of the tokens.

    Parameters
    ----------
    in_channels, out_channels, n_modes, resolution_scaling_factor
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    n_heads, head_dim, dropout, qkv_bias, position_bias
        See :class:`WindowedMultiheadAttention`.
    token_norm : bool, optional
        Normalise the tokens before every attention call: a LayerNorm of the tokens, then the attention's own
        pre-norm (two LayerNorms, as in the MANO authors' ``LocalAttention2D``). The mixer then normalises its
        own input (:attr:`normalizes_input`), so a block around it needs no pre-norm. Default False.
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
        position_bias: bool = False,
        token_norm: bool = False,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        **neuralop_kwargs,
    ) -> None:
        super().__init__(in_channels, out_channels, n_modes, resolution_scaling_factor, **neuralop_kwargs)
        self.norm = nn.LayerNorm(self.in_channels) if token_norm else None
        self.attention_norm = nn.LayerNorm(self.in_channels) if token_norm else None
        self.attention = WindowedMultiheadAttention(
            self.in_channels, self.out_channels, n_heads, head_dim, dropout, qkv_bias, position_bias
        )

    @property
    def normalizes_input(self) -> bool:
        """Whether the mixer normalises its own input (``token_norm``)."""
        return self.norm is not None

    def attend(
        self,
        x: torch.Tensor,
        window: Sequence[int] | None = None,
        shift: Sequence[int] = (0, 0),
        stride: Sequence[int] | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The shared attention on channels-last ``x`` (after the token norms), plus ``base`` if given.

        ``window``, ``shift`` and ``stride`` as in :meth:`WindowedMultiheadAttention.forward`; with ``base``
        the window merge is fused into the sum (:meth:`WindowedMultiheadAttention.forward_add`).
        """
        if self.norm is not None:
            x = self.attention_norm(self.norm(x))
        if base is None:
            return self.attention(x, window=window, shift=shift, stride=stride)
        return self.attention.forward_add(x, base, window=window, shift=shift, stride=stride)

    def attend_grids(
        self, grids: Sequence[torch.Tensor], window: Sequence[int], shift: Sequence[int] = (0, 0)
    ) -> list[torch.Tensor]:
        """The shared attention of several channels-last grids in one pass, non-overlapping windows
        (:meth:`WindowedMultiheadAttention.attend_grids`: one call of each token norm and projection for the
        tokens of every grid, one attention call per window shape). Returns each grid's output."""
        norm = None if self.norm is None else (lambda t: self.attention_norm(self.norm(t)))
        return self.attention.attend_grids(grids, window, shift, token_norm=norm)


class GlobalAttention(AttentionMixer):
    """Global (ViT-like) multi-head softmax attention over all ``H * W`` grid points.

    Quadratic in ``H * W`` in time (and, without a fused kernel, in memory): the baseline that
    :class:`~mano_pde.layers.multipole_attention.MultipoleAttention` approximates in linear time.
    The constructor is :class:`AttentionMixer`'s.
    """

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: every point attends to every point."""
        return self.attend(x, window=None)
