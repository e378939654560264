"""One registry of every model in the package, with uniform keyword names (timm-style).

``create_model(name, **kwargs)`` builds any registered model; the shared keywords mean the same thing for
every model: ``in_channels``, ``out_channels``, ``hidden_channels``, ``n_layers``,
``positional_embedding``, ``non_linearity`` (a name, e.g. ``"gelu"``), ``norm``,
``lifting_channel_ratio``, ``projection_channel_ratio``. Model-specific keywords (``n_modes`` for the
Fourier models, ``window_size``/``n_heads``/... for the attention models) pass through; an unknown
keyword (or a value of the wrong type) raises ``ModelArgumentError`` (a ``TypeError``) naming the accepted
ones; out-of-range hyperparameters raise :class:`~mano_pde.errors.UserInputError`.

==================  ==================================================  ======================
name                model                                               built by
==================  ==================================================  ======================
``mano``            MANO, multipole attention (arXiv 2507.02748)        :class:`MANO`
``fno``             FNO, FNO paper's Darcy preset (neuralop's class)    :func:`fno_darcy`
``tfno``            Tucker TFNO, same preset (neuralop's class)         :func:`tfno_darcy`
``global-attention``  ViT-like transformer operator                    :class:`GlobalAttentionOperator`
``window-attention``  Swin-like transformer operator                   :class:`WindowAttentionOperator`
==================  ==================================================  ======================
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from neuralop.models import FNO
from torch import nn

from ..errors import UserInputError
from ..model_catalogue import MODELS, canonical_model_name
from .arguments import check_model_kwargs, parameters_of
from .arguments import parse_model_args as _parse_model_args
from .attention_operators import GlobalAttentionOperator, WindowAttentionOperator
from .fourier import fno_darcy, tfno_darcy
from .hyperparameters import check_sizes
from .mano import MANO

logger = logging.getLogger(__name__)

__all__ = [
    "count_parameters",
    "create_model",
    "list_models",
    "model_builder",
    "model_parameters",
    "model_signature",
    "parse_model_args",
]


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    description: str
    #: class whose constructor receives the builder's ``**kwargs`` (for keyword checking)
    forwards_to: type | None = None


#: Registry name -> (builder, class receiving the builder's ``**kwargs``); the names and their descriptions are
#: those of the torch-free :mod:`mano_pde.model_catalogue`, which the command line reads.
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], type | None]] = {
    "mano": (MANO, None),
    "fno": (fno_darcy, FNO),
    "tfno": (tfno_darcy, FNO),
    "global-attention": (GlobalAttentionOperator, None),
    "window-attention": (WindowAttentionOperator, None),
}
if set(_BUILDERS) != set(MODELS):
    raise ImportError(
        f"the model registry {sorted(_BUILDERS)} and mano_pde.model_catalogue.MODELS {sorted(MODELS)} disagree: "
        "add or remove the name in both"
    )
_REGISTRY: dict[str, _Entry] = {name: _Entry(builder, MODELS[name], to) for name, (builder, to) in _BUILDERS.items()}


def _canonical(name: str) -> str:
    return canonical_model_name(name)  # the catalogue's names are the registry's (checked at import)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, e.g. ``["fno", "global-attention", "mano", ...]``."""
    return sorted(_REGISTRY)


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The class or factory function behind a registry name."""
    return _REGISTRY[_canonical(name)].builder


def model_signature(name: str) -> set[str]:
    """Constructor keywords that :func:`create_model` accepts for a registry name."""
    entry = _REGISTRY[_canonical(name)]
    accepted = _keywords(entry.builder)
    if entry.forwards_to is not None:
        accepted |= _keywords(entry.forwards_to)
    return accepted


def model_parameters(name: str) -> dict:
    """Accepted constructor keywords of a registry model and the values each accepts (keyword -> spec)."""
    entry = _REGISTRY[_canonical(name)]
    return parameters_of(entry.builder, entry.forwards_to)


def parse_model_args(name: str, pairs) -> dict[str, object]:
    """``--model-arg KEY=VALUE`` pairs of model ``name`` as typed keywords (:mod:`mano_pde.models.arguments`)."""
    return _parse_model_args(name, pairs, model_parameters(name))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models` (case-insensitive, ``_`` and ``-`` interchangeable).
    **kwargs
        Constructor keywords (see the module docstring); ``in_channels`` and ``out_channels`` default
        to 1 (scalar-to-scalar operators such as Darcy flow's permeability -> pressure).

    Returns
    -------
    torch.nn.Module
        A :class:`neuralop.models.base_model.BaseModel`; its registry name and keywords are recorded in
        ``model.mano_pde_config`` so that :func:`mano_pde.models.save_model` can write a plain-JSON
        config for :func:`mano_pde.models.load_model`.

    Raises
    ------
    mano_pde.models.arguments.ModelArgumentError
        An unknown keyword or a value whose type contradicts the builder's annotation (also a
        ``TypeError``).
    mano_pde.errors.UserInputError
        An unknown model name or a hyperparameter out of range (e.g. ``n_modes`` < 1, ``mlp_ratio`` <= 0).

    Examples
    --------
    >>> model = create_model("mano", in_channels=1, out_channels=1, hidden_channels=32)
    >>> fno = create_model("fno")  # neuralop FNO, FNO paper's Darcy preset
    """
    key = _canonical(name)
    entry = _REGISTRY[key]
    builder = entry.builder
    kwargs.setdefault("in_channels", 1)
    kwargs.setdefault("out_channels", 1)
    # unknown keywords and wrong types: ModelArgumentError (a TypeError)
    params = model_parameters(key)
    check_model_kwargs(key, kwargs, params)
    check_sizes(key, kwargs, params, kwargs.get("hidden_channels", _defaults(builder).get("hidden_channels")))
    try:
        _check_memory(key, builder, kwargs)
        model = builder(**kwargs)
    except UserInputError:
        raise
    except ValueError as exc:  # the layers' own argument checks (e.g. an unknown downsample name)
        raise UserInputError(f"create_model({key!r}): {exc}") from exc
    model.mano_pde_config = {"model": key, "kwargs": _plain(kwargs)}
    logger.debug("created %s with %d parameters", key, count_parameters(model))
    return model


