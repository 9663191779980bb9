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


def transformed_size(spec: dict | None, size: int) -> int:
    """The side of what the transforms make of a ``size``-pixel image; they must keep a square 3×H×W tensor."""
    transform = build_transform(spec)
    if transform is None:
        return size
    try:
        out = transform(torch.rand(3, size, size))
    except Exception as err:
        raise ValueError(
            f"transformations: they must accept a 3×{size}×{size} float tensor in [0, 1] (they run after "
            f"ToTensor, as in the reference): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != 3 or out.shape[1] != out.shape[2]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"transformations: must return one square 3×H×W tensor, got {shape}")
    return int(out.shape[1])


# Transforms whose result does not depend on whether pixels are floats in [0, 1] or uint8 in [0, 255]
# (geometry, and colour operations defined relative to the image). Others (Normalize, RandomSolarize's
# threshold, RandomErasing's value, AutoAugment's posterize...) keep the float path of the reference.
DTYPE_AGNOSTIC = frozenset(
    (
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomCrop",
        "CenterCrop",
        "RandomResizedCrop",
        "Resize",
        "Pad",
        "RandomRotation",
        "RandomAffine",
        "RandomPerspective",
        "ColorJitter",
        "Grayscale",
        "RandomGrayscale",
        "GaussianBlur",
        "RandomInvert",
        "RandomAdjustSharpness",
        "RandomAutocontrast",
        "ElasticTransform",
    )
)


def runs_on_uint8(spec: dict | None) -> bool:
    """Whether the configured transforms can run on uint8 images with the same meaning.

    Then images travel from the loader workers as uint8 (4× fewer bytes through shared memory and
    collation) and become floats on the training device.
    """
    for name, kwargs in (spec or {}).items():
        if name not in DTYPE_AGNOSTIC:
            return False
        if any(key in ("fill", "value") and value not in (0, None) for key, value in (kwargs or {}).items()):
            return False
    return True
