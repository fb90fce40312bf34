"""Typed overrides of frozen dataclass configs: the one config mechanism of every command.

A config is a frozen dataclass whose fields are ``bool``, ``int``, ``float``, ``str``, tuples of
those (``tuple[str, ...]`` or fixed ``tuple[float, float]``), or ``X | None``. Three ways in:

* :func:`override` — ``key=value`` strings (``dualjax train --set steps=20``) or a dict of values;
* :func:`add_flags` / :func:`from_flags` — one argparse flag per field (``--init-scale 0.5``),
  with its help text from the field's ``metadata["help"]`` or the class docstring's
  ``Attributes:`` table (``name: text`` lines);
* :func:`from_dict` — a stored ``config.json``.

Every value is checked against its field's type: an unknown key raises ``ValueError`` naming it
and listing the valid ones, an unparsable value names the key, the text and the type wanted.
Strings parse as: bool ``true/false/yes/no/1/0``; int and float as Python numbers (an int is
accepted for a float field); tuples as ``a,b,c`` or a Python literal ``(a, b)``, ``""`` = ``()``;
``none`` = None where the field allows it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

C = TypeVar("C")

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def field_types(cls) -> dict[str, Any]:
    """``{name: type}`` of a dataclass's fields, string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _optional(tp) -> tuple[Any, bool]:
    """(the type without ``None``, whether ``None`` is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config type {tp}")
        return args[0], True
    return tp, False


def _type_name(tp) -> str:
    inner, nullable = _optional(tp)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        name = f"{args[0].__name__},..." if args[-1] is Ellipsis else ",".join(a.__name__ for a in args)
    else:
        name = inner.__name__
    return name.upper() + ("|none" if nullable else "")


def coerce(value: Any, tp, name: str, *, parse: bool = True) -> Any:
    """``value`` (a Python value, or with ``parse`` a string to parse) as type ``tp`` of field
    ``name``; ``parse=False`` (stored JSON) takes values as they are, so ``"4"`` is not an int."""
    inner, nullable = _optional(tp)
    if value is None or (parse and nullable and isinstance(value, str) and value.strip().lower() == "none"):
        if nullable:
            return None
        raise ValueError(f"{name}=None is not allowed; {name} is {_type_name(tp)}")
    if typing.get_origin(inner) is tuple:
        return _tuple(value, inner, name, parse)
    if inner not in (bool, int, float, str):
        raise TypeError(f"field {name}: unsupported config type {tp}")
    if isinstance(value, str) and inner is not str and parse:
        return _scalar_from_text(value.strip(), inner, name)
    ok = (isinstance(value, inner) and not (inner is not bool and isinstance(value, bool))) or (
        inner is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"{name}={value!r} must be {_type_name(tp)}")
    return float(value) if inner is float else value


def _scalar_from_text(text: str, tp, name: str) -> Any:
    if tp is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{name}={text!r} is not a boolean (true/false)")
    try:
        return tp(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} cannot be parsed as {tp.__name__}") from None


def _tuple(value: Any, tp, name: str, parse: bool = True) -> tuple:
    args = typing.get_args(tp)
    if isinstance(value, str) and not parse:
        raise ValueError(f"{name}={value!r} must be a list ({_type_name(tp)})")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("(", "[")):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"{name}={text!r} is not a tuple literal") from None
        else:
            value = [part.strip() for part in text.split(",")] if text else []
    if not isinstance(value, (list, tuple)):
        value = (value,)
    if args[-1] is Ellipsis:
        return tuple(coerce(v, args[0], name, parse=parse) for v in value)
    if len(value) != len(args):
        raise ValueError(f"{name}={value!r} must have {len(args)} entries ({_type_name(tp)})")
    return tuple(coerce(v, a, name, parse=parse) for v, a in zip(value, args))


def _unknown(key: str, cls) -> ValueError:
    return ValueError(f"unknown config key {key!r}; valid keys: {sorted(field_types(cls))}")


def override(cfg: C, items: Iterable[str] | Mapping[str, Any]) -> C:
    """``cfg`` with ``key=value`` overrides (strings, as from ``--set``) or a dict of values.

    Raises ValueError naming an unknown key (and listing the valid ones), an item without ``=``,
    or a value that does not parse as / is not of its field's type.
    """
    types_ = field_types(type(cfg))
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value")
            key, text = item.split("=", 1)
            pairs.append((key.strip(), text.strip()))
    changes = {}
    for key, value in pairs:
        if key not in types_:
            raise _unknown(key, type(cfg))
        changes[key] = coerce(value, types_[key], key)
    return dataclasses.replace(cfg, **changes)


def from_dict(cls: type[C], raw: Mapping[str, Any]) -> C:
    """An instance of ``cls`` from a mapping such as a parsed ``config.json`` (lists become tuples);
    unknown keys and values of the wrong type (a string where a number belongs included) raise
    ValueError naming the key. Missing keys take their defaults."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a {cls.__name__} must be a JSON object of key: value, got {type(raw).__name__}")
    types_ = field_types(cls)
    unknown = sorted(set(raw) - set(types_))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(types_)}")
    return cls(**{key: coerce(value, types_[key], key, parse=False) for key, value in raw.items()})


def help_texts(cls) -> dict[str, str]:
    """Help per field: ``metadata["help"]``, else its ``name: text`` entry (continued on more
    indented lines) in the ``Attributes:`` section of the class docstring."""
    names = {f.name for f in dataclasses.fields(cls)}
    table: dict[str, str] = {}
    indent, key = None, None  # indentation of the "Attributes:" header; the entry being read
    for line in (cls.__doc__ or "").expandtabs().splitlines():
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth if line.strip() == "Attributes:" else None
            continue
        if line.strip() and depth <= indent:
            break  # the section ended
        m = re.match(r"\s*(\w+)\s*:\s*(.*)", line)
        if m and m.group(1) in names:
            key, table[m.group(1)] = m.group(1), m.group(2).strip()
        elif key and line.strip():
            table[key] += " " + line.strip()
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            table[f.name] = f.metadata["help"]
    return table


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls, *, defaults: Any = None,
              only: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> None:
    """Add ``--field-name`` for each field of dataclass ``cls`` (``only`` these, less ``exclude``).

    A flag parses and checks its value like :func:`override`; a bool field gets ``--name`` /
    ``--no-name``. Flags not given stay absent from the namespace, so :func:`from_flags` keeps the
    base config's values. ``defaults`` (an instance) sets the defaults shown in the help;
    ``metadata["choices"]`` of a field restricts its values.
    """
    types_ = field_types(cls)
    names = list(types_) if only is None else list(only)
    for key in names:
        if key not in types_:
            raise _unknown(key, cls)
    helps = help_texts(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in names:
        if key in set(exclude):
            continue
        tp = types_[key]
        shown = getattr(defaults, key) if defaults is not None else fields[key].default
        text = f"{helps.get(key, '')} (default: {shown})".strip()
        flag = "--" + key.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text)
            continue

        def parse(text: str, key=key, tp=tp):
            try:
                return coerce(text, tp, key)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None

        parser.add_argument(flag, dest=key, type=parse, default=argparse.SUPPRESS, metavar=_type_name(tp),
                            choices=fields[key].metadata.get("choices"), help=text)


def from_flags(args: argparse.Namespace, base: C) -> C:
    """``base`` with the fields that were given as flags (see :func:`add_flags`) replaced."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(base) if hasattr(args, f.name)}
    return dataclasses.replace(base, **given)
