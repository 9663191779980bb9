"""Training transforms from the config's ``transformations: {ClassName: {kwargs}}`` block."""

from __future__ import annotations

import enum
from collections.abc import Callable

import torch
import torchvision.transforms as T

from utils.class_registry import find_class

NOT_TRANSFORMS = (enum.Enum, T.Compose)  # option enums, and Compose (the list itself is the composition)


def build_transform(spec: dict | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Compose the named ``torchvision.transforms`` classes in order; ``None`` when there are none.

    They run on 3×H×W float tensors in [0, 1], after the resize (and after the trigger when
    ``poison_first``), as in the reference implementation.
    """
    if not spec:
        return None
    steps = []
    for name, kwargs in spec.items():
        cls = find_class(T, name, object, "transformation (torchvision.transforms class)", exclude=NOT_TRANSFORMS)
        steps.append(cls(**(kwargs or {})))
    return T.Compose(steps)
