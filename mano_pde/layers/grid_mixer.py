"""Common base of the attention token mixers: input checks, layouts and neuralop's ``conv_module`` contract.

Every mixer in :mod:`mano_pde.layers` maps ``[B, C_in, H, W] -> [B, C_out, H, W]`` (neuraloperator's
channel-first convention) in :meth:`GridTokenMixer.forward`, and ``[B, H, W, C_in] -> [B, H, W, C_out]``
in :meth:`GridTokenMixer.forward_channels_last`, the layout the transformer operators keep between blocks
(linear layers, layer norms and the window partition all act on contiguous channels-last memory, which
avoids a permute copy per layer).

The constructor, :meth:`forward`, :meth:`transform` and the settable :attr:`n_modes` follow the contract
that :class:`neuralop.layers.fno_block.FNOBlocks` expects of its ``conv_module`` (the integral operator of
an FNO block), so ``neuralop.models.FNO(..., conv_module=MultipoleAttention)`` builds a network whose
integral operators are attention layers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["GridTokenMixer", "NEURALOP_CONV_KWARGS", "check_grid_input"]

#: Keyword arguments that :class:`neuralop.layers.fno_block.FNOBlocks` passes to every ``conv_module``.
#: They configure spectral convolutions (Fourier modes, tensor factorisation, precision) and have no
#: meaning for attention, so the mixers accept and ignore them.
NEURALOP_CONV_KWARGS = frozenset(
    {
        "max_n_modes",
        "rank",
        "fixed_rank_modes",
        "implementation",
        "separable",
        "factorization",
        "fno_block_precision",
        "decomposition_kwargs",
        "complex_data",
        "init_std",
        "fft_norm",
        "bias",
        "device",
    }
)


def check_grid_input(
    x: torch.Tensor, channels: int, owner: str, channels_last: bool = False, dtype: torch.dtype | None = None
) -> None:
    """Raise a ``ValueError`` that names the problem and the fix if ``x`` is not a 2-D grid batch.

    Parameters
    ----------
    x : torch.Tensor
        Input to check.
    channels : int
        Expected number of channels.
    owner : str
        Name of the module, used in the message.
    channels_last : bool, optional
        Whether ``x`` is expected as ``[B, H, W, C]`` instead of ``[B, C, H, W]``.
    dtype : torch.dtype, optional
        The dtype of the module's weights: a floating-point input of another dtype (e.g. float64 or half
        into float32 weights) raises a ``TypeError`` naming both conversions.
    """
    layout = "[B, H, W, C]" if channels_last else "[B, C, H, W]"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner} expected a torch.Tensor {layout}, got {type(x).__name__}")
    if x.ndim != 4:
        hint = " Add a batch dimension with x.unsqueeze(0)." if x.ndim == 3 else ""
        raise ValueError(
            f"{owner} expected a 4-D input {layout} (batch, channels, height, width) with C = {channels} "
            f"channels, got a {x.ndim}-D tensor of shape {tuple(x.shape)}.{hint}"
        )
    c = x.shape[3] if channels_last else x.shape[1]
    if c != channels:
        other = x.shape[1] if channels_last else x.shape[3]
        hint = ""
        if other == channels:
            hint = (
                " The data looks channels-last: use x.permute(0, 3, 1, 2)."
                if not channels_last
                else " The data looks channel-first: use x.permute(0, 2, 3, 1)."
            )
        raise ValueError(
            f"{owner} expected input {layout} with C = {channels} channels, got shape {tuple(x.shape)}.{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{owner} expected a floating-point input, got dtype {x.dtype}; use x.float().")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{owner} has {dtype} weights but got a {x.dtype} input; convert the input (x.to({dtype})) or the "
            f"module (module.to({x.dtype}))"
        )


class GridTokenMixer(nn.Module):
    """Base class of the attention mixers (token mixing on a regular 2-D grid).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Channels of the output; defaults to ``in_channels``.
    n_modes : sequence of int, optional
        Accepted for neuralop's ``conv_module`` contract (FNOBlocks passes and later sets it). Attention
        has no Fourier modes: the value is stored and otherwise ignored.
    resolution_scaling_factor : float or sequence of float, optional
        As in :class:`neuralop.layers.spectral_convolution.SpectralConv`: if given, the output (and the
        skip path, through :meth:`transform`) is resampled to ``round(s * factor)`` points per axis.
    **neuralop_kwargs
        The spectral-convolution options FNOBlocks passes (:data:`NEURALOP_CONV_KWARGS`); ignored.
        ``complex_data=True`` is rejected. Any other keyword raises ``TypeError`` (typos do not pass
        silently).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        n_modes: Sequence[int] | int | None = None,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        **neuralop_kwargs,
    ) -> None:
        super().__init__()
        unknown = set(neuralop_kwargs) - NEURALOP_CONV_KWARGS
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {sorted(unknown)}; "
                f"spectral-convolution options accepted (and ignored) for neuralop compatibility are "
                f"{sorted(NEURALOP_CONV_KWARGS)}"
            )
        if neuralop_kwargs.get("complex_data", False):
            raise NotImplementedError(
                f"{type(self).__name__} works on real-valued data only (complex_data=True is not supported)"
            )
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        out_channels = in_channels if out_channels is None else out_channels
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive int, got {out_channels!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_modes = n_modes
        self.resolution_scaling_factor = _validate_scaling(resolution_scaling_factor)

    # -- neuralop conv_module contract ------------------------------------------------------------
    @property
    def n_modes(self) -> list[int] | None:
        """Fourier modes requested by neuralop (stored for API compatibility, unused by attention)."""
        return self._n_modes

    @n_modes.setter
    def n_modes(self, n_modes: Sequence[int] | int | None) -> None:
        if isinstance(n_modes, int):
            n_modes = [n_modes]
        self._n_modes = None if n_modes is None else list(n_modes)

    def _target_shape(self, shape: Sequence[int], output_shape: Sequence[int] | None) -> tuple[int, ...]:
        if output_shape is not None:
            return tuple(int(s) for s in output_shape)
        if self.resolution_scaling_factor is not None:
            return tuple(round(s * f) for s, f in zip(shape, self.resolution_scaling_factor, strict=True))
        return tuple(shape)

    def transform(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Resample ``x`` ``[B, C, H, W]`` to the layer's output grid (used by FNOBlocks on skip paths).

        Uses :func:`neuralop.layers.resample.resample` (bicubic in 2-D), like ``SpectralConv.transform``.
        Returns ``x`` unchanged when the grid does not change.
        """
        target = self._target_shape(x.shape[2:], output_shape)
        if tuple(x.shape[2:]) == target:
            return x
        from neuralop.layers.resample import resample

        return resample(x, 1.0, list(range(2, x.ndim)), output_shape=list(target))

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Apply the mixer to ``x`` ``[B, C_in, H, W]``; returns ``[B, C_out, H', W']`` (contiguous).

        ``(H', W')`` is ``(H, W)`` unless ``output_shape`` or ``resolution_scaling_factor`` asks for another
        grid, in which case the attention output is resampled (see :meth:`transform`).
        """
        weight = next(self.parameters(), None)
        dtype = weight.dtype if weight is not None and weight.is_floating_point() else None
        if dtype is not None and _autocast_enabled(x.device.type):  # autocast mixes dtypes on purpose
            dtype = None
        check_grid_input(x, self.in_channels, type(self).__name__, dtype=dtype)
        y = self.forward_channels_last(x.permute(0, 2, 3, 1))
        y = y.permute(0, 3, 1, 2).contiguous()
        return self.transform(y, output_shape)

    def forward_channels_last(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Apply the mixer to ``x`` ``[B, H, W, C_in]``; returns ``[B, H, W, C_out]``."""
        raise NotImplementedError


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        return bool(torch.is_autocast_enabled()) if device_type == "cuda" else bool(torch.is_autocast_cpu_enabled())


def _validate_scaling(factor: float | Sequence[float] | None) -> list[float] | None:
    if factor is None:
        return None
    if isinstance(factor, (int, float)):
        return [float(factor)] * 2
    factor = [float(f) for f in factor]
    if len(factor) != 2:
        raise ValueError(f"resolution_scaling_factor must be a number or one number per spatial axis (2), got {factor}")
    return factor
