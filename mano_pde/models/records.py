"""Plain-JSON records of models (``{name}_config.json``): what :func:`~mano_pde.models.load_model` rebuilds from.

Imports no model module: a model describes itself (:meth:`~mano_pde.models.TransformerOperator.registry_record`)
or was built by :func:`~mano_pde.models.create_model`, which records ``model.mano_pde_config``. So model
classes can write their own JSON config (neuralop's ``save_checkpoint``) without importing the checkpoint code.

The attention models keep their constructor arguments themselves (:func:`record_arguments`), rather than
reading neuraloperator's private ``BaseModel._init_kwargs``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any

__all__ = ["CONFIG_FORMAT", "model_config", "record_arguments"]

#: Identifier written in every ``{name}_config.json``.
CONFIG_FORMAT = "mano_pde.model/1"


def model_config(model: Any) -> dict[str, Any]:
    """Plain-JSON description of a model: ``{"format", "model", "kwargs", "model_version", ...}``.

    Works for models built by :func:`~mano_pde.models.create_model` and for directly constructed
    attention models (:class:`~mano_pde.models.TransformerOperator` and subclasses).

    Raises
    ------
    TypeError
        If the model is not a registry model or a constructor argument is not plain data (e.g. a
        callable ``non_linearity`` or a module as ``positional_embedding``).
    """
    if hasattr(model, "registry_record"):
        name, kwargs = model.registry_record()
    elif hasattr(model, "mano_pde_config"):
        name = model.mano_pde_config["model"]
        kwargs = dict(model.mano_pde_config["kwargs"])
    else:
        raise TypeError(
            f"cannot describe a {type(model).__name__} as a registry model: build it with "
            f"mano_pde.models.create_model(...) (or use neuralop's model.save_checkpoint for other models)"
        )
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except TypeError:
            raise TypeError(
                f"constructor argument {key}={value!r} is not plain data, so it cannot be stored in a JSON "
                f"config; pass it by name (e.g. non_linearity='gelu', positional_embedding='grid')"
            ) from None
    from .. import __version__

    return {
        "format": CONFIG_FORMAT,
        "model": name,
        "kwargs": json.loads(json.dumps(kwargs)),
        "model_version": getattr(model, "_version", None),
        "mano_pde_version": __version__,
    }


def record_arguments(init: Callable) -> Callable:
    """Decorate a model's ``__init__`` so that every instance keeps the arguments it was built with.

    After construction ``model.init_arguments`` maps each constructor parameter to its value: positional
    arguments by their names, defaults applied. It is the model's own record of how to rebuild it (its JSON
    config, neuralop's checkpoint metadata); the model may update it when a setting changes later (e.g.
    :meth:`~mano_pde.models.TransformerOperator.set_reference_grid`). The signature, annotations and
    docstring stay those of ``init`` (``inspect.signature`` and ``typing.get_type_hints`` see through).

    Raises
    ------
    TypeError
        At decoration, for a constructor with ``*args`` or ``**kwargs`` (no name to record them under).
    """
    signature = inspect.signature(init)
    variadic = [p.name for p in signature.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if variadic:
        raise TypeError(f"record_arguments needs named parameters only; {init.__qualname__} has {variadic}")

    @functools.wraps(init)
    def recording_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.init_arguments = dict(list(bound.arguments.items())[1:])  # without self

    return recording_init
