"""Command-line options derived from the fields of a configuration dataclass.

One option per field: ``--field-name`` (underscores become dashes) with the field's type, default and
help, so that a configuration field added to the dataclass is an option of the command without further
code. The mapping:

==========================  =============================================================================
field                       option
==========================  =============================================================================
no default                  required
``bool``, default False     a flag (``--name`` sets True)
``bool``, default True      a flag ``--no-name`` (sets False)
``int``/``float``/``str``   one value of that type (``X | None`` too: the default may be None)
``list[X]``                 one or more values after the flag (``nargs="+"``), each of type X
==========================  =============================================================================

A field's ``metadata`` (``dataclasses.field(metadata={...})``) may add:

* ``"help"``: the option's help (the default is appended);
* ``"choices"``: the values allowed;
* ``"flag"``: the option's name when it is not ``--field-name`` (e.g. ``--bf16`` for ``amp_bf16``);
* ``"repeat"``: for a list field, one value per occurrence of the flag (``--resolution 17 --resolution 33``)
  instead of several values after one flag.

Fields of other types (e.g. a dict) cannot be options: the caller passes them in ``skip`` and fills them
itself; an unsupported field that is not skipped raises ``TypeError`` when the parser is built.

With ``defaults=False`` the options have no default: :func:`field_values` then returns only the fields
given on the command line, to override another configuration (``mano-pde generate --preset NAME --seed 3``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

__all__ = ["add_field_options", "field_values"]

_SCALARS = (int, float, str)


def _option_type(annotation) -> tuple[type, bool]:
    """``(type, is_list)`` of a field's resolved annotation, ``None`` stripped from an optional type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _option_type(args[0])
    if origin is list and len(typing.get_args(annotation)) == 1 and typing.get_args(annotation)[0] in _SCALARS:
        return typing.get_args(annotation)[0], True
    if annotation is bool or annotation in _SCALARS:
        return annotation, False
    return object, False


def _fields(cls: type, skip: typing.Collection[str]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]


def add_field_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    skip: typing.Collection[str] = (),
    defaults: bool = True,
) -> None:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (see the module docstring).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where the options go; each option's ``dest`` is its field's name.
    cls : type
        A dataclass.
    skip : collection of str, optional
        Fields that get no option (the caller sets them).
    defaults : bool, optional
        The fields' defaults are the options' defaults (True, the default). False: an option not given is
        left out of :func:`field_values` (the fields must then all have defaults).

    Raises
    ------
    TypeError
        A field whose type has no command-line form (and that is not in ``skip``).
    """
    hints = typing.get_type_hints(cls)
    for f in _fields(cls, skip):
        meta = f.metadata
        kind, is_list = _option_type(hints[f.name])
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help", f"{cls.__name__}.{f.name}")}
        if "flag" in meta and "choices" not in meta and not (kind is bool and not is_list):
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default_factory is dataclasses.MISSING else f.default_factory())
        if kind is bool and not is_list:
            if default is True:
                flag = meta.get("flag", "--no-" + f.name.replace("_", "-"))
            kwargs["action"] = "store_false" if default is True else "store_true"
        elif kind is object:
            raise TypeError(
                f"{cls.__name__}.{f.name} ({hints[f.name]}) has no command-line form: give it in skip and set it "
                "from other options"
            )
        else:
            kwargs["type"] = kind
            if is_list and meta.get("repeat"):
                kwargs["action"] = "append"
            elif is_list:
                kwargs["nargs"] = "+"
            if "choices" in meta:
                kwargs["choices"] = tuple(meta["choices"])
            if default is not None and not required and defaults:
                kwargs["help"] += f" (default {default})"
        if required:
            kwargs["required"] = True
        elif not defaults:
            kwargs["default"] = argparse.SUPPRESS
        else:  # argparse appends to a default list: a repeated option starts empty and falls back in field_values
            kwargs["default"] = None if kwargs.get("action") == "append" else default
        parser.add_argument(flag, **kwargs)


def field_values(cls: type, args: argparse.Namespace, skip: typing.Collection[str] = ()) -> dict[str, Any]:
    """The values of ``cls``'s fields parsed by the options of :func:`add_field_options`: field name -> value.

    An option that was not given is left out when it has no default (``defaults=False``) or is repeated
    (``"repeat"``), so that ``cls(**values)`` applies the field's default.
    """
    values = {f.name: getattr(args, f.name) for f in _fields(cls, skip) if hasattr(args, f.name)}
    return {k: v for k, v in values.items() if not (v is None and cls.__dataclass_fields__[k].metadata.get("repeat"))}
