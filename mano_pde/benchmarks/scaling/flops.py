"""Analytic FLOP counts of multipole attention and the MANO model, and the GEMM shapes behind them.

Convention: one multiply-add is 2 FLOPs; only the matrix products are counted (linear layers, the two
attention products, the strided / transposed convolutions). LayerNorms, softmax, GELU/tanh, residual adds,
padding, window copies, the loss and the optimizer are not counted: they are elementwise (a few FLOPs per
value against the ``2 C`` to ``6 C`` per value of the products at width ``C = 64``), and
:class:`torch.utils.flop_counter.FlopCounterMode` does not count them either.

Multipole attention, one call on a ``B x H x W`` grid with ``C`` channels in, ``C_o`` out, ``h`` heads of
``d`` channels (``D = h d``), windows of span ``k`` and stride ``s`` on every level, factor ``r``. Level ``l``
(``l = 0 .. L-1``, ``L = floor(log_r N)`` by the authors' rule) has an ``H_l x W_l`` grid
(``H_{l+1} = ceil(H_l / r)``), windows ``w_h = min(k, H_l)`` by ``w_w = min(k, W_l)`` of ``T = w_h w_w``
tokens, ``n_l = B n_h n_w`` windows (``n_h = ceil(H_l / w_h)`` for non-overlapping windows, one more with a
shift, ``ceil((H_l - w_h) / s) + 1`` for overlapping ones; padded tokens are computed and counted). Levels that
go through the attention together (:meth:`~mano_pde.layers.MultipoleAttention.batched_levels`) compute no padded
token: their windows cut by the grid edge count at their real size (a sum over the window shapes)::

    F_level(l) = 2 n_l T C 3D           Q/K/V projection (on the window tokens, padding included)
               + 2 n_l T^2 D            Q K^T per window (h heads of d channels)
               + 2 n_l T^2 D            (softmax) V per window
               + 2 n_l T D C_o          output projection
    F_down(l)  = 2 B N_{l+1} C^2 r^2    strided convolution l -> l+1 (kernel r, stride r), l = 0 .. L-2
    F_up(l)    = 2 B N_{l+1} C_o^2 r^2  transposed convolution l+1 -> l (before the crop), l = 0 .. L-2
    F_MA       = sum_l F_level(l) + sum_{l<L-1} (F_down(l) + F_up(l))

with ``N_{l+1} = H_{l+1} W_{l+1}`` (pooling / interpolation instead of convolutions: 0). The MANO model
(:class:`~mano_pde.models.TransformerOperator` with the multipole mixer) on ``N = H W`` points, width ``C``,
MLP width ``m C`` (``mlp_ratio = m``), ``n_layers`` blocks::

    F_forward = 2 B N sum(in_i out_i over the lifting's linear layers)          (MANO: (1 + 2) -> C)
              + n_layers (F_MA + 2 B N C (m C) 2)                                (mixer + block MLP)
              + 2 B N sum(in_i out_i over the projection's linear layers)       (MANO: C -> C -> 1)
    F_train   = 3 F_forward - 2 B N in_0 out_0

A training step is the forward pass plus a backward pass that computes, for every product, the gradient of
its input and of its weight (two products of the forward's size each), except for the first lifting layer,
whose input (the data) needs no gradient. These are the *model* FLOPs: PyTorch's fused CPU flash-attention
backward recomputes ``Q K^T`` (more arithmetic than counted), and a compiled model may fuse or re-order but
does the same products. ``tests/test_scaling_flops.py`` checks both counts against
:class:`~torch.utils.flop_counter.FlopCounterMode` on tiny models (with the math SDPA backend, because the
flop counter does not count the fused CPU attention kernel ``aten._scaled_dot_product_flash_attention_for_cpu``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["main_gemm_shapes", "model_flops", "multipole_attention_flops"]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _windows(size: int, window: int, stride: int, shift: int) -> tuple[int, int]:
    """``(window extent, number of windows)`` along one axis of ``size`` points (module docstring)."""
    span = min(window, size)
    if size <= span:
        return span, 1
    step = min(stride, span)
    if step != span:  # overlapping windows from 0, padded behind
        return span, _ceil(size - span, step) + 1
    before = (span - shift % span) % span
    return span, _ceil(size + before, span)


def multipole_attention_flops(layer: Any, height: int, width: int, batch: int = 1) -> dict[str, int]:
    """Forward FLOPs of one :class:`~mano_pde.layers.MultipoleAttention` call (module docstring formula).

    Parameters
    ----------
    layer : MultipoleAttention
        The layer (its options are read: channels, heads, window, stride, shift, factor, resampling, levels).
    height, width : int
        Input grid.
    batch : int, optional
        Batch size. Default 1.

    Returns
    -------
    dict
        ``{"qkv", "scores", "values", "output", "down", "up", "total"}`` in FLOPs.

    Raises
    ------
    ValueError
        For options the formula does not cover: the position bias (its MLP and, on padded windows, the
        extra head channel) and the reference-grid mode on a grid finer than the reference.
    """
    attn = layer.attention
    ref = getattr(layer, "reference_grid", None)
    if attn.position_bias is not None or (ref is not None and (height > ref[0] or width > ref[1])):
        raise ValueError("the FLOP formula covers multipole attention without position bias or reference-grid mode")
    c_in, c_out, d_inner = attn.in_channels, attn.out_channels, attn.inner_channels
    k, s, r = layer.window_size, layer.window_stride, layer.factor
    shapes = layer.level_shapes(height, width)
    parts = dict.fromkeys(("qkv", "scores", "values", "output", "down", "up"), 0)
    from mano_pde.layers.windowing import window_segments  # torch: not at import (``mano-pde --help``)

    together = set(layer.batched_levels(shapes))
    for i, (h, w) in enumerate(shapes):
        if i in together:  # windows cut by the grid edge at their real size: (n windows, tokens each)
            rows = [(count, extent) for _, extent, count in window_segments(h, k, layer.shift)]
            cols = [(count, extent) for _, extent, count in window_segments(w, k, layer.shift)]
            runs = [(batch * nr * nc, eh * ew) for nr, eh in rows for nc, ew in cols]
        else:  # padded windows
            wh, nh = _windows(h, k, s, layer.shift)
            ww, nw = _windows(w, k, s, layer.shift)
            runs = [(batch * nh * nw, wh * ww)]
        for n_win, tokens in runs:
            parts["qkv"] += 2 * n_win * tokens * c_in * 3 * d_inner
            parts["scores"] += 2 * n_win * tokens * tokens * d_inner
            parts["values"] += 2 * n_win * tokens * tokens * d_inner
            parts["output"] += 2 * n_win * tokens * d_inner * c_out
        if i + 1 < len(shapes):
            coarse = batch * shapes[i + 1][0] * shapes[i + 1][1]
            if layer.down is not None:
                parts["down"] += 2 * coarse * c_in * c_in * r * r
            if layer.up is not None:
                parts["up"] += 2 * coarse * c_out * c_out * r * r
    parts["total"] = sum(parts.values())
    return parts


def _mlp_flops(mlp: Any, points: int) -> list[int]:
    """FLOPs of each linear layer of a neuralop ChannelMLP applied at ``points`` points."""
    return [2 * points * fc.weight.shape[0] * fc.weight.shape[1] for fc in mlp.fcs]


def model_flops(model: Any, height: int, width: int, batch: int = 1) -> dict[str, int] | None:
    """Forward and training-step FLOPs of a multipole-attention model (module docstring formula).

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~mano_pde.models.TransformerOperator` with the multipole mixer (e.g. ``create_model("mano")``).
    height, width : int
        Input grid (the output grid is the same).
    batch : int, optional
        Batch size. Default 1.

    Returns
    -------
    dict or None
        ``{"forward", "train", "attention", "mlp", "lifting", "projection"}`` in FLOPs (``attention`` and
        ``mlp`` summed over the blocks, forward); ``None`` for other models or options the formula does not
        cover (see :func:`multipole_attention_flops`).
    """
    if getattr(model, "mixer", None) != "multipole" or not hasattr(model, "blocks"):
        return None
    points = batch * height * width
    try:
        attention = sum(multipole_attention_flops(b.mixer, height, width, batch)["total"] for b in model.blocks)
    except ValueError:
        return None
    mlp = sum(2 * points * b.fc1.in_features * b.fc1.out_features * 2 for b in model.blocks)
    lifting = _mlp_flops(model.lifting, points)
    projection = _mlp_flops(model.projection, points)
    forward = attention + mlp + sum(lifting) + sum(projection)
    return {
        "forward": forward,
        "train": 3 * forward - lifting[0],
        "attention": attention,
        "mlp": mlp,
        "lifting": sum(lifting),
        "projection": sum(projection),
    }


def main_gemm_shapes(model: Any, height: int, width: int, batch: int = 1) -> list[dict[str, Any]] | None:
    """The largest matrix products of a multipole-attention model's forward pass, as ``torch.matmul`` shapes.

    The level-0 (finest grid) products of one block, which carry most of the FLOPs: the Q/K/V projection
    ``[T, C] @ [C, 3D]`` and the output projection ``[T, D] @ [D, C]`` over the ``T`` window tokens, the
    per-window products ``[n h, T_w, d] @ [n h, d, T_w]`` and ``[n h, T_w, T_w] @ [n h, T_w, d]``, and the
    block MLP ``[N, C] @ [C, mC]``, ``[N, mC] @ [mC, C]``. Returns ``None`` for other models.

    Returns
    -------
    list of dict
        ``{"name", "a": shape, "b": shape, "flops"}`` per product (``flops`` = 2 x multiply-adds).
    """
    if getattr(model, "mixer", None) != "multipole" or not hasattr(model, "blocks"):
        return None
    block = model.blocks[0]
    layer, attn = block.mixer, block.mixer.attention
    k, s = layer.window_size, layer.window_stride
    wh, nh = _windows(height, k, s, layer.shift)
    ww, nw = _windows(width, k, s, layer.shift)
    n_win, tokens, heads, d = batch * nh * nw, wh * ww, attn.n_heads, attn.head_dim
    c, inner, hidden = attn.in_channels, attn.inner_channels, block.fc1.out_features
    t_all, points = n_win * tokens, batch * height * width
    shapes = [
        ("Q/K/V projection", (t_all, c), (c, 3 * inner)),
        ("Q K^T per window", (n_win * heads, tokens, d), (n_win * heads, d, tokens)),
        ("(softmax) V per window", (n_win * heads, tokens, tokens), (n_win * heads, tokens, d)),
        ("output projection", (t_all, inner), (inner, attn.out_channels)),
        ("MLP fc1", (points, c), (c, hidden)),
        ("MLP fc2", (points, hidden), (hidden, c)),
    ]
    out = []
    for name, a, b in shapes:
        lead = a[0] if len(a) == 3 else 1
        out.append({"name": name, "a": list(a), "b": list(b), "flops": 2 * lead * a[-2] * a[-1] * b[-1]})
    return out
