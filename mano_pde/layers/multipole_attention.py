"""Multipole attention: the attention layer of MANO (Colagrande et al., arXiv 2507.02748, ICCV-W 2025).

Attention is read as an n-body interaction between grid points and evaluated the way the fast multipole
method evaluates one: near-field interactions at full resolution, far-field interactions on coarser grids.

Algorithm (one layer, input ``x_0`` on an ``H x W`` grid, window ``w``, factor ``r``)::

    levels:   x_{l+1} = Down(x_l)        grid ceil(H_l / r) x ceil(W_l / r), until H_L, W_L <= w
    attend:   out_l   = W-MSA(x_l)       windows of w x w on every level, ONE shared attention module
    combine:  res_L   = out_L
              res_l   = out_l + up(res_{l+1}) / (l + 1)       (coarse to fine; crop up() to H_l x W_l)
    output:   res_0

* ``Down`` is one learned strided convolution (kernel ``r``, stride ``r``; option: average pooling)
  and ``up`` one learned transposed convolution (kernel ``r``, stride ``r``; options: nearest,
  bilinear), the same operator at every level (the V-cycle of the paper's Fig. 1). The learned
  operators are initialised to average pooling and nearest-neighbour interpolation.
* The coarsest level fits in one window, so every head sees the whole domain after one layer.
* **The number of levels is computed from the input grid at call time**: weights trained at 32 x 32
  (3 levels with ``w = 8``) run unchanged at 256 x 256 (6 levels).
* Cost: level ``l`` has ``N / r^(2l)`` points, each attending to ``w^2`` keys, so time and memory are
  ``O(N w^2 (1 + 1/r^2 + ...)) = O(N)`` in the number of grid points ``N = H W``.

Arbitrary grids (85 x 85, 141 x 141, 421 x 421, non-square): on every level a grid that does not tile
into windows is zero-padded at the bottom/right and the padded keys are masked out of the softmax
(exact: results on real points equal attention over each window's real points); before each
down-sampling a grid not divisible by ``r`` is padded by edge replication ("replicate" mode, so a
constant field stays constant on coarse levels); the up-sampled field is cropped back to the finer grid.
The output always has the input's ``H x W``.

Reference-grid mode (an option of this package, not in the paper)
------------------------------------------------------------------
Windows are counted in grid points, so on a grid ``k`` times finer than the training grid the paper's
layer sees a ``k``-times smaller physical neighbourhood at level 0 and adds ``log2 k`` coarse levels
that never existed in training: weights trained at one grid do not transfer zero-shot (measured in
``BENCHMARKS.md``). With ``reference_grid=(H_r, W_r)`` (the training grid) an input finer than the
reference is processed at the reference *physical* scales::

    s_h = (H - 1) / (H_r - 1)                         (vertex-centred grids: 33 -> 129 gives s = 4)
    near:  out_0 = W-MSA(x_0) with windows round(s_h w) x round(s_w w)   on the fine grid
    far:   x_r   = area average of x_0 onto H_r x W_r; res_1 = V-cycle of Down(x_r) (levels 1, 2, ...)
    output res_0 = out_0 + bilinear(up(res_1), H x W)  (align_corners: grid nodes stay on grid nodes)

Softmax attention over a window is a quadrature of the kernel integral ``∫ softmax(q·k) v dy`` over the
window's physical area; keeping the area fixed and sampling it more densely is the discretisation-
consistent reading of the same layer (Kovachki et al., 2023, Sec. 5). At the reference grid and on
coarser grids the two modes are identical. The cost stays linear in ``H W`` for fixed ``s`` (level 0
costs ``s^2`` times more per point).

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

from .attention import WindowedMultiheadAttention
from .grid_mixer import GridTokenMixer

__all__ = ["MultipoleAttention", "multipole_level_shapes", "reference_window"]

_DOWNSAMPLE = ("conv", "avg")
_UPSAMPLE = ("conv", "nearest", "bilinear")


def multipole_level_shapes(height: int, width: int, window_size: int, factor: int) -> list[tuple[int, int]]:
    """Grid sizes of the multipole hierarchy for an ``height x width`` input.

    Level 0 is the input grid; level ``l + 1`` is ``ceil(H_l / r) x ceil(W_l / r)``; the hierarchy stops
    at the first level that fits in one ``window_size x window_size`` window.

    Parameters
    ----------
    height, width : int
        Input grid size.
    window_size : int
        Window side ``w``.
    factor : int
        Down-sampling factor ``r >= 2``.

    Returns
    -------
    list of (int, int)
        ``[(H_0, W_0), (H_1, W_1), ...]``; its length is the number of levels.

    Examples
    --------
    >>> multipole_level_shapes(64, 96, 8, 2)
    [(64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid must be at least 1 x 1, got {height} x {width}")
    if factor < 2:
        raise ValueError(f"factor must be >= 2, got {factor}")
    shapes = [(height, width)]
    while height > window_size or width > window_size:
        height, width = -(-height // factor), -(-width // factor)
        shapes.append((height, width))
    return shapes


class MultipoleAttention(GridTokenMixer):
    """Multipole attention (MANO): windowed attention on a hierarchy of grids, linear in ``H * W``.

    Input and output are ``[B, C, H, W]`` (neuraloperator's channel-first convention); see the module
    docstring for the algorithm, the padding mode and references. The class also satisfies neuralop's
    ``conv_module`` contract (constructor ``(in_channels, out_channels, n_modes, **kwargs)``,
    ``forward(x, output_shape=None)``, ``transform``, settable ``n_modes``), so
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
        Window side ``w`` on every level. Default 8.
    shift : int, optional
        Offset of the window grid on every level, ``0 <= shift < window_size`` (Swin's shifted windows,
        ``w // 2`` in every other block; not in the paper). Default 0.
    factor : int, optional
        Down-sampling factor ``r`` between levels. Default 2.
    downsample : {"conv", "avg"}, optional
        Learned strided convolution (default) or average pooling.
    upsample : {"conv", "nearest", "bilinear"}, optional
        Learned transposed convolution (default), nearest-neighbour or bilinear interpolation.
    dropout : float, optional
        Attention and projection dropout (training only). Default 0.
    qkv_bias : bool, optional
        Bias of the Q/K/V projection. Default True.
    position_bias : bool, optional
        Learned relative-position bias in the attention logits, shared by all levels (see
        :class:`~mano_pde.layers.attention.WindowedMultiheadAttention`). Default False.
    reference_grid : (int, int), optional
        Grid the weights were trained on; inputs finer than it run in reference-grid mode (module
        docstring). ``None`` (default): the paper's layer at every grid. Settable after construction
        with :meth:`set_reference_grid`.
    resolution_scaling_factor : float or sequence of float, optional
        See :class:`~mano_pde.layers.grid_mixer.GridTokenMixer`.
    **neuralop_kwargs
        Spectral-convolution options passed by neuralop's FNOBlocks; ignored.

    Examples
    --------
    >>> import torch
    >>> layer = MultipoleAttention(32, n_heads=4, window_size=8)
    >>> layer(torch.randn(2, 32, 85, 85)).shape
    torch.Size([2, 32, 85, 85])
    >>> layer.num_levels(85, 85), layer.num_levels(256, 256)
    (5, 6)
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
        factor: int = 2,
        downsample: str = "conv",
        upsample: str = "conv",
        dropout: float = 0.0,
        qkv_bias: bool = True,
        position_bias: bool = False,
        reference_grid: Sequence[int] | None = None,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        **neuralop_kwargs,
    ) -> None:
        super().__init__(in_channels, out_channels, n_modes, resolution_scaling_factor, **neuralop_kwargs)
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if not 0 <= shift < window_size:
            raise ValueError(f"shift must satisfy 0 <= shift < window_size = {window_size}, got {shift}")
        if not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor (down-sampling ratio between levels) must be an int >= 2, got {factor}")
        if downsample not in _DOWNSAMPLE:
            raise ValueError(f"downsample must be one of {_DOWNSAMPLE}, got {downsample!r}")
        if upsample not in _UPSAMPLE:
            raise ValueError(f"upsample must be one of {_UPSAMPLE}, got {upsample!r}")
        self.window_size = int(window_size)
        self.shift = int(shift)
        self.factor = factor
        self.downsample = downsample
        self.upsample = upsample
        # one attention module (one set of Q/K/V/output weights) shared by every level
        self.attention = WindowedMultiheadAttention(
            self.in_channels, self.out_channels, n_heads, head_dim, dropout, qkv_bias, position_bias
        )
        c_in, c_out, r = self.in_channels, self.out_channels, factor
        self.down = nn.Conv2d(c_in, c_in, kernel_size=r, stride=r) if downsample == "conv" else None
        self.up = nn.ConvTranspose2d(c_out, c_out, kernel_size=r, stride=r) if upsample == "conv" else None
        self._init_resampling()
        self.reference_grid: tuple[int, int] | None = None
        self.set_reference_grid(reference_grid)

    def set_reference_grid(self, grid: Sequence[int] | int | None) -> None:
        """Switch reference-grid mode on (``grid``: the training grid, ``s`` or ``(H, W)``) or off (``None``)."""
        self.reference_grid = check_reference_grid(grid)

    @torch.no_grad()
    def _init_resampling(self) -> None:
        """Initialise Down as average pooling and up as nearest-neighbour interpolation (then learned)."""
        r = self.factor
        if self.down is not None:
            self.down.weight.zero_()
            idx = torch.arange(self.in_channels)
            self.down.weight[idx, idx] = 1.0 / (r * r)
            self.down.bias.zero_()
        if self.up is not None:
            self.up.weight.zero_()
            idx = torch.arange(self.out_channels)
            self.up.weight[idx, idx] = 1.0
            self.up.bias.zero_()

    def level_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Grid sizes of the hierarchy for an ``height x width`` input (see :func:`multipole_level_shapes`)."""
        return multipole_level_shapes(height, width, self.window_size, self.factor)

    def num_levels(self, height: int, width: int) -> int:
        """Number of levels used for an ``height x width`` input (grows like ``log_r(max(H, W) / w)``)."""
        return len(self.level_shapes(height, width))

    # -- resampling between levels (channels-last tensors; the convs run on channels_last NCHW views) --
    def _down(self, x: torch.Tensor) -> torch.Tensor:
        r = self.factor
        _, h, w, _ = x.shape
        xn = x.permute(0, 3, 1, 2)  # NCHW view with channels_last strides: no copy
        ph, pw = (-h) % r, (-w) % r
        if ph or pw:
            xn = F.pad(xn, (0, pw, 0, ph), mode="replicate")
        y = self.down(xn) if self.down is not None else F.avg_pool2d(xn, r)
        return y.permute(0, 2, 3, 1).contiguous()

    def _up(self, x: torch.Tensor, size: tuple[int, int], scale: float = 1.0) -> torch.Tensor:
        """``scale * up(x)`` cropped to ``size``; the scale is folded into the (tiny) kernel and bias."""
        xn = x.permute(0, 3, 1, 2)
        if self.up is not None:
            weight, bias = self.up.weight, self.up.bias
            if scale != 1.0:
                weight, bias = weight * scale, bias * scale
            y = F.conv_transpose2d(xn, weight, bias, stride=self.factor)
        else:
            if scale != 1.0:
                xn = xn * scale  # on the coarse grid: r^2 times cheaper than after interpolation
            if self.upsample == "nearest":
                y = F.interpolate(xn, scale_factor=self.factor, mode="nearest")
            else:
                y = F.interpolate(xn, scale_factor=self.factor, mode="bilinear", align_corners=False)
        y = y.permute(0, 2, 3, 1)
        if y.shape[1] != size[0] or y.shape[2] != size[1]:
            y = y[:, : size[0], : size[1]]
        return y

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C_in] -> [B, H, W, C_out]``: the V-cycle of the module docstring."""
        h, w = x.shape[1], x.shape[2]
        ref = self.reference_grid
        if ref is None or (h <= ref[0] and w <= ref[1]):
            return self._cycle(x, self.level_shapes(h, w))
        return self._reference_cycle(x, ref)

    def _cycle(self, x: torch.Tensor, shapes: list[tuple[int, int]], first_level: int = 0) -> torch.Tensor:
        """V-cycle over ``shapes`` (``x`` on ``shapes[0]``, which is level ``first_level`` of the hierarchy)."""
        window, shift = (self.window_size, self.window_size), (self.shift, self.shift)
        xs = [x]
        for _ in shapes[1:]:
            xs.append(self._down(xs[-1]))
        del x
        res = self.attention(xs.pop(), window=window, shift=shift)
        for i in range(len(shapes) - 2, -1, -1):
            # res_l = out_l + up(res_{l+1}) / (l + 1), the window merge of out_l fused into the sum
            up = self._up(res, shapes[i], scale=1.0 / (first_level + i + 1))
            res = self.attention.forward_add(xs.pop(), up, window=window, shift=shift)  # pop: free levels once used
            del up
        return res

    def _reference_cycle(self, x: torch.Tensor, ref: tuple[int, int]) -> torch.Tensor:
        """Reference-grid mode (module docstring): near field on the fine grid, far field at the reference."""
        h, w = x.shape[1], x.shape[2]
        rh, rw = min(ref[0], h), min(ref[1], w)
        window = (reference_window(self.window_size, h, rh), reference_window(self.window_size, w, rw))
        shift = (round(self.shift * window[0] / self.window_size), round(self.shift * window[1] / self.window_size))
        shapes = self.level_shapes(rh, rw)
        if len(shapes) == 1:  # the reference grid fits one window: level 0 was global attention there
            return self.attention(x, window=window, shift=shift)
        x_ref = F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), (rh, rw)).permute(0, 2, 3, 1).contiguous()
        far = self._cycle(self._down(x_ref), shapes[1:], first_level=1)
        del x_ref
        far = self._up(far, shapes[0]).permute(0, 3, 1, 2)
        far = F.interpolate(far, size=(h, w), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
        return self.attention.forward_add(x, far.contiguous(), window=window, shift=shift)

    def extra_repr(self) -> str:
        return (
            f"window_size={self.window_size}, shift={self.shift}, factor={self.factor}, "
            f"downsample={self.downsample!r}, upsample={self.upsample!r}, reference_grid={self.reference_grid}"
        )


def check_reference_grid(grid: Sequence[int] | int | None) -> tuple[int, int] | None:
    """Validate a reference grid (``None``, ``s`` or ``(H, W)``, each >= 2) and return it as ``(H, W)``."""
    if grid is None:
        return None
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    try:
        pair = tuple(int(g) for g in grid)
        ok = len(pair) == 2 and all(g >= 2 and g == v for g, v in zip(pair, grid, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"reference_grid must be None, an int >= 2 or a pair (H, W) of ints >= 2 (the training grid), got {grid!r}"
        )
    return pair


def reference_window(window_size: int, size: int, reference: int) -> int:
    """Window side on a ``size``-point axis that covers the physical extent of ``window_size`` points on a
    ``reference``-point axis of the same (vertex-centred) domain: ``round(w (size - 1) / (reference - 1))``.

    >>> reference_window(8, 129, 33), reference_window(8, 85, 43), reference_window(8, 33, 33)
    (32, 16, 8)
    """
    return max(window_size, round(window_size * (size - 1) / (reference - 1)))
