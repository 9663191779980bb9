"""Look up a class by the name a config gives it, inside a library namespace (torch.optim, torchvision...)."""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable
from types import ModuleType


def public_classes(namespace: ModuleType, base: type, exclude: tuple[type, ...] = ()) -> dict[str, type]:
    """Public subclasses of ``base`` exposed by ``namespace`` (``base`` and ``exclude`` subclasses left out)."""
    found = {}
    for name in dir(namespace):
        obj = getattr(namespace, name)
        if (
            not name.startswith("_")
            and inspect.isclass(obj)
            and issubclass(obj, base)
            and obj is not base
            and not issubclass(obj, exclude)
        ):
            found[name] = obj
    return found


def find_class(namespace: ModuleType, name: str, base: type, what: str, exclude: tuple[type, ...] = ()) -> type:
    """The class called ``name``; a ``ValueError`` naming close matches and all valid names otherwise."""
    classes = public_classes(namespace, base, exclude)
    if name in classes:
        return classes[name]
    close = difflib.get_close_matches(name, classes, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown {what} '{name}'{hint}; valid: {', '.join(sorted(classes))}")


def single_entry(section: dict, key: str) -> tuple[str, dict]:
    """A ``{ClassName: {kwargs}}`` block with exactly one entry, as (name, kwargs)."""
    if len(section) != 1:
        raise ValueError(f"{key} must name exactly one class, got {len(section)}: {', '.join(section) or 'none'}")
    ((name, kwargs),) = section.items()
    return name, dict(kwargs or {})


NUMBER_TYPES = re.compile(r"\b(float|int|Tensor)\b")
TEXT_TYPES = re.compile(r"\b(str|Literal|Any)\b")


def check_number_arguments(cls: type, kwargs: dict, name: str) -> None:
    """A ``ValueError`` naming the argument when text is given where ``cls`` takes a number (``lr: abc``).

    Libraries compare such a value with a number first and fail with ``'<=' not supported between instances
    of 'float' and 'str'``, which names neither the argument nor the class. Decided from the parameter's
    annotation: a number type and no text type in it.
    """
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # classes without a signature: the library's own message stands
        return
    for key, value in kwargs.items():
        parameter = parameters.get(key)
        if parameter is None or not isinstance(value, str):
            continue
        annotation = parameter.annotation
        text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        if NUMBER_TYPES.search(text) and not TEXT_TYPES.search(text):
            raise ValueError(f"{name}.{key}: {value!r} is not a number (expected {text})")


def check_finite(spec: dict, where: str = "") -> None:
    """Every number in a ``{ClassName: {kwargs}}`` block (nested lists and mappings too) is finite.

    Libraries check ranges with comparisons that NaN passes (``nan < 0`` is false), so a NaN learning rate or
    probability would be accepted and fail, or silently do nothing, later.
    """
    items = spec.items() if isinstance(spec, dict) else enumerate(spec) if isinstance(spec, list | tuple) else ()
    for key, value in items:
        path = f"{where}.{key}" if where else str(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path}: {value} is not a finite number")
        check_finite(value, path)


def checked_by_building(build: Callable[[dict], object]) -> Callable[[dict | None], dict | None]:
    """A validator for a ``{ClassName: kwargs}`` block: its numbers finite, and ``build`` run on it once.

    Building with stand-in inputs is the one check that knows every library's names and keyword arguments, so
    a bad block fails at validation instead of at the first step. Whatever the library raises becomes a
    ``ValueError``, the type pydantic reports as a one-line error on the key.
    """

    def check(spec: dict | None) -> dict | None:
        if spec is not None:
            try:
                check_finite(spec)
                build(spec)
            except (TypeError, ValueError, KeyError) as err:
                raise ValueError(f"{err}") from err
        return spec

    return check
