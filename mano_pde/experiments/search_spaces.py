"""The search space of each model family for the equal-budget tuning (:mod:`mano_pde.experiments.tuning`).

Plain data, no torch or Optuna: the spec checks a narrowed space against it before anything runs. Every family is
searched over its architecture choices (categorical, so the number of configurations is countable:
:func:`space_size`) plus the same two training choices, the learning rate (log-uniform) and the batch size.
The spaces are of similar size (512–768 architectures each):

``mano``
    The authors' layer options: window span (``window_size``) and stride (``window_overlap``: stride = span / 2,
    overlapping windows as the authors' span 2 / stride 1 example; else stride = span), down-sampling ``factor``
    2 or 4, width, depth, heads, MLP ratio — and this package's named departure ``position_bias``. (The
    reference grid is evaluation-only: every MANO run is scored with and without it.)
``window-attention``
    Window, shifted windows (Swin) or not, width, depth, heads, MLP ratio, position bias, Q/K/V bias.
``global-attention``
    Width, depth, heads, MLP ratio, position bias, Q/K/V bias, lifting MLP or linear lifting.
``fno``
    Width, modes (per direction, neuralop counting), depth, projection ratio, lifting MLP or linear lifting.
``tfno``
    Width, modes, depth and the Tucker rank.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import UserInputError

__all__ = ["SPACES", "TRAIN_SPACE", "check_space", "space_size", "model_kwargs"]

#: Training choices searched for every family: ``lr`` log-uniform in [low, high], ``batch_size`` categorical.
TRAIN_SPACE: dict[str, Any] = {"lr": (3e-4, 5e-3), "batch_size": [2, 4, 8]}

#: Architecture choices per registry model (categorical).
SPACES: dict[str, dict[str, list[Any]]] = {
    "mano": {
        "window_size": [4, 8],
        "window_overlap": [False, True],
        "factor": [2, 4],
        "hidden_channels": [16, 24, 32, 48],
        "n_layers": [2, 3, 4],
        "n_heads": [2, 4],
        "mlp_ratio": [2.0, 4.0],
        "position_bias": [False, True],
    },
    "window-attention": {
        "window_size": [4, 8],
        "shift_windows": [False, True],
        "hidden_channels": [16, 24, 32, 48],
        "n_layers": [2, 3, 4],
        "n_heads": [2, 4],
        "mlp_ratio": [2.0, 4.0],
        "position_bias": [False, True],
        "qkv_bias": [False, True],
    },
    "global-attention": {
        "hidden_channels": [16, 24, 32, 48],
        "n_layers": [1, 2, 3, 4],
        "n_heads": [2, 4],
        "mlp_ratio": [2.0, 4.0],
        "position_bias": [False, True],
        "qkv_bias": [False, True],
        "lifting_channel_ratio": [0.0, 2.0],
    },
    "fno": {
        "hidden_channels": [8, 12, 16, 24, 32, 48],
        "n_modes": [4, 6, 8, 10, 12, 16],
        "n_layers": [2, 3, 4, 5],
        "projection_channel_ratio": [2.0, 4.0],
        "lifting_channel_ratio": [0.0, 2.0],
    },
    "tfno": {
        "hidden_channels": [12, 16, 24, 32, 48, 64],
        "n_modes": [4, 6, 8, 10, 12, 16],
        "n_layers": [2, 3, 4, 5],
        "rank": [0.05, 0.1, 0.2, 0.4],
    },
}


def check_space(model: str, narrowed: dict[str, Any], where: str) -> dict[str, list[Any]]:
    """The space of registry ``model`` with ``narrowed`` choices replacing its own (``lr``: ``[low, high]``).

    Raises
    ------
    mano_pde.errors.UserInputError
        A model without a search space, an unknown parameter or an empty list of choices.
    """
    if model not in SPACES:
        raise UserInputError(f"{where}: no search space for model {model!r}; spaces exist for {sorted(SPACES)}")
    space = {**SPACES[model], **TRAIN_SPACE}
    unknown = sorted(set(narrowed) - set(space))
    if unknown:
        raise UserInputError(f"{where}: unknown parameter(s) {unknown}; the space of {model!r} has {sorted(space)}")
    for name, choices in narrowed.items():
        if not isinstance(choices, list) or not choices:
            raise UserInputError(f"{where}.{name} must be a non-empty list of choices, got {choices!r}")
        if name == "lr" and (len(choices) != 2 or not 0 < choices[0] <= choices[1]):
            raise UserInputError(f"{where}.lr must be [low, high] with 0 < low <= high, got {choices!r}")
    return {**space, **{k: (tuple(v) if k == "lr" else list(v)) for k, v in narrowed.items()}}


def space_size(space: dict[str, Any]) -> int:
    """Number of architecture × batch-size configurations of a space (the learning rate is continuous)."""
    return math.prod(len(v) for k, v in space.items() if k != "lr")


def model_kwargs(model: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's parameters as (model constructor keywords, ``TrainConfig`` overrides)."""
    kwargs = {k: v for k, v in params.items() if k not in TRAIN_SPACE}
    train = {k: v for k, v in params.items() if k in TRAIN_SPACE}
    if "window_overlap" in kwargs:  # no stride keyword for tiling windows: the model's default (a spec holds no None)
        if kwargs.pop("window_overlap"):
            kwargs["window_stride"] = kwargs["window_size"] // 2
    if "n_modes" in kwargs:
        kwargs["n_modes"] = [int(kwargs["n_modes"])] * 2
    return kwargs, train
