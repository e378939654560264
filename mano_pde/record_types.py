"""Type checks of plain-data records (JSON and TOML files) against the annotations of the dataclass they fill.

``config.json`` of a run, an experiment spec's tables and the other JSON records of a run are parsed, not
trusted: a value of the wrong type (``"resolutions": "17"``, ``"n_test": "3"``) is refused with a
:class:`~mano_pde.errors.UserInputError` that names the key and says which type it needs, instead of being
coerced into something else (``[1, 7]``) or failing later inside a comparison without the key's name. The
caller adds the file's name (e.g. :meth:`mano_pde.training.TrainConfig.load`).

Supported annotations: ``Any``, ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``X | None``, ``list[X]``
(any non-string sequence from Python code), ``dict[str, X]`` and dataclasses (a table: its own keys are checked
where it is built). Pure standard library.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Sequence
from typing import Any

from .errors import UserInputError

__all__ = ["check_value", "check_fields", "describe"]


def describe(annotation: Any) -> str:
    """A reader's name for the values an annotation allows (``"a list of int"``, ``"a number or null"``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin in (list, Sequence):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}" if args else "a list"
    if origin is dict or annotation is dict:
        return "a table (dict)"
    if dataclasses.is_dataclass(annotation):
        return "a table (dict)"
    return {bool: "a bool (true/false)", int: "an int", float: "a number", str: "a string"}.get(
        annotation, str(annotation)
    )


def _fits(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, Sequence):
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, Sequence):
            return False
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False
        return len(args) < 2 or all(_fits(v, args[1]) for v in value.values())
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, (dict, annotation))
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def check_value(value: Any, annotation: Any, where: str) -> None:
    """Refuse ``value`` unless it has the type ``annotation`` describes.

    Parameters
    ----------
    value
        The value read from a record.
    annotation
        The type it must have (see the module docstring).
    where : str
        Its key, named in the message (e.g. ``"resolutions"`` or ``"arms.full.evaluate.n_test"``).

    Raises
    ------
    mano_pde.errors.UserInputError
        ``"{where} must be {type}, got {value!r}"``.
    """
    if not _fits(value, annotation):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise UserInputError(f"{where} must be {describe(annotation)}, got {shown} ({type(value).__name__})")


def check_fields(record: Any, cls: type, prefix: str = "") -> None:
    """Check every value of ``record`` (a dict, or an instance of the dataclass ``cls``) against ``cls``'s fields.

    Keys that are not fields are left to the caller (which refuses them by name).
    """
    hints = typing.get_type_hints(cls)
    values = record if isinstance(record, dict) else {f.name: getattr(record, f.name) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if f.name in values:
            check_value(values[f.name], hints[f.name], prefix + f.name)
