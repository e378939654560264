"""Constructor keywords of registry models, checked against the builders' annotated types.

Two entry points, both raising :class:`ModelArgumentError` (a :class:`~mano_pde.errors.UserInputError`
that is also a ``TypeError``, the exception Python raises for a bad keyword):

* :func:`parse_model_args` -- ``KEY=VALUE`` strings of ``mano-pde train --model-arg``, converted with the
  annotation of each keyword: ``bool`` accepts ``true/false/1/0/yes/no`` (any case) and nothing else,
  ``int``/``float`` must parse (floats finite), ``None`` is spelled ``none``/``null`` where allowed,
  sequences are JSON lists or comma-separated (``n_modes=16,16``). Unknown keys name the accepted ones.
* :func:`check_model_kwargs` -- the same types for values given from Python
  (:func:`~mano_pde.models.create_model`), e.g. ``position_bias="False"`` (a truthy string) is refused.
  Parameters whose annotation admits arbitrary objects (callables, modules) are not checked.

The annotations are read with :func:`typing.get_type_hints` from the registry builder and, for keywords a
builder forwards through ``**kwargs`` (FNO/TFNO), from neuralop's class.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import UserInputError

__all__ = ["ModelArgumentError", "check_model_kwargs", "parameters_of", "parse_model_args"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_SEQUENCES = (list, tuple, Sequence, typing.Sequence, typing.List, typing.Tuple)  # noqa: UP006


class ModelArgumentError(UserInputError, TypeError):
    """A constructor keyword of a model that is unknown, of the wrong type or out of range.

    Subclasses both :class:`~mano_pde.errors.UserInputError` (the CLI prints it in one line, exit 2) and
    ``TypeError`` (what Python raises for an unexpected keyword argument).
    """


@dataclass(frozen=True)
class _Spec:
    """The values a parameter accepts: a set of kinds (``bool``, ``int``, ``float``, ``str``, ``none``,
    ``seq``, ``literal``, ``any``) with the literals and the item spec of a sequence."""

    kinds: frozenset[str]
    literals: tuple = ()
    item: _Spec | None = field(default=None)

    def describe(self) -> str:
        names = {
            "bool": "a bool (true/false/1/0/yes/no)",
            "int": "an integer",
            "float": "a finite number",
            "str": "a string",
            "none": "none",
        }
        parts = [names[k] for k in ("bool", "int", "float", "str") if k in self.kinds]
        if "int" in self.kinds and "float" in self.kinds:
            parts.remove("an integer")
        if "literal" in self.kinds:
            parts.append("one of " + ", ".join(repr(v) for v in self.literals if v is not None))
        if "seq" in self.kinds and self.item is not None:
            parts.append(f"a list of {self.item.describe().removeprefix('an ').removeprefix('a ')}s")
        if "none" in self.kinds:
            parts.append("none")
        return " or ".join(parts) if parts else "a Python object (not settable from the command line)"


def _spec(annotation, default) -> _Spec:
    kinds: set[str] = set()
    literals: list = []
    item: list[_Spec] = []

    def visit(t) -> None:
        if t is inspect.Parameter.empty or t is typing.Any:
            kinds.add("any")
            return
        if t is None or t is type(None):
            kinds.add("none")
            return
        origin = typing.get_origin(t)
        if origin in (typing.Union, types.UnionType):
            for a in typing.get_args(t):
                visit(a)
        elif origin is typing.Literal:
            kinds.add("literal")
            for a in typing.get_args(t):
                literals.append(a)
                if a is None:
                    kinds.add("none")
        elif t is bool:
            kinds.add("bool")
        elif t is int:
            kinds.add("int")
        elif t is float or t in (numbers.Number, numbers.Real):
            kinds.add("float")
        elif t is str:
            kinds.add("str")
        elif t in _SEQUENCES or origin in _SEQUENCES:
            kinds.add("seq")
            args = [a for a in typing.get_args(t) if a is not Ellipsis]
            item.append(_spec(args[0] if args else inspect.Parameter.empty, inspect.Parameter.empty))
        else:
            kinds.add("other")  # callables, modules, dicts: not checked

    visit(annotation)
    if kinds == {"any"} and default is not inspect.Parameter.empty and default is not None:
        kinds = {"float" if type(default) is float else type(default).__name__}  # unannotated: the default's type
        if not kinds <= {"bool", "int", "float", "str"}:
            kinds = {"any"}
    if default is None:
        kinds.add("none")  # neuralop annotates e.g. ``stabilizer: str = None``
    return _Spec(frozenset(kinds), tuple(literals), item[0] if item else None)


def _hints(fn: Callable) -> dict:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation that cannot be resolved: such parameters are simply not type-checked
        return {}


def parameters_of(*fns: Callable | None) -> dict[str, _Spec]:
    """Accepted constructor keywords of a builder (and the class it forwards ``**kwargs`` to), with the values
    each accepts, from their signatures and annotations (:func:`mano_pde.models.registry.model_parameters`
    gives them for a registry name).

    Returns
    -------
    dict
        Keyword -> spec (``spec.describe()`` says what it accepts).
    """
    out: dict[str, _Spec] = {}
    for fn in fns:
        if fn is None:
            continue
        hints = _hints(fn)
        for p in inspect.signature(fn).parameters.values():
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.name in out:
                continue
            out[p.name] = _spec(hints.get(p.name, p.annotation), p.default)
    return out


def _unknown(name: str, keys: Iterable[str], accepted: Iterable[str]) -> ModelArgumentError:
    return ModelArgumentError(
        f"create_model({name!r}) got unexpected keyword argument(s) {sorted(keys)}; accepted: {sorted(accepted)}"
    )


def _parse(key: str, text: str, spec: _Spec):
    """One value from its command-line text, or ``ValueError`` (the caller names key and expected type)."""
    raw = text.strip()
    low = raw.lower()
    if "none" in spec.kinds and low in ("none", "null"):
        return None
    if "bool" in spec.kinds:
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    if "int" in spec.kinds:
        try:
            return int(raw)
        except ValueError:
            pass
    if "float" in spec.kinds:
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is not None and math.isfinite(value):
            return int(value) if "int" in spec.kinds and value.is_integer() and "." not in raw else value
    if "literal" in spec.kinds:
        for lit in spec.literals:
            if lit is not None and str(lit) == raw:
                return lit
    if "seq" in spec.kinds and spec.item is not None:
        try:
            items = json.loads(raw)
        except ValueError:
            items = [t for t in raw.strip("[]()").split(",") if t.strip()]
        if isinstance(items, list) and items:
            try:
                return [_parse(key, json.dumps(v) if not isinstance(v, str) else v, spec.item) for v in items]
            except ValueError:
                pass
    if "str" in spec.kinds:
        return text
    if "any" in spec.kinds:
        try:
            return json.loads(text)
        except ValueError:
            return text
    raise ValueError(f"{key}={text!r}: {key} expects {spec.describe()}")


def parse_model_args(name: str, pairs: Iterable[tuple[str, str]], params: dict[str, _Spec]) -> dict[str, object]:
    """Convert ``--model-arg KEY=VALUE`` strings to constructor keywords of model ``name``.

    Parameters
    ----------
    name : str
        Registry name of the model (for messages).
    pairs : iterable of (str, str)
        Keys (``-`` and ``_`` interchangeable) and their command-line text.
    params : dict
        The model's keywords (:func:`mano_pde.models.registry.model_parameters`).

    Returns
    -------
    dict
        Keyword -> typed value.

    Raises
    ------
    ModelArgumentError
        An unknown key (the message lists the accepted ones), a key given twice, or a value that does not
        parse as the keyword's annotated type (e.g. ``position_bias=maybe``, ``window_size=abc``).
    """
    out: dict[str, object] = {}
    pairs = [(k.strip().replace("-", "_"), v) for k, v in pairs]
    unknown = [k for k, _ in pairs if k not in params]
    if unknown:
        raise _unknown(name, unknown, params)
    for key, text in pairs:
        if key in out:
            raise ModelArgumentError(f"--model-arg {key} is given twice; keep one")
        try:
            out[key] = _parse(key, text, params[key])
        except ValueError as exc:
            raise ModelArgumentError(f"--model-arg {exc}") from None
    return out


def _matches(value, spec: _Spec) -> bool:
    kinds = spec.kinds
    if "any" in kinds or "other" in kinds:
        return True
    if value is None:
        return "none" in kinds
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "bool" in kinds
    if "literal" in kinds and value in spec.literals:
        return True
    if isinstance(value, numbers.Integral):
        return bool(kinds & {"int", "float"})
    if isinstance(value, numbers.Real):
        return "float" in kinds and math.isfinite(float(value))
    if isinstance(value, str):
        return "str" in kinds
    if isinstance(value, (list, tuple)):
        return "seq" in kinds and (spec.item is None or all(_matches(v, spec.item) for v in value))
    return False


def check_model_kwargs(name: str, kwargs: dict[str, object], params: dict[str, _Spec]) -> None:
    """Refuse unknown keywords and values whose type contradicts the builder's annotation.

    Parameters
    ----------
    name : str
        Registry name of the model (for messages).
    kwargs : dict
        Constructor keywords.
    params : dict
        The model's keywords (:func:`mano_pde.models.registry.model_parameters`).

    Raises
    ------
    ModelArgumentError
        Naming the keyword, the expected type and the value.
    """
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise _unknown(name, unknown, params)
    for key, value in kwargs.items():
        spec = params[key]
        if not _matches(value, spec):
            raise ModelArgumentError(
                f"create_model({name!r}): {key} expects {spec.describe()}, got {value!r} ({type(value).__name__})"
            )
