"""Variation backends: the registry ``diffusion.backend`` name → backend class (with its config ``Section``).

Adding a backend: a module here with a ``Section`` (its ``diffusion`` keys, a ``backend`` literal) and a class
with ``load(section, device, batch_size)`` and ``generate(SourceBatch)`` (a diffusers pipeline: subclass
``DiffusersBackend``, which loads it); then one line in ``BACKENDS``.
"""

from __future__ import annotations

from typing import Annotated, Union

import torch
from pydantic import Discriminator, Tag

from variations.backends.base import GenerationSection, SourceBatch, VariationBackend
from variations.backends.classical import ClassicalBackend
from variations.backends.ddpm_sdedit import DDPMSdeditBackend
from variations.backends.kandinsky22 import Kandinsky22Backend
from variations.backends.sd_image_variations import SDImageVariationsBackend
from variations.backends.sd_img2img import SDImg2ImgBackend
from variations.backends.stable_unclip import StableUnCLIPBackend
from variations.backends.versatile_diffusion import VersatileDiffusionBackend

DEFAULT_BACKEND = "versatile_diffusion"

BACKENDS: dict[str, type] = {
    "versatile_diffusion": VersatileDiffusionBackend,
    "classical": ClassicalBackend,
    "sd_image_variations": SDImageVariationsBackend,
    "sd_img2img": SDImg2ImgBackend,
    "stable_unclip": StableUnCLIPBackend,
    "kandinsky22": Kandinsky22Backend,
    "ddpm_sdedit": DDPMSdeditBackend,
}


def backend(value) -> str | None:
    """The backend a ``diffusion`` block names (the default when it names none)."""
    if isinstance(value, dict):
        return value.get("backend", DEFAULT_BACKEND)
    return getattr(value, "backend", None)


# ``diffusion``: the section of the backend it names, so each backend validates (and lists) its own keys.
DiffusionSection = Annotated[
    Union[tuple(Annotated[cls.Section, Tag(name)] for name, cls in BACKENDS.items())],  # noqa: UP007
    Discriminator(backend),
]


def build_backend(settings: GenerationSection, device: torch.device, batch_size: int) -> VariationBackend:
    """Load the backend ``settings.backend`` names, once per process."""
    return BACKENDS[settings.backend].load(settings, device, batch_size)


def diffusion_section(**values) -> GenerationSection:
    """A validated ``diffusion`` section for the backend ``values`` name (for benchmarks and scripts)."""
    return BACKENDS[values.get("backend", DEFAULT_BACKEND)].Section.model_validate(values)


__all__ = ["BACKENDS", "DiffusionSection", "SourceBatch", "VariationBackend", "build_backend", "diffusion_section"]
