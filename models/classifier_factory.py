"""``build_classifier``: this project's CIFAR ResNets, any torchvision classification model or timm model, with a
head for ``num_classes``.

Names resolve in this order: an explicit ``cifar/<name>``, ``timm/<name>`` or ``torchvision/<name>``; a CIFAR
ResNet of ``models.cifar_resnets`` (``resnet20``, ``preact_resnet18``...; case, ``-`` and ``_`` ignored, so
BackdoorBench's ``preactresnet18`` works); a torchvision classification model; a timm model; the reference
implementation's short names (``resnext50``, ``inceptionv3``, ``vitb16``...; case, ``-`` and ``_`` ignored as
there). The CIFAR names come first so that a library adding the same name later cannot change what a config
builds.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import timm
import torch
import torchvision.models as tv_models
from torch import nn

from models.checkpoint import read_checkpoint
from models.cifar_resnets import CIFAR_MODELS
from utils.errors import UserError, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The reference implementation's names → (library, model name).
REFERENCE_ALIASES: dict[str, tuple[str, str]] = {
    **{f"resnet{d}": ("torchvision", f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "resnext50": ("torchvision", "resnext50_32x4d"),
    "resnext101": ("torchvision", "resnext101_32x8d"),
    **{f"densenet{d}": ("torchvision", f"densenet{d}") for d in (121, 161, 169, 201)},
    "inceptionv3": ("torchvision", "inception_v3"),
    "resnest50": ("timm", "resnest50d"),  # the reference used torch.hub ResNeSt; timm hosts the same family
    "resnest101": ("timm", "resnest101e"),
    "resnest200": ("timm", "resnest200e"),
    "resnest269": ("timm", "resnest269e"),
    "vitb16": ("timm", "vit_base_patch16_224"),
    "vitb32": ("timm", "vit_base_patch32_224"),
    "vitl16": ("timm", "vit_large_patch16_224"),
    "vitl32": ("timm", "vit_large_patch32_224"),
    "vith14": ("timm", "vit_huge_patch14_224"),
}

# torchvision models whose ImageNet weights expect their own input shift (``transform_input``): on when the
# model starts from those weights, and then for good (a checkpoint records it as ``pretrained``).
TRANSFORM_INPUT_MODELS = ("inception_v3", "googlenet")

# Constructor arguments some torchvision models need beyond num_classes.
TORCHVISION_EXTRA_KWARGS: dict[str, dict] = {
    "inception_v3": {"aux_logits": True, "init_weights": True},  # aux logits enter the training loss
    "googlenet": {"aux_logits": False, "init_weights": True},
}


NO_WEIGHTS = "there are no pretrained weights for '{name}' (it trains from scratch); set it to false"
LIBRARIES = ("cifar", "torchvision", "timm")  # "cifar": models.cifar_resnets, written by this project


@dataclass(frozen=True)
class ModelSpec:
    library: str  # one of LIBRARIES
    name: str


def _short(name: str) -> str:
    """A name without case, ``-``, ``_`` or spaces: how short names and CIFAR names are matched."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


CIFAR_SHORT_NAMES = {_short(name): name for name in CIFAR_MODELS}


def torchvision_classifiers() -> list[str]:
    return tv_models.list_models(module=tv_models)


def library_has(library: str, name: str) -> bool:
    """Whether ``library`` (cifar, torchvision or timm) can build a classification model called ``name``."""
    if library == "cifar":
        return name in CIFAR_MODELS
    return timm.is_model(name) if library == "timm" else name in torchvision_classifiers()


