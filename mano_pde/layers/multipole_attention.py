"""Multipole attention: the attention layer of MANO (Colagrande et al., arXiv 2507.02748, ICCV-W 2025).

Attention is read as an n-body interaction between grid points and evaluated the way the fast multipole
method evaluates one: near-field interactions at full resolution, far-field interactions on coarser grids.

The authors' layer (the default)
--------------------------------
This is the layer of the authors' released model file (class ``Multipole_Attention2D`` with its
``LocalAttention2D``; read to learn its semantics, checked against an independent loop implementation in
``tests/test_layers_multipole_attention.py``). For an input ``x_0`` on an ``H x W`` grid, window span ``k``,
window stride ``s`` and factor ``r``::

    levels:   L = floor(log_r(N)),  N = min(image_size) (or min(H, W) at call time if no image_size)
              x_{l+1} = Down(x_l)                          l = 0 .. L-2
    attend:   o_l = A(x_l)                                 ONE shared module A on every level:
              A(x) = fold(Attn(LN_a(LN_w(unfold_{k,s}(x))))) / count
    combine:  res = o_{L-1};  for i = 0, 1, ..:  res = o_{L-2-i} + Up(res) / (i + 1)
    output:   res (on the finest level)

* ``unfold_{k,s}`` cuts ``k x k`` windows every ``s`` points (``s = k``: non-overlapping; ``s < k``:
  overlapping, and ``fold`` averages each point's outputs over the windows that hold it, ``count``).
* ``LN_w`` is a LayerNorm of the window tokens, ``LN_a`` the attention's own pre-norm (two LayerNorms, as
  the authors wrote it), ``Attn`` multi-head softmax attention with a bias-free Q/K/V projection and a
  biased output projection.
* ``Down`` is one strided convolution (kernel ``r``, stride ``r``, no bias) and ``Up`` one transposed
  convolution (kernel ``r``, stride ``r``, no bias) shared by all levels, with PyTorch's default
  initialisation; the authors' ``avg_pool`` option is average pooling down and nearest up.
* The V-cycle weights count from the **coarse** end: for 4 levels
  ``res = o_2 + Up(o_3)``, ``res = o_1 + Up(res) / 2``, ``res = o_0 + Up(res) / 3``.
* Cost: level ``l`` has ``N / r^(2l)`` points, each attending to ``k^2 (k/s)^2`` keys in all, so time and
  memory are linear in the number of grid points.

Where sizes do not divide (what we do, where the authors' code stops)
--------------------------------------------------------------------
The authors' code needs ``H = W = image_size``, grids divisible by ``r`` on every level and
``(H_l - k) % s == 0`` (otherwise ``fold`` leaves points uncovered or the up-sampled field does not match
the finer level: a shape error). This layer takes any ``H x W``: windows larger than a level's grid are
capped at the grid; a grid the windows do not cover is zero-padded at the bottom/right and the padded keys
are masked out of the softmax (exact: results on real points equal attention over each window's real
points); before each down-sampling a grid not divisible by ``r`` is padded by edge replication (coarse
level ``ceil(H_l / r)``); the up-sampled field is cropped back to the finer grid. On grids where the
authors' code runs, the two agree.

How it is evaluated (values unchanged)
--------------------------------------
The levels' attentions ``o_l = A(x_l)`` depend on their own inputs only, so the levels of up to
:attr:`MultipoleAttention.batch_max_points` points go through ``A`` together: the tokens of every level through
each LayerNorm and the Q/K/V and output projections in one call, the attention once per window shape. The windows
a grid edge cuts short are kept at their real size instead of being padded and masked (on 33² with ``k = 8``,
47 % of the padded scores were padding), so no padded token is computed. ``Down`` and ``Up`` (kernel = stride
= ``r``) run as one matrix product on ``r x r`` patches with the convolutions' own weights. The per-level path
(padded windows, the window merge fused into the V-cycle's sum) serves larger levels and overlapping windows.
Both paths give the same values and gradients to rounding (tested, with and without position bias).

Departures of this package (named options, never the default)
--------------------------------------------------------------
* ``level_rule="window"``: levels until the coarsest grid fits in one window, counted at call time (the
  rule of this package's first MANO).
* ``level_norm=False``: no LayerNorm inside the layer (the surrounding pre-norm block normalises level 0
  only; coarse levels see conv-pooled features unnormalised).
* ``position_bias=True``: a learned continuous relative-position bias in the attention logits.
* ``shift > 0``: Swin-style shifted windows on every level (non-overlapping windows only).
* ``resample_init="average"``: Down starts as average pooling and Up as nearest-neighbour interpolation.
* ``reference_grid=(H_r, W_r)``: reference-grid mode, below.

Reference-grid mode (an option of this package, not in the paper)
------------------------------------------------------------------
Windows are counted in grid points, so on a grid ``k`` times finer than the training grid the authors'
layer sees a ``k``-times smaller physical neighbourhood at level 0. With ``reference_grid=(H_r, W_r)`` (the
training grid) an input finer than the reference is processed at the reference *physical* scales, on
vertex-centred node grids (node ``i`` of ``H`` at ``i / (H - 1)``)::

    t_h = (H - 1) / (H_r - 1)                            (33 -> 129 gives t = 4)
    near:  o_0  = A(x_0) with windows round(t_h k) x round(t_w k) (stride scaled alike) on the fine grid
    far:   x_r  = R(x_0): node injection x_0[::t_h, ::t_w] when t is an integer, else bilinear
                  interpolation through the nodes (align_corners); levels 1 .. L-1 of the reference grid
                  are built from x_r exactly as in training and combined as above into res_1
    output res_0 = o_0 + P(Up(res_1)) / (L - 1),  P = bilinear through the nodes (align_corners)

``R`` and ``P`` are consistent: both treat the grids as nodes of the same square, so on a fine input whose
node subsample equals a training input the far field receives exactly the training-grid level inputs
(tested). At the reference grid and on coarser grids the mode is the plain layer.

With ``grid_geometry="half-open"`` (``x_i = i / H``, neuraloperator's Darcy files) or ``"cell"`` the same holds
for that geometry (:mod:`mano_pde.grids`): ``t = H / H_r``, ``R`` is exact injection where the reference grid is
nested (``H = t H_r``; cell grids: ``t`` odd) and ``R``, ``P`` interpolate through the true point positions
otherwise (:func:`~mano_pde.layers.multipole_hierarchy.restrict_to_grid`, ``prolong_to_grid``).

References
----------
.. [1] Colagrande, A., Caillon, P., Feillet, E., Allauzen, A. "Linear Attention with Global Context:
       A Multipole Attention Mechanism for Vision and Physics" (2025). ICCV 2025 workshops,
       arXiv 2507.02748.
.. [2] Greengard, L., Rokhlin, V. "A fast algorithm for particle simulations" (1987).
       J. Comput. Phys. 73(2).
.. [3] Kovachki, N. et al. "Neural Operator: Learning Maps Between Function Spaces" (2023). JMLR 24(89).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..grids import check_geometry
from .attention import AttentionMixer
from .multipole_hierarchy import (
    check_reference_grid,
    log_levels,
    multipole_level_shapes,
    prolong_to_grid,
    reference_window,
    restrict_to_grid,
)
from .windowing import check_window

# the hierarchy's functions are also importable from here (their home before the split)
__all__ = ["LEVEL_RULES", "MultipoleAttention", "log_levels", "multipole_level_shapes", "reference_window"]

_DOWNSAMPLE = ("conv", "avg")
_UPSAMPLE = ("conv", "nearest", "bilinear")
_RESAMPLE_INIT = ("default", "average")
#: How the number of levels is chosen: the authors' ``floor(log_r N)`` or this package's "fits one window".
LEVEL_RULES = ("log", "window")


class MultipoleAttention(AttentionMixer):
    """Multipole attention (MANO): windowed attention on a hierarchy of grids, linear in ``H * W``.

    Input and output are ``[B, C, H, W]`` (neuraloperator's channel-first convention); see the module
    docstring for the algorithm, what is the authors' layer and what is ours, and references. The class
    also satisfies neuralop's ``conv_module`` contract (constructor ``(in_channels, out_channels, n_modes,
    **kwargs)``, ``forward(x, output_shape=None)``, ``transform``, settable ``n_modes``), so
    ``neuralop.models.FNO(..., conv_module=MultipoleAttention)`` replaces each spectral convolution by
    multipole attention; use :func:`functools.partial` to set the options below in that case.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int, optional
        Output channels; defaults to ``in_channels``.
    n_modes : sequence of int, optional
        neuralop compatibility only (stored, unused).
    n_heads : int, optional
        Attention heads. Default 4.
    head_dim : int, optional
        Channels per head; defaults to ``in_channels // n_heads``.
    window_size : int, optional
        Window span ``k`` on every level (the authors' ``local_attention_kernel_size``). Default 8.
    window_stride : int, optional
        Step ``s`` between windows (the authors' ``local_attention_stride``); ``s < k`` gives overlapping
        windows whose outputs are averaged. Default ``None``: ``s = k`` (non-overlapping).
    factor : int, optional
        Down-sampling factor ``r`` between levels (the authors' ``sampling_rate``). Default 2.
    downsample : {"conv", "avg"}, optional
        Strided convolution (default) or average pooling (the authors' ``"avg_pool"``).
    upsample : {"conv", "nearest", "bilinear"}, optional
        Transposed convolution (default), nearest-neighbour (the authors' ``"avg_pool"`` up-sampling) or
        bilinear interpolation (ours).
    level_rule : {"log", "window"}, optional
        ``"log"`` (the authors'): ``floor(log_r(N))`` levels with ``N = min(image_size)``, or
        ``N = min(H, W)`` of each input when ``image_size`` is None. ``"window"`` (ours): levels until the
        coarsest grid fits one window, counted at call time. Default ``"log"``.
    image_size : int or (int, int), optional
        Grid the levels are counted for (the authors' ``image_size``; the training grid). Fixed levels:
        a model trained at 33 x 33 keeps its 5 levels at 129 x 129, as the authors' layer does.
    level_norm : bool, optional
        The authors' LayerNorms of every level's tokens inside the shared attention (default True).
        False (ours): no normalisation inside the layer.
    qkv_bias : bool, optional
        Bias of the Q/K/V projection. Default False (the authors').
    resample_init : {"default", "average"}, optional
        Initial Down/Up convolutions: PyTorch's default (the authors') or average pooling /
        nearest-neighbour interpolation (ours). Default ``"default"``.
    shift : int, optional
        Offset of the window grid on every level, ``0 <= shift < window_size`` (Swin's shifted windows;
        ours, non-overlapping windows only). Default 0.
    dropout : float, optional
        Attention and projection dropout (training only). Default 0.
    position_bias : bool, optional
        Learned relative-position bias in the attention logits, shared by all levels (ours; see
        :class:`~mano_pde.layers.attention.WindowedMultiheadAttention`). Default False.
    reference_grid : (int, int), optional
        Grid the weights were trained on; inputs finer than it run in reference-grid mode (ours; module
        docstring). ``None`` (default): the plain layer at every grid. Settable with
        :meth:`set_reference_grid`.
    grid_geometry : {"node", "half-open", "cell"}, optional
        Where the grid points sit (:mod:`mano_pde.grids`); used by reference-grid mode only. Default ``"node"``.
    resolution_scaling_factor : float or sequence of float, optional
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    **options
        Go to :class:`~mano_pde.layers.attention.AttentionMixer`: ``n_heads``, ``head_dim``, ``dropout``,
        ``position_bias``, ``resolution_scaling_factor`` above, and the spectral-convolution options passed by
        neuralop's FNOBlocks (ignored).

    Examples
    --------
    >>> import torch
    >>> layer = MultipoleAttention(32, n_heads=4, window_size=8)
    >>> layer(torch.randn(2, 32, 85, 85)).shape
    torch.Size([2, 32, 85, 85])
    >>> layer.num_levels(85, 85), layer.num_levels(256, 256)
    (6, 8)
    >>> MultipoleAttention(32, image_size=33).num_levels(129, 129)
    5
    """

    #: Levels of at most this many points per sample go through the shared attention together (one batched
    #: call); a larger level (the finest of a large grid) is attended on its own. Chosen by measurement
    #: (BENCHMARKS.md, "Level-batched multipole attention"): batching 65² (4225 points) made the demo MANO's
    #: training step 1.2x faster; batching 128² (16384) made it no faster and raised its peak memory by 10 %.
    #: It changes speed and memory, never values beyond rounding.
    batch_max_points: int = 8192

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_modes: Sequence[int] | None = None,
        *,
        window_size: int = 8,
        window_stride: int | None = None,
        factor: int = 2,
        downsample: str = "conv",
        upsample: str = "conv",
        level_rule: str = "log",
        image_size: int | Sequence[int] | None = None,
        level_norm: bool = True,
        qkv_bias: bool = False,
        resample_init: str = "default",
        shift: int = 0,
        reference_grid: Sequence[int] | None = None,
        grid_geometry: str = "node",
        **options,
    ) -> None:
        stride = check_window(window_size, shift, window_stride)
        if not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor (down-sampling ratio between levels) must be an int >= 2, got {factor}")
        for name, value, allowed in (
            ("downsample", downsample, _DOWNSAMPLE),
            ("upsample", upsample, _UPSAMPLE),
            ("level_rule", level_rule, LEVEL_RULES),
            ("resample_init", resample_init, _RESAMPLE_INIT),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        image_size = check_reference_grid(image_size, "image_size")
        # the authors' LocalAttention2D (LayerNorm of the window tokens, then the attention's own pre-norm) and
        # one attention module (one set of Q/K/V/output weights) shared by every level
        super().__init__(in_channels, out_channels, n_modes, qkv_bias=qkv_bias, token_norm=level_norm, **options)
        self.window_size = int(window_size)
        self.window_stride = int(stride)
        self.shift = int(shift)
        self.factor = factor
        self.downsample = downsample
        self.upsample = upsample
        self.level_rule = level_rule
        self.image_size = image_size
        self.level_norm = bool(level_norm)
        self.resample_init = resample_init
        c_in, c_out, r = self.in_channels, self.out_channels, factor
        self.down = nn.Conv2d(c_in, c_in, kernel_size=r, stride=r, bias=False) if downsample == "conv" else None
        self.up = nn.ConvTranspose2d(c_out, c_out, kernel_size=r, stride=r, bias=False) if upsample == "conv" else None
        if resample_init == "average":
            self._init_average_resampling()
        self.grid_geometry = check_geometry(grid_geometry, "grid_geometry")
        self.reference_grid: tuple[int, int] | None = None
        self.set_reference_grid(reference_grid)

    def set_reference_grid(self, grid: Sequence[int] | int | None) -> None:
        """Switch reference-grid mode on (``grid``: the training grid, ``s`` or ``(H, W)``) or off (``None``)."""
        self.reference_grid = check_reference_grid(grid)

    @torch.no_grad()
    def _init_average_resampling(self) -> None:
        """``resample_init="average"``: Down starts as average pooling and Up as nearest interpolation."""
        r = self.factor
        if self.down is not None:
            self.down.weight.zero_()
            idx = torch.arange(self.in_channels)
            self.down.weight[idx, idx] = 1.0 / (r * r)
        if self.up is not None:
            self.up.weight.zero_()
            idx = torch.arange(self.out_channels)
            self.up.weight[idx, idx] = 1.0

    def level_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Grid sizes of the hierarchy for an ``height x width`` input (see :func:`multipole_level_shapes`)."""
        n_levels = None
        if self.level_rule == "log":
            size = self.image_size if self.image_size is not None else (height, width)
            n_levels = log_levels(min(size), self.factor)
        return multipole_level_shapes(height, width, self.window_size, self.factor, n_levels)

    def num_levels(self, height: int, width: int) -> int:
        """Number of levels used for an ``height x width`` input."""
        return len(self.level_shapes(height, width))

    # -- pieces of the V-cycle (channels-last tensors) ------------------------------------------------------------
    # Down and Up have kernel = stride = r: each is one GEMM on non-overlapping r x r patches of the channels-last
    # grid (the same weights, read in (dy, dx, channel) order), which is faster on the CPU than the convolution
    # kernels and their backward (measured: BENCHMARKS.md, "Level-batched multipole attention").
    def _down(self, x: torch.Tensor) -> torch.Tensor:
        r = self.factor
        b, h, w, c = x.shape
        ph, pw = (-h) % r, (-w) % r
        # edge replication, written as concatenation (also what torch.compile's inductor handles)
        x = torch.cat([x, x[:, -1:].expand(-1, ph, -1, -1)], 1) if ph else x
        x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pw, -1)], 2) if pw else x
        hc, wc = (h + ph) // r, (w + pw) // r
        patches = x.reshape(b, hc, r, wc, r, c).transpose(2, 3)  # [B, H/r, W/r, r, r, C]
        if self.down is None:  # average pooling
            return patches.mean(dim=(3, 4))
        weight = self.down.weight.permute(0, 2, 3, 1).reshape(self.down.out_channels, r * r * c)
        return F.linear(patches.reshape(b, hc, wc, r * r * c), weight)

    def _up(self, x: torch.Tensor, size: tuple[int, int], scale: float = 1.0) -> torch.Tensor:
        """``scale * Up(x)`` cropped to ``size``; the scale is folded into the (tiny) weights."""
        r = self.factor
        b, h, w, c = x.shape
        if self.up is not None:
            c_out = self.up.out_channels
            weight = self.up.weight.permute(2, 3, 1, 0).reshape(r * r * c_out, c)  # [C_in, C_out, r, r] -> rows
            weight = weight if scale == 1.0 else weight * scale
            y = F.linear(x, weight).view(b, h, w, r, r, c_out).transpose(2, 3).reshape(b, h * r, w * r, c_out)
        else:
            xn = x.permute(0, 3, 1, 2)
            if scale != 1.0:
                xn = xn * scale  # on the coarse grid: r^2 times cheaper than after interpolation
            if self.upsample == "nearest":
                y = F.interpolate(xn, scale_factor=r, mode="nearest")
            else:
                y = F.interpolate(xn, scale_factor=r, mode="bilinear", align_corners=False)
            y = y.permute(0, 2, 3, 1)
        if y.shape[1] != size[0] or y.shape[2] != size[1]:
            y = y[:, : size[0], : size[1]]
        return y

    def _levels(self, x: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
        """Inputs of the levels: ``[x, Down(x), Down(Down(x)), ...]`` (``n_levels`` tensors)."""
        xs = [x]
        for _ in range(n_levels - 1):
            xs.append(self._down(xs[-1]))
        return xs

    def _attend(
        self, x: torch.Tensor, base: torch.Tensor | None = None, window: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The shared attention ``A`` of one level (plus ``base``), windows of ``window`` (default ``k x k``)."""
        k = self.window_size
        window = (k, k) if window is None else window
        stride, shift = self._window_options(window)
        return self.attend(x, window=window, shift=shift, stride=stride, base=base)

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: the V-cycle of the module docstring."""
        h, w = x.shape[1], x.shape[2]
        ref = self.reference_grid
        if ref is None or (h <= ref[0] and w <= ref[1]):
            return self._cycle(self._levels(x, len(self.level_shapes(h, w))))
        return self._reference_cycle(x, ref)

    def _window_options(self, window: tuple[int, int]) -> tuple[tuple[int, int] | None, tuple[int, int]]:
        """Stride and shift of ``window`` (scaled from those of the ``k x k`` window)."""
        k = self.window_size
        stride = None
        if self.window_stride != k:
            stride = tuple(max(1, round(self.window_stride * wi / k)) for wi in window)
        return stride, tuple(round(self.shift * wi / k) for wi in window)

    def batched_levels(self, shapes: Sequence[tuple[int, int]]) -> list[int]:
        """Indices of the levels (grid ``shapes``, fine to coarse) that go through the attention together: those
        of at most :attr:`batch_max_points` points, with non-overlapping windows, if there are two or more."""
        if self.window_stride != self.window_size:
            return []
        together = [i for i, (h, w) in enumerate(shapes) if h * w <= self.batch_max_points]
        return together if len(together) > 1 else []

    def _cycle(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Attend on every level of ``xs`` (fine to coarse) and combine coarse to fine, weights from the coarse end.

        Every level ``o_l = A(x_l)`` depends on its own input only, so with non-overlapping windows the levels go
        through the shared attention together (:meth:`AttentionMixer.attend_grids`: each token norm and projection
        once for the tokens of every level, the windows cut short by a grid edge kept at their real size, one
        attention call per window shape). A level of more than :attr:`batch_max_points` points per sample, and
        every level with overlapping windows, is attended on its own (the window merge fused into the V-cycle's
        sum).
        """
        k = self.window_size
        n = len(xs)
        together = self.batched_levels([(x.shape[1], x.shape[2]) for x in xs])
        outs: dict[int, torch.Tensor] = {}
        if together:
            shift = (self.shift, self.shift)
            outs = dict(zip(together, self.attend_grids([xs[i] for i in together], (k, k), shift), strict=True))
            for i in together:
                xs[i] = None  # free each level's input once attended (inference peak)
        res = None
        for i, level in enumerate(range(n - 1, -1, -1)):
            x, xs[level] = xs[level], None
            if res is None:  # the coarsest level
                res = self._attend(x) if x is not None else outs.pop(level)
                continue
            o = outs.pop(level, None)
            # res = o + Up(res) / (i + 1) of the module docstring (i counted from 0 there); on its own, the window
            # merge of o is fused into the sum
            base = self._up(res, (x.shape[1], x.shape[2]) if x is not None else (o.shape[1], o.shape[2]), 1.0 / i)
            res = self._attend(x, base) if x is not None else o + base
        return res

    def _reference_cycle(self, x: torch.Tensor, ref: tuple[int, int]) -> torch.Tensor:
        """Reference-grid mode (module docstring): near field on the fine grid, far field at the reference."""
        h, w = x.shape[1], x.shape[2]
        rh, rw = min(ref[0], h), min(ref[1], w)
        k = self.window_size
        geometry = self.grid_geometry
        window = (reference_window(k, h, rh, geometry), reference_window(k, w, rw, geometry))
        n_levels = len(self.level_shapes(rh, rw))
        if n_levels == 1:  # one level at the reference grid: level 0 alone
            return self._attend(x, window=window)
        x_ref = restrict_to_grid(x, (rh, rw), geometry)
        far = self._cycle(self._levels(x_ref, n_levels)[1:])
        far = self._up(far, (rh, rw), scale=1.0 / (n_levels - 1)).permute(0, 3, 1, 2)
        far = prolong_to_grid(far, (h, w), geometry).permute(0, 2, 3, 1)
        return self._attend(x, far.contiguous(), window=window)

    def extra_repr(self) -> str:
        return (
            f"window_size={self.window_size}, window_stride={self.window_stride}, factor={self.factor}, "
            f"level_rule={self.level_rule!r}, image_size={self.image_size}, level_norm={self.level_norm}, "
            f"shift={self.shift}, downsample={self.downsample!r}, upsample={self.upsample!r}, "
            f"reference_grid={self.reference_grid}"
            + (f", grid_geometry={self.grid_geometry!r}" if self.grid_geometry != "node" else "")
        )
