"""Range checks of model hyperparameters, run before any layer is built.

A degenerate value (a width of 0, ``n_modes=0``, a ratio that leaves an MLP without hidden units) would
otherwise build an empty network or fail deep inside torch or neuraloperator; these checks raise a
:class:`~mano_pde.errors.UserInputError` that names the constructor keyword instead. Types are checked
earlier, from the annotations (:mod:`mano_pde.models.arguments`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from ..errors import UserInputError

__all__ = ["MAX_SIZE", "check_fno_hyperparameters", "check_sizes", "check_transformer_hyperparameters", "is_int"]

#: The largest value of an integer size keyword (widths, layers, heads, modes, window sizes, grids, factor): 65,536
#: is beyond any operator of this package (the FNO paper's width is 32, its grids 421 points), and torch cannot
#: even form the shapes of much larger values (``2**63`` overflows them). Combinations below it that no machine
#: holds are refused by the registry's memory estimate (:func:`mano_pde.models.registry.create_model`).
MAX_SIZE = 2**16


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_ints(values: dict) -> None:
    for key, value in values.items():
        if not is_int(value) or value < 1:
            raise UserInputError(f"{key} must be a positive int, got {value!r}")


def _is_size(spec) -> bool:
    """An integer size keyword: it accepts ints (or lists of ints), not fractions (e.g. ``domain_padding``)."""
    item = spec.item if spec.item is not None else spec
    return "int" in item.kinds and "float" not in item.kinds and ("int" in spec.kinds or "seq" in spec.kinds)


def check_sizes(name: str, kwargs: dict, params: dict, width: int) -> None:
    """Refuse integer size keywords above :data:`MAX_SIZE`, and width ratios whose width would exceed it.

    Every keyword of a registry model whose annotation takes ints (and no fractions) is a size (``hidden_channels``,
    ``n_layers``, ``n_heads``, ``head_dim``, ``n_modes``, ``window_size``, ``window_stride``, ``factor``,
    ``image_size``, ...): checked here at once, for every model, so that ``hidden_channels=2**70`` is one line instead
    of torch's overflow. A ``*_ratio`` keyword (or TFNO's explicit ``rank``) times ``hidden_channels`` is a width too.

    Parameters
    ----------
    name : str
        Registry name (for messages).
    kwargs : dict
        The constructor keywords (types already checked).
    params : dict
        The model's keyword specs (:func:`mano_pde.models.registry.model_parameters`).
    width : int
        ``hidden_channels`` (given or the model's default), for the ratios.

    Raises
    ------
    mano_pde.errors.UserInputError
        Naming the keyword, its value and the bound.
    """
    for key, value in kwargs.items():
        spec = params.get(key)
        sized = key == "rank" or (spec is not None and _is_size(spec))  # TFNO's rank: a fraction or explicit ranks
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if sized and any(is_int(v) and v > MAX_SIZE for v in values):
            raise UserInputError(
                f"create_model({name!r}): {key}={value!r} is beyond the largest size a model of this package takes "
                f"({MAX_SIZE:,} = 2**16; the FNO paper's width is 32); give a smaller {key}"
            )
    for key, ratio in kwargs.items():
        if key.endswith("_ratio") and is_int(width) and isinstance(ratio, numbers.Real) and not isinstance(ratio, bool):
            if math.isfinite(ratio) and ratio * width > MAX_SIZE:
                raise UserInputError(
                    f"create_model({name!r}): {key}={ratio!r} gives a hidden width of {ratio * width:.3g} "
                    f"(x hidden_channels {width}), beyond the largest size a model of this package takes "
                    f"({MAX_SIZE:,} = 2**16); give a smaller {key}"
                )


def _finite(values: dict, minimum: float | None = None) -> None:
    for key, value in values.items():
        bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
        if bad or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum:g}"
            raise UserInputError(f"{key} must be a finite number{bound}, got {value!r}")


def _projection_width(ratio: float, width: int, hint: str = "") -> None:
    """The projection MLP needs ``int(ratio * width) >= 1`` hidden units."""
    if int(ratio * width) < 1:
        raise UserInputError(
            f"projection_channel_ratio = {ratio!r} gives the projection MLP {max(int(ratio * width), 0)} hidden "
            f"units (hidden_channels {width} x ratio); use a ratio with ratio * hidden_channels >= 1{hint}"
        )


def check_transformer_hyperparameters(**hp) -> None:
    """Refuse hyperparameters that would build a degenerate transformer operator.

    Takes the keywords of :class:`~mano_pde.models.TransformerOperator` it checks (``in_channels``,
    ``out_channels``, ``hidden_channels``, ``n_layers``, ``n_heads``, ``head_dim``, ``window_size``,
    ``window_stride``, ``factor``, ``mlp_ratio``, ``dropout``, ``lifting_channel_ratio``,
    ``projection_channel_ratio``), with the class defaults already applied.

    Raises
    ------
    mano_pde.errors.UserInputError
        Naming the keyword, its value and the range it must lie in.
    """
    _positive_ints(
        {k: hp[k] for k in ("in_channels", "out_channels", "hidden_channels", "n_layers", "n_heads", "window_size")}
    )
    width, heads = hp["hidden_channels"], hp["n_heads"]
    if hp["head_dim"] is not None and (not is_int(hp["head_dim"]) or hp["head_dim"] < 1):
        raise UserInputError(f"head_dim must be a positive int or None, got {hp['head_dim']!r}")
    if hp["head_dim"] is None and width % heads:
        raise UserInputError(
            f"hidden_channels = {width} is not divisible by n_heads = {heads}; choose n_heads dividing {width} "
            "or pass head_dim"
        )
    stride = hp["window_stride"]
    if stride is not None and (not is_int(stride) or not 1 <= stride <= hp["window_size"]):
        raise UserInputError(
            f"window_stride must be an int in [1, window_size = {hp['window_size']}] or None, got {stride!r}"
        )
    if not is_int(hp["factor"]) or hp["factor"] < 2:
        raise UserInputError(f"factor (down-sampling ratio between levels) must be an int >= 2, got {hp['factor']!r}")
    _finite({k: hp[k] for k in ("mlp_ratio", "dropout", "lifting_channel_ratio", "projection_channel_ratio")})
    if not 0 <= hp["dropout"] < 1:
        raise UserInputError(f"dropout must be in [0, 1), got {hp['dropout']!r}")
    ratio = hp["mlp_ratio"]
    if ratio <= 0 or width * ratio < 1:
        raise UserInputError(
            f"mlp_ratio = {ratio!r} gives each block's MLP a hidden width of {width * ratio:g} < 1 "
            f"(hidden_channels {width} x mlp_ratio); use mlp_ratio > 0 with mlp_ratio * hidden_channels >= 1 "
            "(e.g. the default 2)"
        )
    if hp["lifting_channel_ratio"] < 0:
        raise UserInputError(
            f"lifting_channel_ratio must be >= 0 (0: a linear lifting), got {hp['lifting_channel_ratio']!r}"
        )
    _projection_width(hp["projection_channel_ratio"], width)


def check_fno_hyperparameters(**hp) -> None:
    """Refuse hyperparameters that would build a degenerate FNO/TFNO.

    Takes the keywords of :func:`~mano_pde.models.fno_darcy` (others are ignored). neuralop builds an FNO
    with empty spectral weights for ``n_modes=0`` and fails deep inside for a width of 0 or below
    (ZeroDivisionError, negative dimensions).

    Raises
    ------
    mano_pde.errors.UserInputError
        Naming the keyword, its value and the range it must lie in.
    """
    _positive_ints({k: hp[k] for k in ("in_channels", "out_channels", "hidden_channels", "n_layers")})
    n_modes = hp["n_modes"]
    modes = [n_modes] if is_int(n_modes) else n_modes
    if (
        isinstance(modes, (str, bytes))
        or not isinstance(modes, Sequence)
        or len(modes) != 2
        or not all(is_int(m) and m >= 1 for m in modes)
    ):
        raise UserInputError(
            f"n_modes must be two positive ints (modes per direction, neuralop counting), got {n_modes!r}; "
            f"e.g. --n-modes 12 or n_modes=(24, 22)"
        )
    _finite({k: hp[k] for k in ("lifting_channel_ratio", "projection_channel_ratio")}, minimum=0)
    _projection_width(hp["projection_channel_ratio"], hp["hidden_channels"], " (the preset: 4)")
    if "rank" in hp:
        _check_rank(hp["rank"])


def _check_rank(rank) -> None:
    """TFNO's ``rank``: a fraction of the dense weights' parameters (a float > 0) or explicit ranks (ints >= 1).

    tensorly would turn ``rank=0.0`` silently into rank 1 and fail on a negative one inside scipy's root finder.
    """
    ranks = list(rank) if isinstance(rank, Sequence) and not isinstance(rank, (str, bytes)) else None
    if ranks is not None:
        if ranks and all(is_int(r) and r >= 1 for r in ranks):
            return
    elif is_int(rank):
        if rank >= 1:
            return
    elif isinstance(rank, numbers.Real) and not isinstance(rank, bool) and math.isfinite(rank) and rank > 0:
        return
    raise UserInputError(
        f"rank must be a finite number > 0 (the fraction of the dense Fourier weights' parameters the Tucker "
        f"factorisation keeps, e.g. 0.1) or ints >= 1 (explicit ranks), got {rank!r}"
    )