def resolve_architecture(architecture: str) -> ModelSpec:
    """Map a config's ``model.architecture`` to a library and model name; ``ValueError`` if unknown."""
    text = architecture.strip()
    for prefix in (f"{library}{separator}" for library in LIBRARIES for separator in "/:"):
        if text.startswith(prefix):
            library, name = prefix[:-1], text[len(prefix) :]
            if not library_has(library, name):
                raise ValueError(f"'{name}' is not a {library} classification model")
            return ModelSpec(library, name)
    short = _short(text)
    if short in CIFAR_SHORT_NAMES:
        return ModelSpec("cifar", CIFAR_SHORT_NAMES[short])
    if text in torchvision_classifiers():
        return ModelSpec("torchvision", text)
    if timm.is_model(text):
        return ModelSpec("timm", text)
    if short in REFERENCE_ALIASES:
        library, name = REFERENCE_ALIASES[short]
        if not library_has(library, name):  # a stale alias must fail here, not later in the model factory
            raise ValueError(f"the short name '{architecture}' points to {library} '{name}', which {library} lacks")
        return ModelSpec(library, name)
    candidates = sorted({*CIFAR_MODELS, *REFERENCE_ALIASES, *torchvision_classifiers(), *timm.list_models()})
    close = difflib.get_close_matches(text, candidates, n=4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(
        f"unknown architecture '{architecture}'; {hint}use a CIFAR ResNet for 32-px images "
        f"({', '.join(CIFAR_MODELS)}), a torchvision classification model "
        f"({', '.join(torchvision_classifiers()[:6])}, ...), any timm model (timm.list_models()), "
        f"or a short name: {', '.join(REFERENCE_ALIASES)}"
    )


class ImageClassifier(nn.Module):
    """A backbone that takes images in [0, 1] and normalises them itself.

    Keeping the normalisation inside the model lets a teacher and a student with different input
    statistics see the very same batch, and makes a checkpoint usable without its training config.
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor):
        return self.backbone((images - self.mean.to(images.dtype)) / self.std.to(images.dtype))


def _load_torchvision_weights(model: nn.Module, name: str) -> None:
    """Load ImageNet weights into ``model`` except the tensors whose shape differs (the new head)."""
    weights = tv_models.get_model_weights(name).DEFAULT
    state = weights.get_state_dict(progress=True)
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(compatible, strict=False)


def _build_backbone(spec: ModelSpec, num_classes: int, pretrained: bool, transform_input: bool) -> nn.Module:
    if spec.library == "cifar":
        return CIFAR_MODELS[spec.name](num_classes)
    if spec.library == "timm":
        return timm.create_model(spec.name, pretrained=pretrained, num_classes=num_classes)
    kwargs = dict(TORCHVISION_EXTRA_KWARGS.get(spec.name, {}))
    if spec.name in TRANSFORM_INPUT_MODELS:
        kwargs["transform_input"] = transform_input
    model = tv_models.get_model(spec.name, weights=None, num_classes=num_classes, **kwargs)
    if pretrained:
        _load_torchvision_weights(model, spec.name)
    return model


def build_classifier(
    architecture: str,
    num_classes: int,
    pretrained: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    transform_input: bool | None = None,
) -> ImageClassifier:
    """A classifier for ``num_classes`` classes taking [0, 1] images; pretrained weights via the library.

    ``transform_input`` (Inception-v3, GoogLeNet) defaults to ``pretrained``; a rebuilt checkpoint passes
    what the trained model used.
    """
    try:
        spec = resolve_architecture(architecture)
    except ValueError as err:
        raise UserError(f"model.architecture: {err}") from err
    if pretrained and spec.library == "cifar":
        raise UserError(f"model.pretrained: {NO_WEIGHTS.format(name=spec.name)}")
    shift = pretrained if transform_input is None else transform_input
    try:
        backbone = _build_backbone(spec, num_classes, pretrained, shift)
    except Exception as err:
        if not pretrained:
            raise
        raise UserError(
            f"model.pretrained: cannot load pretrained weights for {spec.library} '{spec.name}' "
            f"({type(err).__name__}: {first_line(err)}); offline, put them in the torch hub cache ($TORCH_HOME) "
            "or HuggingFace cache ($HF_HOME) first, or set model.pretrained: false"
        ) from err
    return ImageClassifier(backbone, mean, std)


def split_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, aux_logits or None) for plain models and Inception's training-mode output."""
    if isinstance(outputs, torch.Tensor):
        return outputs, None
    if hasattr(outputs, "logits"):
        return outputs.logits, getattr(outputs, "aux_logits", None)
    raise TypeError(f"unexpected model output of type {type(outputs).__name__}")


@dataclass(frozen=True, kw_only=True)
class ClassifierRecord:
    """What a checkpoint needs to rebuild and use the model without its training config (keywords only: the
    two normalisation triples and the sizes are too easily swapped by position)."""

    architecture: str  # model.architecture as the config gives it; the resolved library and name are added
    num_classes: int
    class_names: list[str]  # index → class folder name
    image_size: int  # the side the model was trained at
    mean: tuple[float, ...]  # the normalisation the model applies to its [0, 1] input
    std: tuple[float, ...]
    pretrained: bool = False  # started from ImageNet weights: fixes transform_input for Inception/GoogLeNet


def classifier_metadata(record: ClassifierRecord, **extra) -> dict:
    """The checkpoint header entry for ``record`` (see ``models.checkpoint.CheckpointMetadata``), with ``extra``."""
    spec = resolve_architecture(record.architecture)
    return {
        "architecture": record.architecture,
        "library": spec.library,
        "model_name": spec.name,
        "num_classes": record.num_classes,
        "class_names": list(record.class_names),
        "image_size": record.image_size,
        "mean": list(record.mean),
        "std": list(record.std),
        "pretrained": record.pretrained,
        **extra,
    }


def classifier_from_checkpoint(path, device: str | torch.device = "cpu") -> tuple[ImageClassifier, dict]:
    """Rebuild a classifier from a checkpoint written by :func:`models.checkpoint.save_checkpoint`."""
    state, metadata = read_checkpoint(path)
    architecture = f"{metadata['library']}/{metadata['model_name']}"
    try:
        resolve_architecture(architecture)  # the file's claim, not the user's config key, is at fault here
    except ValueError as err:
        raise UserError(f"{path}: not a usable checkpoint: {err}") from err
    model = build_classifier(
        architecture,
        metadata["num_classes"],
        pretrained=False,
        mean=tuple(metadata["mean"]),
        std=tuple(metadata["std"]),
        transform_input=metadata.get("pretrained", False),
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(f"{path}: weights do not fit {metadata['architecture']}: {first_line(err)}") from err
    return model.to(device).eval(), metadata
