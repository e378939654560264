"""Pre-norm transformer block with a pluggable token mixer, on channels-last grids.

``x <- x + Mixer(Norm(x));  x <- x + MLP(Norm(x))`` (pre-norm residual block of ViT/Swin; a mixer that
normalises its own input, such as the MANO authors' multipole attention, gets no outer pre-norm:
``x <- x + Mixer(x)``, as in their ``Multipole_TransformerBlock``), where the
token mixer is one of ``"global"`` (ViT-like), ``"window"`` (Swin-like, shifted windows in every other
block) or ``"multipole"`` (MANO). This is the one skeleton behind every attention operator in
:mod:`mano_pde.models`.

Non-linearities and norms are chosen *by name* (strings) so that the constructor arguments of the models
stay plain data: neuralop's checkpoints pickle the constructor arguments, and plain data is what
``torch.load(..., weights_only=True)`` (torch's default since 2.6) accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import GlobalAttention
from .grid_mixer import GridTokenMixer
from .multipole_attention import MultipoleAttention
from .window_attention import WindowAttention

__all__ = [
    "MIXERS",
    "NON_LINEARITIES",
    "NORMS",
    "ChannelsLastNorm",
    "TransformerBlock",
    "make_mixer",
    "resolve_non_linearity",
]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: Non-linearities selectable by name.
NON_LINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "identity": _identity,
}

#: Norms selectable by name (``None``: no normalisation).
NORMS = ("layer_norm", "group_norm", "instance_norm")

#: Token mixers selectable by name.
MIXERS = ("global", "window", "multipole")


def resolve_non_linearity(non_linearity: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the activation function for a name in :data:`NON_LINEARITIES` (callables pass through).

    Passing a callable works but makes the model's recorded constructor arguments non-plain data, so its
    neuralop checkpoint then needs ``weights_only=False`` to reload; prefer names.
    """
    if callable(non_linearity):
        return non_linearity
    try:
        return NON_LINEARITIES[str(non_linearity).lower()]
    except KeyError:
        raise ValueError(
            f"unknown non_linearity {non_linearity!r}; expected one of {sorted(NON_LINEARITIES)} or a callable"
        ) from None


class ChannelsLastNorm(nn.Module):
    """Normalisation of a channels-last grid ``[B, H, W, C]``.

    Parameters
    ----------
    norm : {"layer_norm", "group_norm", "instance_norm"} or None
        ``"layer_norm"``: over channels at each point (transformer default); ``"group_norm"``: one group,
        over channels and the grid of each sample; ``"instance_norm"``: per channel over the grid;
        ``None``: identity.
    channels : int
        Number of channels.
    """

    def __init__(self, norm: str | None, channels: int) -> None:
        super().__init__()
        if norm is not None and norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS} or None")
        self.kind = norm
        if norm == "layer_norm":
            self.norm = nn.LayerNorm(channels)
        elif norm == "group_norm":
            self.norm = nn.GroupNorm(1, channels)
        elif norm == "instance_norm":
            self.norm = nn.InstanceNorm2d(channels, affine=True)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind in ("group_norm", "instance_norm"):
            return self.norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.norm(x)


def make_mixer(
    mixer: str,
    channels: int,
    *,
    n_heads: int = 4,
    head_dim: int | None = None,
    window_size: int = 8,
    shift: int = 0,
    factor: int = 2,
    downsample: str = "conv",
    upsample: str = "conv",
    dropout: float = 0.0,
    reference_grid: Sequence[int] | None = None,
    position_bias: bool = False,
    qkv_bias: bool | None = None,
    **multipole_options,
) -> GridTokenMixer:
    """Build a token mixer by name: ``"global"``, ``"window"`` or ``"multipole"``.

    Options a mixer does not use are ignored (``window_size`` and ``shift`` for global attention,
    ``reference_grid`` and ``multipole_options`` for all but multipole attention, ...). ``qkv_bias=None``
    keeps each mixer's default (False for multipole attention, the authors'; True for the others).
    ``multipole_options`` are further :class:`~mano_pde.layers.MultipoleAttention` keywords
    (``window_stride``, ``level_rule``, ``image_size``, ``level_norm``, ``resample_init``).
    """
    common = dict(n_heads=n_heads, head_dim=head_dim, dropout=dropout, position_bias=position_bias)
    if qkv_bias is not None:
        common["qkv_bias"] = qkv_bias
    if mixer == "global":
        return GlobalAttention(channels, **common)
    if mixer == "window":
        return WindowAttention(channels, window_size=window_size, shift=shift, **common)
    if mixer == "multipole":
        return MultipoleAttention(
            channels,
            window_size=window_size,
            shift=shift,
            factor=factor,
            downsample=downsample,
            upsample=upsample,
            reference_grid=reference_grid,
            **multipole_options,
            **common,
        )
    raise ValueError(f"unknown mixer {mixer!r}; expected one of {MIXERS}")


class TransformerBlock(nn.Module):
    """Pre-norm transformer block on channels-last grids ``[B, H, W, C] -> [B, H, W, C]``.

    Parameters
    ----------
    channels : int
        Width ``C``.
    mixer : GridTokenMixer
        Token mixer (e.g. from :func:`make_mixer`).
    mlp_ratio : float, optional
        Hidden width of the point-wise MLP relative to ``C``. Default 2.
    non_linearity : str or callable, optional
        Activation of the MLP. Default ``"gelu"``.
    norm : str or None, optional
        See :class:`ChannelsLastNorm`. Default ``"layer_norm"``.
    dropout : float, optional
        Dropout after the MLP's activation and output (training only). Default 0.
    """

    def __init__(
        self,
        channels: int,
        mixer: GridTokenMixer,
        mlp_ratio: float = 2.0,
        non_linearity: str | Callable = "gelu",
        norm: str | None = "layer_norm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = max(1, round(channels * mlp_ratio))
        # a mixer that normalises its own input (the MANO authors' layer) gets no outer pre-norm
        self.norm1 = ChannelsLastNorm(None if getattr(mixer, "normalizes_input", False) else norm, channels)
        self.mixer = mixer
        self.norm2 = ChannelsLastNorm(norm, channels)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.act = resolve_non_linearity(non_linearity)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer.forward_channels_last(self.norm1(x))
        return x + self.drop(self.fc2(self.drop(self.act(self.fc1(self.norm2(x))))))
