"""Error messages of study files: every problem names the file, the key path (as the user wrote
it, without pydantic's union tags) and what was expected, with the closest valid key for a typo."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError


class StudyFileError(ValueError):
    """A study file is invalid; the message names the file, the key path and what was expected."""


def where_in_sweep(point: dict | None) -> str:
    """`` (sweep point {...})`` after a file name, when the problem is one sweep point's."""
    return f" (sweep point {point})" if point else ""


def validate(cls, data, path: Path, point: dict | None = None, prefix: tuple = ()):
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise StudyFileError(describe(exc, cls, path, point, prefix)) from None


def describe(exc: ValidationError, cls, path: Path, point: dict | None, prefix: tuple) -> str:
    lines = []
    for err in exc.errors():
        loc, owner = _display_loc(cls, err["loc"])
        key = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = list(owner.model_fields) if owner else []
            msg = f"unknown key{suggest(str(loc[-1]), valid)}"
            if valid:
                msg += f"; valid keys here: {', '.join(valid)}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = f"{err['msg']} (got {err['input']!r})"
        lines.append(f"key '{key}': {msg}")
    where = where_in_sweep(point)
    if len(lines) == 1:
        return f"{path}{where}: {lines[0]}"
    return f"{path}{where}: {len(lines)} problems:\n  " + "\n  ".join(lines)


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _display_loc(cls, loc: tuple) -> tuple[tuple, type | None]:
    """Drop pydantic's union-tag entries from ``loc``; return it and the model owning its last key."""
    shown: list = []
    current: Any = cls
    owner = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        current = _strip_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            shown.append(part)
            fld = current.model_fields.get(part)
            current = fld.annotation if fld else None
        elif typing.get_origin(current) in (Union, types.UnionType):
            members = {
                tag: m
                for m in typing.get_args(current)
                if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields
                for tag in typing.get_args(m.model_fields["type"].annotation)
            }
            if part in members:  # a discriminator tag, not a key the user wrote
                current = members[part]
                continue
            shown.append(part)
            current = None
        elif typing.get_origin(current) is dict:
            shown.append(part)
            current = typing.get_args(current)[1]
            owner = None
        else:
            shown.append(part)
            owner = None
            current = None
    return tuple(shown), owner


def _strip_optional(annotation):
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation
