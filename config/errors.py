"""One line for a validation error: the key path, what is wrong, and what is allowed."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def _members(annotation: Any) -> list[tuple[str | None, Any]]:
    """(tag, type) of the members of an annotation: ``X | None``, ``Annotated[...]`` and tagged unions."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        tag = next((getattr(e, "tag", None) for e in extras if hasattr(e, "tag")), None)
        return [(tag or t, m) for t, m in _members(base)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [pair for arg in typing.get_args(annotation) for pair in _members(arg)]
    return [(None, annotation)]


def section_models(annotation: Any) -> list[tuple[str | None, type[BaseModel]]]:
    return [(t, m) for t, m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _walk(schema: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], list[str]]:
    """The section a location points into, and the location's key path without union tags."""
    model, path = schema, []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        path.append(str(part))
        field = model.model_fields.get(part) if isinstance(part, str) else None
        members = dict(_members(field.annotation)) if field else {}
        if parts and parts[0] in members:  # a tagged union names its member in the location: skip the tag
            member = members[parts.pop(0)]
            if isinstance(member, type) and issubclass(member, BaseModel):
                model = member
                continue
        models = section_models(field.annotation) if field else []
        if not models:
            path += [str(p) for p in parts]
            break
        model = models[0][1]
    return model, path


def describe_validation_errors(schema: type[BaseModel], err: ValidationError) -> list[str]:
    """One line per error: key path, what is wrong, what was given (every error at once, in the schema's order)."""
    return [_describe(schema, error) for error in err.errors()]


def _describe(schema: type[BaseModel], error: dict) -> str:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    _, keys = _walk(schema, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, _ = _walk(schema, loc[:-1])
        message = f"unknown key; allowed here: {', '.join(parent.model_fields)}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_invalid":  # e.g. diffusion.backend naming no registered backend
        context = error.get("ctx", {})
        keys.append(context.get("discriminator", "").removesuffix("()"))
        message = f"unknown name '{context.get('tag')}'; valid: {context.get('expected_tags')}"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if kind not in ("value_error", "assertion_error") and "input" in error:
            message += f" (got {repr(error['input'])[:80]})"
    path = ".".join(key for key in keys if key)
    return f"{path}: {message}" if path else message
