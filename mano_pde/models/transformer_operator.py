"""Transformer neural operator with a pluggable token mixer (the skeleton of every attention model here).

``x -> [node-grid embedding] -> lifting (ChannelMLP) -> n_layers x TransformerBlock(mixer) -> norm
-> [resample to output_shape] -> projection (ChannelMLP)``

The hidden state is channels-last from the lifting to the projection (both ChannelMLPs are evaluated
channels-last by :func:`channel_mlp_channels_last`, with neuralop's modules holding the weights).

The constructor follows the conventions of :class:`neuralop.models.FNO` (``in_channels``,
``out_channels``, ``hidden_channels``, ``n_layers``, ``lifting_channel_ratio``,
``projection_channel_ratio``, ``positional_embedding="node"``, ``non_linearity``, ``norm``) and reuses
neuralop's pieces (:class:`~neuralop.layers.embeddings.GridEmbeddingND`, subclassed as
:class:`~mano_pde.layers.embeddings.NodeGridEmbedding`,
:class:`~neuralop.layers.channel_mlp.ChannelMLP`, :class:`~neuralop.models.base_model.BaseModel`), so the
models register with ``neuralop.models.get_model`` and save/load with ``save_checkpoint`` /
``from_checkpoint``.

Between blocks the hidden state is kept channels-last (``[B, H, W, C]``): layer norms, the MLPs and the
window partition act on contiguous channels-last memory, so no permute copy is paid per block.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from neuralop.layers.channel_mlp import ChannelMLP
from neuralop.layers.embeddings import GridEmbeddingND
from neuralop.layers.resample import resample
from neuralop.models.base_model import BaseModel
from torch import nn

from ..errors import UserInputError
from ..grids import GridGeometry, check_geometry
from ..layers.embeddings import make_positional_embedding
from ..layers.grid_mixer import check_grid_input
from ..layers.transformer_block import (
    MIXERS,
    ChannelsLastNorm,
    TransformerBlock,
    make_mixer,
    resolve_non_linearity,
)
from .hyperparameters import check_transformer_hyperparameters
from .records import model_config, record_arguments

logger = logging.getLogger(__name__)

__all__ = ["TransformerOperator", "channel_mlp_channels_last"]

#: Registry name of the model class that fixes each mixer (a plain ``TransformerOperator`` is saved as it).
_MIXER_MODELS = {"multipole": "mano", "global": "global-attention", "window": "window-attention"}


class TransformerOperator(BaseModel, name="TransformerOperator"):
    """Transformer neural operator on 2-D grids with a ``"global"``, ``"window"`` or ``"multipole"`` mixer.

    Maps ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` for any ``H x W``.

    Parameters
    ----------
    in_channels : int
        Channels of the input function (without the positional embedding).
    out_channels : int
        Channels of the output function.
    hidden_channels : int, optional
        Width of the transformer blocks. Default 64.
    n_layers : int, optional
        Number of transformer blocks. Default 4.
    mixer : {"multipole", "window", "global"}, optional
        Token mixer of every block. Subclasses fix it (:class:`~mano_pde.models.MANO`: multipole);
        ``None`` selects the class's mixer (``"multipole"`` for this base class).
    n_heads : int, optional
        Attention heads. Default 4.
    head_dim : int, optional
        Channels per head; defaults to ``hidden_channels // n_heads``.
    window_size : int, optional
        Window side for the window and multipole mixers. Default 8.
    window_stride : int, optional
        Multipole mixer only: step between windows (``< window_size``: overlapping windows, the authors'
        ``local_attention_stride``). Default ``None`` (non-overlapping).
    factor : int, optional
        Multipole down-sampling factor between levels. Default 2.
    downsample : {"conv", "avg"}, optional
        Multipole down-sampling operator. Default ``"conv"``.
    upsample : {"conv", "nearest", "bilinear"}, optional
        Multipole up-sampling operator. Default ``"conv"``.
    shift_windows : bool, optional
        Window mixer only: shift the windows by ``window_size // 2`` in every other block (Swin).
        Default True.
    shift_multipole : bool, optional
        Multipole mixer only: shift the windows of every level by ``window_size // 2`` in every other block
        (Swin's shifted windows applied to MANO; ours, not the authors'). Default False.
    level_rule, image_size, level_norm, resample_init
        Multipole mixer only: see :class:`~mano_pde.layers.MultipoleAttention` (defaults: the authors'
        layer; ``image_size`` is the grid the levels are counted for, normally the training grid).
    qkv_bias : bool, optional
        Bias of the Q/K/V projections. Default ``None``: the mixer's default (False for multipole
        attention, as the authors; True for window and global attention).
    mlp_ratio : float, optional
        Hidden width of each block's MLP relative to ``hidden_channels``. Default 2.
    dropout : float, optional
        Attention, projection and MLP dropout (training only). Default 0.
    position_bias : bool, optional
        Learned relative-position bias in every attention layer (see
        :class:`~mano_pde.layers.attention.WindowedMultiheadAttention`). Default False.
    lifting_channel_ratio : float, optional
        Hidden width of the lifting ChannelMLP relative to ``hidden_channels`` (0: a single linear
        layer), as in neuralop's FNO. Default ``None``: the class's default (2; MANO: 0, the authors'
        linear lifting).
    projection_channel_ratio : float, optional
        Hidden width of the projection ChannelMLP relative to ``hidden_channels``. Default ``None``: the
        class's default (2; MANO: 1, the authors' ``dim -> dim -> out`` head).
    positional_embedding : {"node", "grid"} or GridEmbeddingND or None, optional
        ``"node"`` appends the 2 coordinates of each point on the data's grid (``grid_geometry``; node grids:
        ``(i / (H - 1), j / (W - 1))``), the same values for the same physical point at every resolution
        (:class:`~mano_pde.layers.embeddings.NodeGridEmbedding`); ``"grid"`` neuralop's periodic
        ``i / H`` grid. Default ``"node"``.
    non_linearity : str, optional
        Activation by name (``"gelu"``, ``"relu"``, ``"silu"``, ``"tanh"``, ``"identity"``). A name
        keeps the recorded constructor arguments plain data, so checkpoints reload with
        ``torch.load(..., weights_only=True)``. Default ``"gelu"``.
    projection_non_linearity : str, optional
        Activation of the projection MLP. Default ``None``: the class's default (``non_linearity``;
        MANO: ``"tanh"``, the authors' head).
    norm : {"layer_norm", "group_norm", "instance_norm"} or None, optional
        Pre-norm of each block and final norm. Default ``"layer_norm"``.
    reference_grid : int or (int, int), optional
        Multipole mixer only: the training grid, switching on the reference-grid mode of
        :class:`~mano_pde.layers.MultipoleAttention` for finer inputs. ``None`` (default): the paper's
        layer. Settable later with :meth:`set_reference_grid` (saved with the checkpoint).
    grid_geometry : {"node", "half-open", "cell"}, optional
        Where the data's grid points sit (:mod:`mano_pde.grids`): the coordinates of
        ``positional_embedding="node"`` (``i / (H - 1)``, ``i / H`` or ``(i + 1/2) / H``) and the geometry of
        the multipole reference-grid mode. ``mano-pde train`` sets it from the training file. Default
        ``"node"``.

    Notes
    -----
    ``forward(x, output_shape=None, **kwargs)``: extra keyword arguments (e.g. the ``y`` that
    :class:`neuralop.training.Trainer` passes with ``model(**batch)``) are ignored.
    """

    #: Mixer fixed by a subclass (``None``: chosen by the ``mixer`` argument).
    fixed_mixer: ClassVar[str | None] = None
    #: Registry name of a subclass that fixes its mixer (``None``: the name of the ``mixer``'s model).
    registry_name: ClassVar[str | None] = None
    #: Class defaults of the arguments whose signature default is ``None`` (subclasses override).
    class_defaults: ClassVar[dict] = {
        "lifting_channel_ratio": 2,
        "projection_channel_ratio": 2,
        "projection_non_linearity": None,
    }

    @record_arguments
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 64,
        n_layers: int = 4,
        mixer: str | None = None,
        n_heads: int = 4,
        head_dim: int | None = None,
        window_size: int = 8,
        window_stride: int | None = None,
        factor: int = 2,
        downsample: str = "conv",
        upsample: str = "conv",
        level_rule: str = "log",
        image_size: int | Sequence[int] | None = None,
        level_norm: bool = True,
        resample_init: str = "default",
        qkv_bias: bool | None = None,
        shift_windows: bool = True,
        shift_multipole: bool = False,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        lifting_channel_ratio: float | None = None,
        projection_channel_ratio: float | None = None,
        positional_embedding: str | GridEmbeddingND | None = "node",
        non_linearity: str | Callable = "gelu",
        projection_non_linearity: str | Callable | None = None,
        norm: str | None = "layer_norm",
        reference_grid: int | Sequence[int] | None = None,
        position_bias: bool = False,
        grid_geometry: GridGeometry = "node",
    ) -> None:
        super().__init__()
        fixed = type(self).fixed_mixer
        if mixer is None:
            mixer = fixed or "multipole"
        elif fixed is not None and mixer != fixed:
            raise UserInputError(
                f"{type(self).__name__} always uses the {fixed!r} mixer, got mixer={mixer!r}; "
                f"use TransformerOperator(mixer={mixer!r}) for another mixer"
            )
        if mixer not in MIXERS:
            raise UserInputError(f"unknown mixer {mixer!r}; expected one of {MIXERS}")
        defaults = type(self).class_defaults
        if lifting_channel_ratio is None:
            lifting_channel_ratio = defaults["lifting_channel_ratio"]
        if projection_channel_ratio is None:
            projection_channel_ratio = defaults["projection_channel_ratio"]
        check_transformer_hyperparameters(
            in_channels=in_channels,
            out_channels=out_channels,
            hidden_channels=hidden_channels,
            n_layers=n_layers,
            n_heads=n_heads,
            head_dim=head_dim,
            window_size=window_size,
            window_stride=window_stride,
            factor=factor,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
        )

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.mixer = mixer
        self.window_size = window_size
        if projection_non_linearity is None:
            projection_non_linearity = defaults["projection_non_linearity"] or non_linearity
        act = resolve_non_linearity(non_linearity)
        self.grid_geometry = check_geometry(grid_geometry, "grid_geometry")
        self.positional_embedding = make_positional_embedding(positional_embedding, in_channels, grid_geometry)
        lifting_in = in_channels + (2 if self.positional_embedding is not None else 0)

        lifting_channels = int(lifting_channel_ratio * hidden_channels)
        if lifting_channels:
            self.lifting = ChannelMLP(
                in_channels=lifting_in,
                out_channels=hidden_channels,
                hidden_channels=lifting_channels,
                n_layers=2,
                n_dim=2,
                non_linearity=act,
            )
        else:
            self.lifting = ChannelMLP(
                in_channels=lifting_in, out_channels=hidden_channels, n_layers=1, n_dim=2, non_linearity=act
            )

        self.blocks = nn.ModuleList()
        for i in range(n_layers):
            shifted = shift_windows if mixer == "window" else (shift_multipole and mixer == "multipole")
            shift = window_size // 2 if (shifted and i % 2 == 1) else 0
            block_mixer = make_mixer(
                mixer,
                hidden_channels,
                n_heads=n_heads,
                head_dim=head_dim,
                window_size=window_size,
                shift=shift,
                factor=factor,
                downsample=downsample,
                upsample=upsample,
                dropout=dropout,
                reference_grid=reference_grid if mixer == "multipole" else None,
                position_bias=position_bias,
                qkv_bias=qkv_bias,
                window_stride=window_stride,
                level_rule=level_rule,
                image_size=image_size,
                level_norm=level_norm,
                resample_init=resample_init,
                grid_geometry=grid_geometry,
            )
            self.blocks.append(TransformerBlock(hidden_channels, block_mixer, mlp_ratio, non_linearity, norm, dropout))
        self.norm = ChannelsLastNorm(norm, hidden_channels)
        self.projection = ChannelMLP(
            in_channels=hidden_channels,
            out_channels=out_channels,
            hidden_channels=int(projection_channel_ratio * hidden_channels),
            n_layers=2,
            n_dim=2,
            non_linearity=resolve_non_linearity(projection_non_linearity),
        )

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None, **kwargs) -> torch.Tensor:
        """Evaluate the operator.

        Parameters
        ----------
        x : torch.Tensor
            Input function ``[B, in_channels, H, W]``.
        output_shape : (int, int), optional
            Grid of the output; if it differs from ``(H, W)`` the last hidden state is resampled
            (bicubic, :func:`neuralop.layers.resample.resample`) before the projection.
        **kwargs
            Ignored (e.g. ``y`` from neuralop's Trainer, which calls ``model(**batch)``).

        Returns
        -------
        torch.Tensor
            ``[B, out_channels, H, W]`` (or the grid of ``output_shape``).
        """
        check_grid_input(x, self.in_channels, type(self).__name__)
        weight = self.lifting.fcs[0].weight
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{type(self).__name__} has {weight.dtype} weights but got a {x.dtype} input; "
                f"convert the input (x.to({weight.dtype})) or the model (model.to({x.dtype}))"
            )
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        h = channel_mlp_channels_last(self.lifting, x.permute(0, 2, 3, 1))
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        if output_shape is not None:
            target = _output_grid(output_shape)
            if target is not None and target != tuple(h.shape[1:3]):
                h = resample(h.permute(0, 3, 1, 2), 1.0, [2, 3], output_shape=list(target)).permute(0, 2, 3, 1)
        y = channel_mlp_channels_last(self.projection, h)
        return y.permute(0, 3, 1, 2).contiguous()

    @property
    def reference_grid(self) -> tuple[int, int] | None:
        """Reference grid of the multipole mixers (``None``: the plain layer, or not a multipole model)."""
        return getattr(self.blocks[0].mixer, "reference_grid", None)

    def set_reference_grid(self, grid: int | Sequence[int] | None) -> None:
        """Switch the multipole mixers' reference-grid mode on (``grid``: the training grid) or off (``None``).

        The setting is recorded in the model's constructor arguments, so :func:`~mano_pde.models.save_model`
        keeps it. Raises ``ValueError`` for models without a multipole mixer.
        """
        if self.mixer != "multipole":
            raise ValueError(
                f"reference_grid applies to multipole attention only; this model's mixer is {self.mixer!r}"
            )
        for block in self.blocks:
            block.mixer.set_reference_grid(grid)
        ref = self.reference_grid
        self.init_arguments["reference_grid"] = list(ref) if ref is not None else None

    def registry_record(self) -> tuple[str, dict]:
        """``(registry name, constructor keywords)`` of this model, for its JSON config.

        The keywords are those it was built with (:attr:`init_arguments`, every parameter, defaults
        included), with a reference grid set later (:meth:`set_reference_grid`) included.
        """
        init = self._recorded_arguments()
        if self.registry_name is None:
            init["mixer"] = None  # the registry class of this mixer fixes it
            return _MIXER_MODELS[self.mixer], init
        return self.registry_name, init

    def neuralop_metadata(self) -> dict:
        """The constructor record in neuraloperator's checkpoint format (``_metadata`` of :meth:`state_dict`,
        ``{name}_metadata.pkl``): what ``from_checkpoint`` rebuilds the model from, as this model records it."""
        return {**self._recorded_arguments(), "_version": type(self)._version, "args": (), "_name": type(self).__name__}

    def _recorded_arguments(self) -> dict:
        """:attr:`init_arguments` as saved: ``grid_geometry`` only when it is not the default ``"node"``, so the
        records of node-grid models are those of the package before grid geometries existed."""
        init = dict(self.init_arguments)
        if init.get("grid_geometry") == "node":
            del init["grid_geometry"]
        return init

    def state_dict(self, *args, **kwargs) -> dict:
        """neuralop's state dict: the tensors and ``"_metadata"``, the record of :meth:`neuralop_metadata`."""
        state = nn.Module.state_dict(self, *args, **kwargs)
        state["_metadata"] = self.neuralop_metadata()
        return state

    def num_levels(self, height: int, width: int) -> int:
        """Multipole levels each block uses on an ``height x width`` grid (1 for other mixers)."""
        mixer = self.blocks[0].mixer
        return mixer.num_levels(height, width) if hasattr(mixer, "num_levels") else 1

    def save_checkpoint(self, save_folder: str | Path, save_name: str) -> None:
        """neuralop's checkpoint (``{name}_state_dict.pt`` + ``{name}_metadata.pkl``) plus a JSON config.

        The two neuralop files are those of ``BaseModel.save_checkpoint`` (``from_checkpoint`` reads them),
        written atomically and with this model's own constructor record. The extra ``{name}_config.json``
        lets :func:`mano_pde.models.load_model` rebuild the model without unpickling anything
        (``torch.load(..., weights_only=True)``). neuralop's Trainer calls this method for its
        ``save_every`` / ``save_best`` checkpoints too.
        """
        from ..files import atomic_torch_save, atomic_write_text

        folder = Path(save_folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(self.state_dict(), folder / f"{save_name}_state_dict.pt")
        atomic_torch_save(self.neuralop_metadata(), folder / f"{save_name}_metadata.pkl")
        try:
            config = model_config(self)
        except TypeError as err:  # e.g. a callable non_linearity: the neuralop files are still written
            logger.warning("no JSON config written for %s: %s", save_name, err)
            return
        atomic_write_text(folder / f"{save_name}_config.json", json.dumps(config, indent=2) + "\n")


def channel_mlp_channels_last(mlp: ChannelMLP, x: torch.Tensor) -> torch.Tensor:
    """Apply a neuralop :class:`~neuralop.layers.channel_mlp.ChannelMLP` to channels-last ``x [..., C]``.

    Same weights and the same sequence of operations as ``ChannelMLP.forward`` (kernel-1 ``Conv1d`` ->
    non-linearity except after the last layer -> dropout if configured), evaluated as ``F.linear`` on the
    channels-last layout. On CPU this avoids ``Conv1d``'s slow im2col path on ``[B, C, H*W]`` and the
    permute copies into and out of the channel-first layout; ``tests/test_models_registry.py`` checks
    that it equals ``mlp(x)``.
    """
    for i, fc in enumerate(mlp.fcs):
        x = F.linear(x, fc.weight.squeeze(-1), fc.bias)
        if i < mlp.n_layers - 1:
            x = mlp.non_linearity(x)
        if mlp.dropout is not None:
            x = mlp.dropout[i](x)
    return x


def _output_grid(output_shape: Sequence) -> tuple[int, int] | None:
    """Accept ``(H, W)`` or, like neuralop's FNO, a per-layer list whose last entry is ``(H, W)`` or None."""
    shape = output_shape
    if len(shape) and (shape[-1] is None or isinstance(shape[-1], (tuple, list, torch.Size))):
        shape = shape[-1]
        if shape is None:
            return None
    if len(shape) != 2:
        raise ValueError(f"output_shape must be (H, W), got {output_shape!r}")
    return int(shape[0]), int(shape[1])
