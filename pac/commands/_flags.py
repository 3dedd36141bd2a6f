"""Command-line flags generated from a frozen config dataclass, so the CLI, the launcher
and the tests share one definition of every field and its default."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any


def _field_type(annotation: Any):
    """(parser type, nargs) for an annotation like int, Optional[float], tuple[str, ...]."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _field_type(args[0])
    if origin is tuple:
        return args[0], "+"
    return annotation, None


def field_comments(cls: type) -> dict[str, str]:
    """Each field's documentation from the dataclass's source: the comment on its line,
    or else the comment lines right above it (the config modules document fields so)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and match.group(1) in names:
            inline = stripped.split("  # ", 1)[1].strip() if "  # " in stripped else ""
            text = inline or " ".join(a for a in above if not a.startswith("---"))
            comments[match.group(1)] = text
        above = []
    return comments


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _boolean(text: str) -> bool:
    """A bool flag's value; anything else is argparse's one-line usage error, which names it."""
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; allowed: true, false (or 1, 0, yes, no)")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                        choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """One flag per field, with the field's comment as help, its allowed values (from
    `choices`) listed, and its default shown."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields")
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, nargs = _field_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        text = comments.get(field.name, "").replace("%", "%%")
        help_text = f"{text} (default: {field.default})".strip()
        allowed = (choices or {}).get(field.name)
        if kind is bool:
            # A bare `--flag` turns it on; `--flag false` turns off what defaults to on.
            group.add_argument(flag, type=_boolean, nargs="?", const=True, default=None,
                               metavar="{true,false}", help=help_text)
        else:
            group.add_argument(flag, type=kind, nargs=nargs, default=None, choices=allowed, help=help_text)


def dataclass_from_flags(cls: type, args: argparse.Namespace, **fixed: Any):
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = tuple(value) if isinstance(value, list) else value
    values.update(fixed)
    return cls(**values)
