"""Window geometry for windowed attention on 2-D grids (channels-last tensors ``[B, H, W, C]``).

The helpers here pad a grid so that it tiles into non-overlapping ``wh x ww`` windows, optionally with
the window grid shifted by ``(sh, sw)`` (the shifted windows of Swin, Liu et al. 2021, arXiv 2103.14030),
and build the key mask that keeps padded positions out of the softmax. Padding is therefore *exact*:
a padded token never receives attention weight, so the result on the real tokens is the same as
attention restricted to the real tokens of each window (no boundary artefacts, no value leak).
"""

from __future__ import annotations

import torch

__all__ = [
    "axis_padding",
    "check_window",
    "effective_window",
    "overlap_padding",
    "padding_key_mask",
    "window_segments",
]


def check_window(window_size: int, shift: int = 0, stride: int | None = None) -> int:
    """Validate the window options of a windowed mixer; returns the stride (``window_size`` when ``None``).

    Parameters
    ----------
    window_size : int
        Window side, an int >= 1.
    shift : int, optional
        Offset of the window grid (Swin's shifted windows), ``0 <= shift < window_size``.
    stride : int, optional
        Step between windows, ``1 <= stride <= window_size``; ``None``: non-overlapping windows. Overlapping
        windows cannot be shifted.

    Raises
    ------
    ValueError
        Naming the option and the values it accepts.
    """
    if not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"window_size must be an int >= 1, got {window_size!r}")
    step = window_size if stride is None else stride
    if not isinstance(step, int) or not 1 <= step <= window_size:
        raise ValueError(
            f"window_stride must be an int with 1 <= window_stride <= window_size = {window_size} "
            f"(None: non-overlapping windows), got {stride!r}"
        )
    if not 0 <= shift < window_size:
        raise ValueError(f"shift must satisfy 0 <= shift < window_size = {window_size}, got {shift}")
    if shift and step != window_size:
        raise ValueError("shift (shifted windows) needs non-overlapping windows: drop window_stride or shift")
    return step


def effective_window(size: int, window: int) -> int:
    """Window extent along one axis: ``window``, or the whole axis if the axis is shorter.

    Parameters
    ----------
    size : int
        Number of grid points along the axis.
    window : int
        Requested window size.

    Returns
    -------
    int
        ``min(size, window)``: a grid that fits in one window is attended as a single window, unpadded.
    """
    return min(size, window)


def axis_padding(size: int, window: int, shift: int = 0) -> tuple[int, int, int]:
    """Padding that makes one axis tile into windows whose grid is offset by ``shift``.

    Window boundaries fall at ``shift + k * window`` (in the original coordinates). The axis is padded
    by ``before`` points in front and ``after`` points behind; both are ``< window`` so every window holds
    at least one real point.

    Parameters
    ----------
    size : int
        Number of grid points along the axis.
    window : int
        Window size along the axis (``<= size``).
    shift : int, optional
        Offset of the window grid, ``0 <= shift < window``. Default 0.

    Returns
    -------
    before, after, n_windows : tuple of int
    """
    before = (window - shift) % window
    after = (-(size + before)) % window
    return before, after, (size + before + after) // window


def window_segments(size: int, window: int, shift: int = 0) -> list[tuple[int, int, int]]:
    """The non-overlapping windows of one axis without padding, as runs of equal windows.

    The windows are those of :func:`axis_padding` (boundaries at ``shift + j * window``; an axis of at most
    ``window`` points is one window, unshifted), each cut to the real points it holds: a cut window at the
    front (when shifted), the full windows, a cut window behind.

    Returns
    -------
    list of (start, extent, count)
        ``count`` windows of ``extent`` points, the first starting at ``start``; they tile ``[0, size)``.

    Examples
    --------
    >>> window_segments(33, 8), window_segments(5, 8), window_segments(20, 8, shift=3)
    ([(0, 8, 4), (32, 1, 1)], [(0, 5, 1)], [(0, 3, 1), (3, 8, 2), (19, 1, 1)])
    """
    if size <= window:
        return [(0, size, 1)]
    before, after, n = axis_padding(size, window, shift % window)
    segments, start = [], 0
    if before:
        segments.append((0, window - before, 1))
        start, n = window - before, n - 1
    full = n - (1 if after else 0)
    if full:
        segments.append((start, window, full))
        start += full * window
    if after:
        segments.append((start, window - after, 1))
    return segments


def overlap_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """Padding behind one axis so that windows of ``window`` points every ``stride`` points cover it.

    Windows start at ``0, stride, 2 stride, ...``; the axis is padded behind by ``after < stride`` points
    so that the last window ends on the padded end (``size + after = (n - 1) stride + window``). With
    ``stride < window`` the windows overlap (the unfold/fold windows of the MANO authors' layer, which
    needs ``(size - window) % stride == 0`` and has no padding).

    Parameters
    ----------
    size, window : int
        As in :func:`axis_padding`.
    stride : int
        Step between window starts, ``1 <= stride <= window``.

    Returns
    -------
    after, n_windows : tuple of int

    Examples
    --------
    >>> overlap_padding(9, 4, 2), overlap_padding(10, 4, 2), overlap_padding(8, 8, 8)
    ((1, 4), (0, 4), (0, 1))
    """
    n = -(-(size - window) // stride) + 1
    return (n - 1) * stride + window - size, n


def padding_key_mask(
    height: int,
    width: int,
    pads: tuple[int, int, int, int],
    window: tuple[int, int],
    batch: int,
    device: torch.device,
) -> torch.Tensor:
    """Boolean key mask ``[batch * n_windows, 1, 1, wh * ww]`` (``True`` = real token, may be attended).

    Parameters
    ----------
    height, width : int
        Size of the *unpadded* grid.
    pads : tuple of int
        ``(top, bottom, left, right)`` padding.
    window : tuple of int
        ``(wh, ww)`` window size.
    batch : int
        Batch size (the mask is repeated over the batch to match the window-major layout of the queries).
    device : torch.device
        Device of the mask.

    Returns
    -------
    torch.Tensor
        Mask broadcastable to ``[batch * n_windows, heads, wh * ww, wh * ww]`` for
        :func:`torch.nn.functional.scaled_dot_product_attention`.
    """
    top, bottom, left, right = pads
    wh, ww = window
    hp, wp = height + top + bottom, width + left + right
    valid = torch.zeros(hp, wp, dtype=torch.bool, device=device)
    valid[top : top + height, left : left + width] = True
    nh, nw = hp // wh, wp // ww
    valid = valid.view(nh, wh, nw, ww).permute(0, 2, 1, 3).reshape(1, nh * nw, wh * ww)
    return valid.expand(batch, -1, -1).reshape(batch * nh * nw, 1, 1, wh * ww)
