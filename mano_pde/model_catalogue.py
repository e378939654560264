"""The names of the registry's models and what each is, without importing torch.

The command line takes its ``--model`` choices and their help from here, so that ``mano-pde --help`` never
imports torch or neuraloperator. :mod:`mano_pde.models.registry` builds the models and refuses, at import,
to register any other set of names than this one.
"""

from __future__ import annotations

from .errors import UserInputError

__all__ = ["MODELS", "MODEL_NAMES", "canonical_model_name"]

#: Registry name -> one-line description, in the order the command line lists them.
MODELS: dict[str, str] = {
    "mano": "MANO: transformer operator with multipole attention (linear, global context)",
    "fno": "neuralop FNO, FNO-paper Darcy preset (width 32, 12 modes, 4 layers)",
    "tfno": "neuralop TFNO (Tucker, rank 0.1), same preset as fno",
    "global-attention": "ViT-like transformer operator (global attention)",
    "window-attention": "Swin-like transformer operator (shifted windows)",
}

#: The registry names (``mano_pde.models.list_models()`` gives them sorted).
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def canonical_model_name(name: str) -> str:
    """The registry name of ``name`` (case-insensitive, ``_`` and ``-`` interchangeable).

    Raises
    ------
    mano_pde.errors.UserInputError
        ``name`` names no model of the registry (the message lists them).
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in MODELS:
        raise UserInputError(f"unknown model {name!r}; available models: {sorted(MODELS)}")
    return key
