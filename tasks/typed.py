"""Typed, frozen parameter sets: types, bounds and help text come from the dataclass.

As Foolbox 3's keyword-only attack constructors, a parameter set is a frozen
``kw_only`` dataclass whose fields are declared with :func:`param`: the default
(written once), one line saying what it means, and bounds where they are
obvious. :func:`checked_values` turns a mapping read from YAML into keyword
arguments, naming the key, the bad value and the known keys on a mistake;
:class:`Params` runs the same checks when a set is built in Python;
:func:`describe` lists the fields for ``--help-attack`` and the README.
Standard library only: the config parser runs this before torch is imported.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")

#: YAML 1.1 (PyYAML) reads ``1e-3`` as a string; a number field accepts that spelling.
_EXPONENT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_BOUNDS = {"ge": (">=", float.__ge__), "gt": (">", float.__gt__), "le": ("<=", float.__le__)}
_BOUNDS["lt"] = ("<", float.__lt__)


class ParamError(ValueError):
    """A value that does not fit its field; the message names the key and the value."""


def param(
    default: T,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> T:
    """A field with its default, a one-line meaning and optional bounds (checked on build)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, metadata={"doc": doc, "bounds": bounds})


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (``from __future__ import annotations`` safe)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    return _FIELD_TYPES[cls]


def type_text(tp: Any) -> str:
    """How a type reads in an error or a help table: ``a number``, ``one of 'ce', 'score'``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    if origin is tuple:
        return f"a list of {type_text(args[0]).removeprefix('a ').removeprefix('an ')}s"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, "null" if tp is type(None) else getattr(tp, "__name__", str(tp)))


def check_type(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (int -> float, list -> tuple, '1e-3' -> 0.001), else ParamError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
    elif origin in (Union, types.UnionType):
        for option in args:
            try:
                return check_type(value, option)
            except ParamError:
                continue
    elif origin is tuple and isinstance(value, (list, tuple)):
        try:
            return tuple(check_type(v, args[0]) for v in value)
        except ParamError:
            pass
    elif tp is type(None):
        if value is None:
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_TEXT.match(value.strip()):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ParamError(f"must be {type_text(tp)}")


def check_bounds(field: dataclasses.Field[Any], value: Any) -> None:
    """The field's ``ge``/``gt``/``le``/``lt`` bounds, for numbers (None passes)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for key, limit in field.metadata.get("bounds", {}).items():
        symbol, holds = _BOUNDS[key]
        if not holds(float(value), float(limit)):
            raise ParamError(f"must be {symbol} {limit:g}")


def _field_error(name: str, value: Any, exc: ParamError) -> ParamError:
    return ParamError(f"{name} = {value!r} {exc}")


def checked_values(cls: type, values: Mapping[Any, Any], noun: str = "key") -> dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from ``values``, each checked and converted.

    Unknown keys get the closest known names; a value of the wrong type or out
    of bounds is named with the key. Raises :class:`ParamError`.
    """
    types_ = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types_:
            close = difflib.get_close_matches(str(key), list(types_), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ParamError(f"unknown {noun} {key!r} = {value!r}{hint}")
        try:
            out[key] = check_type(value, types_[key])
            check_bounds(fields[key], out[key])
        except ParamError as exc:
            raise _field_error(key, value, exc) from None
    return out


def known_keys(cls: type) -> str:
    """``known: a, b, c`` (or ``it takes no parameters``) for error messages."""
    names = list(field_types(cls))
    return f"known: {', '.join(names)}" if names else "it takes no parameters"


@dataclass(frozen=True, kw_only=True)
class Params:
    """Base of a parameter set: every field is type- and bound-checked when it is built."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                converted = check_type(value, field_types(type(self))[f.name])
                check_bounds(f, converted)
            except ParamError as exc:
                raise _field_error(f.name, value, exc) from None
            if converted is not value:
                object.__setattr__(self, f.name, converted)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what a config needs to write)."""
        default = type(self)()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


@dataclass(frozen=True)
class FieldHelp:
    """One row of a parameter table."""

    name: str
    type: str
    default: Any
    doc: str
    bounds: str


def describe(cls: type) -> list[FieldHelp]:
    """The fields of a parameter set with their type, default, meaning and bounds."""
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        bounds = ", ".join(
            f"{_BOUNDS[k][0]} {v:g}" for k, v in f.metadata.get("bounds", {}).items()
        )
        rows.append(
            FieldHelp(
                f.name,
                type_text(field_types(cls)[f.name]),
                f.default,
                f.metadata.get("doc", ""),
                bounds,
            )
        )
    return rows
