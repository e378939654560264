"""Plain-JSON records of models (``{name}_config.json``): what :func:`~mano_pde.models.load_model` rebuilds from.

Imports no model module: a model describes itself (:meth:`~mano_pde.models.TransformerOperator.registry_record`)
or was built by :func:`~mano_pde.models.create_model`, which records ``model.mano_pde_config``. So model
classes can write their own JSON config (neuralop's ``save_checkpoint``) without importing the checkpoint code.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CONFIG_FORMAT", "model_config"]

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