def _defaults(fn: Callable) -> dict[str, object]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.default is not p.empty}


def _check_memory(key: str, builder: Callable[..., nn.Module], kwargs: dict) -> None:
    """Refuse a model whose float32 weights alone exceed this machine's memory, before allocating any.

    The model is built on torch's ``meta`` device (shapes only, no memory, the random state kept) with at most two
    layers, and its parameter count extrapolated linearly in ``n_layers`` (every layer of these models is alike), so
    the estimate is exact and costs milliseconds whatever the sizes.
    """
    memory = _physical_memory()
    n_layers = kwargs.get("n_layers", _defaults(builder).get("n_layers"))
    if memory is None or not isinstance(n_layers, int):
        return
    sizes = {k: v for k, v in kwargs.items() if k in _SIZE_KEYWORDS and not (k.endswith("_channels") and v == 1)}
    shown = ", ".join(f"{k}={v!r}" for k, v in sizes.items()) or "its default sizes"
    counts = []
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        for n in sorted({min(n_layers, 1), min(n_layers, 2)}):
            try:
                counts.append(count_parameters(builder(**{**kwargs, "n_layers": n})))
            except UserInputError:
                raise
            except (RuntimeError, TypeError, OverflowError, MemoryError) as exc:  # shapes torch cannot even form
                raise UserInputError(
                    f"create_model({key!r}) with {shown}: torch cannot form the tensor shapes ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); use smaller sizes"
                ) from exc
    n_params = counts[-1] + max(n_layers - 2, 0) * (counts[-1] - counts[0])
    if 4 * n_params > memory:
        raise UserInputError(
            f"create_model({key!r}) with {shown} has {n_params:,} parameters ({4 * n_params / 2**30:,.1f} GiB as "
            f"float32), more than this machine's memory ({memory / 2**30:,.1f} GiB); use smaller sizes (e.g. "
            "hidden_channels, n_modes, n_layers)"
        )


#: Keywords named by the memory refusal (the sizes a user would shrink).
_SIZE_KEYWORDS = (
    "hidden_channels", "n_layers", "n_modes", "n_heads", "head_dim", "window_size", "mlp_ratio", "rank",
    "lifting_channel_ratio", "projection_channel_ratio", "in_channels", "out_channels",
)  # fmt: skip


def _physical_memory() -> int | None:
    """Bytes of RAM of this machine (``None`` where the platform does not say)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - e.g. Windows
        return None


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of real scalar parameters (a complex parameter counts twice, as in the FNO paper).

    ``sum(p.numel())`` counts a complex Fourier weight as one parameter, which halves FNO's count.
    """
    total = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        total += p.numel() * (2 if torch.is_complex(p) else 1)
    return total


def _keywords(fn: Callable) -> set[str]:
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _plain(value):
    """Tuples -> lists (JSON form); everything else unchanged (non-JSON values are caught on save)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
