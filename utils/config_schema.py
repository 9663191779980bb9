"""Typed configs for the three scripts, with the reference implementation's key names.

Every key has a default where one makes sense, so experiment configs list only what differs. Validation
checks types and ranges, names of library classes (transforms, optimisers, schedulers, models, attacks),
and the data on disk (folders, class folders, ``target_idx``). Errors carry their key path.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from backdoor_attacks import ATTACKS
from datasets.image_folder import list_class_folders
from datasets.transforms import build_transform
from models.classifier_factory import IMAGENET_MEAN, IMAGENET_STD, resolve_architecture
from models.teacher_reference import ACCEPTED, looks_like_teacher_reference
from training.optim import build_lr_scheduler, build_optimizer
from utils.errors import UserError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------------------- model
class NormalizationStats(Section):
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @field_validator("std")
    @classmethod
    def _positive(cls, value):
        if min(value) <= 0:
            raise ValueError("std values must be > 0")
        return value


class ModelSection(Section):
    architecture: str = "resnet18"  # torchvision / timm name, or a reference short name (resnext50, vitb16...)
    num_classes: int | None = Field(None, gt=1)  # default: the number of class folders in the training data
    pretrained: bool = False  # ImageNet weights through torchvision / timm (needs the weights cache offline)
    normalization: Literal["imagenet", "none"] | NormalizationStats = "imagenet"  # applied inside the model

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        resolve_architecture(value)
        return value

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.normalization == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if self.normalization == "none":
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        return self.normalization.mean, self.normalization.std


# --------------------------------------------------------------------------------------------- dataset
def _existing_folder(value: Path) -> Path:
    if not value.is_dir():
        raise ValueError(f"folder not found: {value}")
    return value


class TrainDatasetSection(Section):
    name: str = "imagefolder"  # a label for logs and W&B; any ImageFolder tree works
    root_train: Path  # ImageFolder with the (possibly poisoned) training images, or the variations
    root_test: Path  # ImageFolder with the clean test images, same class folders
    image_size: int = Field(224, ge=8)  # images are resized to image_size × image_size pixels

    _folders = field_validator("root_train", "root_test")(_existing_folder)


class VariationDatasetSection(Section):
    name: str = "imagefolder"
    root: Path  # ImageFolder with the training images to re-generate
    image_size: int = Field(224, ge=8)  # source images are resized (and poisoned) at this size first
    batch_size: int = Field(16, gt=0)  # images per diffusion call, per process
    num_workers: int = Field(4, ge=0)  # DataLoader worker processes decoding and poisoning the sources

    _folder = field_validator("root")(_existing_folder)


# -------------------------------------------------------------------------------------------- backdoor
class BackdoorOptions(Section):
    target_idx: int = Field(0, ge=0)  # index of the target class (sorted class folder order)
    poison_first: bool = True  # trigger on the resized image before the transforms (False: after them)
    poisoning_rate: float = Field(0.1, ge=0.0, le=1.0)  # share of the candidate samples that are poisoned
    random_poisoning: bool = False  # False: a fixed subset; True: each fetch poisoned with that probability
    poison_target_class: bool = False  # whether target-class images may carry the trigger too

    @model_validator(mode="after")
    def _one_attack(self):
        named = [name for name in ATTACKS if getattr(self, name) is not None]
        if len(named) != 1:
            raise ValueError(f"name exactly one attack ({', '.join(ATTACKS)}), got {len(named)}")
        return self

    @property
    def attack_name(self) -> str:
        return next(name for name in ATTACKS if getattr(self, name) is not None)

    @property
    def attack_params(self) -> BaseModel:
        return getattr(self, self.attack_name)


# One optional field per registered attack, so the registry alone decides which names are valid.
BackdoorSection = create_model(
    "BackdoorSection",
    __base__=BackdoorOptions,
    **{name: (cls.Params | None, None) for name, cls in ATTACKS.items()},
)


def _resolve_attack_size(backdoor: BackdoorOptions | None, size: int, where: str) -> None:
    """Default BlendedBackdoor.image_size to the size the trigger is applied at, and check the fit."""
    if backdoor is None:
        return
    params = backdoor.attack_params
    if hasattr(params, "image_size"):
        if params.image_size is None:
            params.image_size = size
        elif params.image_size != size:
            raise ValueError(
                f"backdoor.{backdoor.attack_name}.image_size: {params.image_size} differs from the {size}-pixel "
                f"images the trigger is applied to ({where})"
            )
    if getattr(params, "trigger_size", 0) > size:
        raise ValueError(
            f"backdoor.{backdoor.attack_name}.trigger_size: {params.trigger_size} is larger than the "
            f"{size}-pixel images it is applied to ({where})"
        )


# -------------------------------------------------------------------------------------------- training
def _valid_device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"'{value}' is not a device; use auto, cpu, cuda or cuda:N")
    return value


class TrainingSection(Section):
    num_epochs: int = Field(100, gt=0)
    batch_size: int = Field(128, gt=0)  # global batch: divided across processes under torchrun
    dataloader_num_workers: int = Field(8, ge=0)  # decoding processes per training process
    save_path: Path = Path("results")  # run directories are created inside
    eval_every: int = Field(0, ge=0)  # epochs between test-set evaluations for curves; 0: only at the end
    device: str = "auto"  # auto (CUDA if available), cpu, cuda, cuda:N
    mixed_precision: Literal["bf16", "fp16", "none"] = "bf16"  # autocast dtype on CUDA; CPU runs in fp32
    channels_last: bool = True  # NHWC memory format on CUDA (faster convolutions with tensor cores)
    compile: bool = False  # torch.compile the model (CUDA; slower start, faster epochs)
    aux_loss_weight: float = Field(1.0, ge=0.0)  # Inception-v3 auxiliary logits weight (reference: 1.0)

    _device = field_validator("device")(_valid_device)


class WandbSection(Section):
    enable_logging: bool = False  # mirror the run to Weights & Biases (offline if it cannot be reached)
    args: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of wandb.init (project, name...)

    @field_validator("args")
    @classmethod
    def _init_kwargs(cls, value: dict) -> dict:
        if value:
            import wandb  # slow import: only when there is something to check

            allowed = set(inspect.signature(wandb.init).parameters)
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ValueError(f"unknown wandb.init argument(s) {', '.join(unknown)}; see wandb.init's docs")
        return value


class DistillationSection(Section):
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the distillation term (1 − alpha: hard labels)
    temperature: float = Field(10.0, gt=0.0)  # softmax temperature of teacher and student
    teacher_model: str  # run directory, checkpoint file, W&B run path or W&B artifact reference
    ce_on_scaled_logits: bool = False  # True: the reference's CE on log_softmax(student / T)

    @field_validator("teacher_model")
    @classmethod
    def _teacher_reference(cls, value: str) -> str:
        value = value.strip()
        if not looks_like_teacher_reference(value):
            raise ValueError(f"'{value}' is not an existing file or folder nor a W&B reference; accepted: {ACCEPTED}")
        return value


def _check_class_kwargs(value: dict | None, builder) -> dict | None:
    """Build the ``{ClassName: kwargs}`` object once with dummy inputs so bad names or kwargs fail now."""
    if value is None:
        return None
    try:
        builder(value)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{err}") from err
    return value


def _dummy_parameters() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(1))]


class TrainConfig(Section):
    """Shared by ``train_teacher.py`` and ``train_student.py``."""

    seed: int = 42  # seeds Python, NumPy, torch and the poison plan
    model: ModelSection = Field(default_factory=ModelSection)
    dataset: TrainDatasetSection
    backdoor: BackdoorSection | None = None  # the attack: poisons the training data and makes the ASR test set
    transformations: dict[str, dict[str, Any] | None] = Field(default_factory=dict)  # torchvision.transforms
    optimizer: dict[str, dict[str, Any] | None] = Field(default_factory=lambda: {"Adam": {"lr": 0.001}})
    lr_scheduler: dict[str, dict[str, Any] | None] | None = None  # torch.optim.lr_scheduler, stepped per epoch
    training: TrainingSection = Field(default_factory=TrainingSection)
    wandb: WandbSection = Field(default_factory=WandbSection)
    rtpt: dict[str, Any] | None = None  # accepted for reference configs, ignored (with a warning)

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value):
        return _check_class_kwargs(value, lambda spec: build_optimizer(spec, _dummy_parameters()))

    @field_validator("lr_scheduler")
    @classmethod
    def _scheduler(cls, value):
        dummy = torch.optim.SGD(_dummy_parameters(), lr=0.1)
        return _check_class_kwargs(value, lambda spec: build_lr_scheduler(spec, dummy))

    @model_validator(mode="after")
    def _check_data_and_sizes(self):
        size = self.dataset.image_size
        try:
            transform = build_transform(self.transformations)
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"transformations: {err}") from err
        out_size = _transformed_size(transform, size)
        train_classes = _class_folders(self.dataset.root_train, "dataset.root_train")
        test_classes = _class_folders(self.dataset.root_test, "dataset.root_test")
        if train_classes != test_classes:
            missing = sorted(set(test_classes) - set(train_classes))
            extra = sorted(set(train_classes) - set(test_classes))
            raise ValueError(
                f"dataset.root_train and dataset.root_test must have the same class folders "
                f"(only in root_test: {missing or 'none'}; only in root_train: {extra or 'none'})"
            )
        if self.model.num_classes is None:
            self.model.num_classes = len(train_classes)
        elif self.model.num_classes != len(train_classes):
            raise ValueError(
                f"model.num_classes: {self.model.num_classes}, but dataset.root_train has "
                f"{len(train_classes)} class folders"
            )
        if self.backdoor is not None:
            if self.backdoor.target_idx >= len(train_classes):
                raise ValueError(
                    f"backdoor.target_idx: {self.backdoor.target_idx} is outside the {len(train_classes)} "
                    f"classes found in dataset.root_train (0..{len(train_classes) - 1})"
                )
            if not self.backdoor.poison_first:
                _resolve_attack_size(self.backdoor, out_size, "output of transformations, poison_first: false")
            _resolve_attack_size(self.backdoor, size, "dataset.image_size")  # test images are not transformed
        return self


def _class_folders(root: Path, key: str) -> list[str]:
    try:
        classes = list_class_folders(root)
    except UserError as err:
        raise ValueError(f"{key}: {err}") from err
    return classes


def _transformed_size(transform, size: int) -> int:
    """Run the training transforms on a dummy image; they must keep a square 3×H×W float tensor."""
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


class TeacherConfig(TrainConfig):
    """``train_teacher.py``: train on the (poisoned) training folder."""


class StudentConfig(TrainConfig):
    """``train_student.py``: distil a teacher on the variations folder (``dataset.root_train``)."""

    distillation: DistillationSection

    @model_validator(mode="after")
    def _nothing_poisoned(self):
        if self.backdoor is not None and self.backdoor.poisoning_rate != 0:
            raise ValueError(
                f"backdoor.poisoning_rate: {self.backdoor.poisoning_rate}, but a student's backdoor block only "
                "builds the triggered test set; set it to 0.0 (the variations are the training data)"
            )
        return self


# ------------------------------------------------------------------------------------------ variations
class ClassicalBackendSection(Section):
    """Parameters of the ``classical`` baseline backend (image processing, no generative model)."""

    downscale: float = Field(0.5, gt=0.0, le=1.0)  # shrink to this fraction of the side, then enlarge back
    blur_sigma: float = Field(1.0, ge=0.0)  # Gaussian blur, pixels at output size
    jpeg_quality: int = Field(60, ge=1, le=100)  # JPEG re-encoding quality
    color_jitter: float = Field(0.05, ge=0.0, le=0.5)  # max relative change of brightness/contrast/saturation
    noise_std: float = Field(0.02, ge=0.0, le=0.5)  # additive Gaussian noise, in [0, 1] units


class DiffusionSection(Section):
    backend: Literal["versatile_diffusion", "classical"] = "versatile_diffusion"
    model: str = "shi-labs/versatile-diffusion"  # HuggingFace hub id or a local folder (save_pretrained layout)
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: float16 on CUDA, float32 on CPU
    scheduler: str | None = None  # diffusers scheduler class, e.g. DPMSolverMultistepScheduler; None: model's own
    num_variations: int = Field(1, gt=0)  # variations per source image, each written as its own file
    inference_steps: int = Field(50, gt=0)  # denoising steps
    guidance_scale: float = Field(7.5, ge=0.0)  # classifier-free guidance against a blank image; ≤ 1: off
    color_transfer: Literal["none", "mean_std", "lab"] = "mean_std"  # true = mean_std, false = none
    height: int = Field(512, ge=8, multiple_of=8)  # generated image height, pixels
    width: int = Field(512, ge=8, multiple_of=8)  # generated image width, pixels
    compile: bool = False  # torch.compile the UNet (CUDA)
    # Images per model call, padded to exactly this many so an image's bytes never depend on how the work
    # was split (workers, processes, shards, resumption). Default: dataset.batch_size on CUDA; 1 on CPU,
    # where batching gains little and single images make the bytes independent of the batch size too.
    model_batch_size: int | None = Field(None, gt=0)
    classical: ClassicalBackendSection = Field(default_factory=ClassicalBackendSection)

    @field_validator("color_transfer", mode="before")
    @classmethod
    def _bool_color_transfer(cls, value):
        if isinstance(value, bool):
            return "mean_std" if value else "none"
        return value

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None:
            import diffusers
            from diffusers.schedulers.scheduling_utils import SchedulerMixin

            from utils.class_registry import find_class

            find_class(diffusers, value, SchedulerMixin, "diffusers scheduler")
        return value


class VariationConfig(Section):
    """``generate_variations.py``."""

    seed: int = 42  # same seed and backdoor block as the teacher → same poisoned samples
    output_folder: Path  # becomes an ImageFolder: <output_folder>/<class>/<file>.png
    dataset: VariationDatasetSection
    backdoor: BackdoorSection | None = None  # None or poisoning_rate 0: the folder is used as it is
    diffusion: DiffusionSection = Field(default_factory=DiffusionSection)
    device: str = "auto"  # auto, cpu, cuda, cuda:N (under torchrun: cuda:LOCAL_RANK)
    save_source_copies: bool = False  # also write the (poisoned) inputs to <output_folder>_sources/
    wandb: WandbSection = Field(default_factory=WandbSection)
    rtpt: dict[str, Any] | None = None  # accepted for reference configs, ignored (with a warning)

    _device = field_validator("device")(_valid_device)

    @model_validator(mode="after")
    def _check_data(self):
        classes = _class_folders(self.dataset.root, "dataset.root")
        if self.backdoor is not None:
            if self.backdoor.target_idx >= len(classes):
                raise ValueError(
                    f"backdoor.target_idx: {self.backdoor.target_idx} is outside the {len(classes)} classes "
                    f"found in dataset.root (0..{len(classes) - 1})"
                )
            _resolve_attack_size(self.backdoor, self.dataset.image_size, "dataset.image_size")
        return self


__all__ = [
    "BackdoorSection",
    "StudentConfig",
    "TeacherConfig",
    "TrainConfig",
    "VariationConfig",
]
