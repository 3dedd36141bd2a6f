"""Command-line flags generated from a frozen config dataclass, so the CLI, the launcher
and the tests share one definition of every field and its default. The class parses the
text itself (`parse_field`: harness.config.TrainConfig's, the one string-to-config parser)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any


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


def _field_parser(cls: type, name: str):
    """argparse's `type` for a field: the config's own parser (`cls.parse_field`), whose
    one-line ValueError argparse prints as a usage error naming the flag."""
    def parse(text: str):
        try:
            return cls.parse_field(name, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                        choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """One flag per field, with the field's comment as help, its allowed values (from
    `choices`) listed, and its default shown. Values are parsed by the config's own
    `parse_field` (the parser `--set name=value` uses too)."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields")
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        text = comments.get(field.name, "").replace("%", "%%")
        help_text = f"{text} (default: {field.default})".strip()
        allowed = (choices or {}).get(field.name)
        parse = _field_parser(cls, field.name)
        if hints[field.name] is bool:
            # A bare `--flag` turns it on; `--flag false` turns off what defaults to on.
            group.add_argument(flag, type=parse, nargs="?", const=True, default=None,
                               metavar="{true,false}", help=help_text)
        elif _holds_tuple(hints[field.name]):
            # Each word parses to a tuple (commas split it too): `--tasks a b` or `--tasks a,b`.
            group.add_argument(flag, type=parse, nargs="+", default=None, help=help_text)
        else:
            group.add_argument(flag, type=parse, default=None, choices=allowed, help=help_text)


def _holds_tuple(annotation: Any) -> bool:
    """tuple[str, ...] or Optional[tuple[str, ...]]."""
    return any(typing.get_origin(a) is tuple for a in (annotation, *typing.get_args(annotation)))


def dataclass_from_flags(cls: type, args: argparse.Namespace, **fixed: Any):
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name, None)
        if value is not None:  # a tuple field's words, each parsed to a tuple, joined
            values[field.name] = tuple(v for word in value for v in word) if isinstance(value, list) else value
    values.update(fixed)
    return cls(**values)
