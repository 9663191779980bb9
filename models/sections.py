"""Config section ``model``: which classifier, for how many classes, and how its input is normalised."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from models.classifier_factory import IMAGENET_MEAN, IMAGENET_STD, NO_WEIGHTS, resolve_architecture
from utils.section import Section


class NormalizationStats(Section):
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @field_validator("std")
    @classmethod
    def _positive(cls, value):
        if min(value) <= 0:
            raise ValueError("std values must be > 0")
        return value


# A name, or explicit statistics; the discriminator makes errors speak of the form that was given.
Normalization = Annotated[
    Union[Annotated[Literal["imagenet", "none"], Tag("name")], Annotated[NormalizationStats, Tag("stats")]],  # noqa: UP007
    Discriminator(lambda value: "name" if isinstance(value, str) else "stats"),
]


class ModelSection(Section):
    architecture: str = "resnet18"  # CIFAR ResNet (resnet20, preact_resnet18...), torchvision / timm name, or a
    # reference short name (resnext50, vitb16...)
    num_classes: int | None = Field(None, gt=1)  # default: the number of class folders in the training data
    pretrained: bool = False  # ImageNet weights through torchvision / timm (needs the weights cache offline)
    normalization: Normalization = "imagenet"  # imagenet, none or {mean, std}; applied inside the model

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        resolve_architecture(value)
        return value

    @model_validator(mode="after")
    def _weights_exist(self):
        if self.pretrained and resolve_architecture(self.architecture).library == "cifar":
            raise ValueError(f"pretrained: {NO_WEIGHTS.format(name=self.architecture)}")
        return self

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.normalization == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if self.normalization == "none":
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        return self.normalization.mean, self.normalization.std
