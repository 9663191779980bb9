"""Config sections of the data: ``dataset`` (training, test and variation sources), ``backdoor`` and
``transformations``. Whether the folders exist is checked against the disk later (``config.data_checks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator, model_validator

from backdoor_attacks import ATTACKS
from backdoor_attacks.blended_backdoor import BlendedBackdoorParams
from backdoor_attacks.bpp_backdoor import BppBackdoorParams
from backdoor_attacks.patch_backdoor import PatchBackdoorParams
from backdoor_attacks.sig_backdoor import SIGBackdoorParams
from backdoor_attacks.wanet_backdoor import WaNetBackdoorParams
from datasets.poison_plan import Targeting, TargetType
from datasets.transforms import build_transform
from utils.class_registry import checked_by_building
from utils.limits import MAX_IMAGE_SIZE
from utils.section import Section


class TrainDatasetSection(Section):
    name: str = "imagefolder"  # a label for logs and W&B; any ImageFolder tree works
    root_train: Path  # ImageFolder with the (possibly poisoned) training images, or the variations
    root_test: Path  # ImageFolder with the clean test images, same class folders
    image_size: int = Field(224, ge=8, le=MAX_IMAGE_SIZE)  # images are resized to image_size × image_size pixels


class VariationDatasetSection(Section):
    name: str = "imagefolder"
    root: Path  # ImageFolder with the training images to re-generate
    image_size: int = Field(224, ge=8, le=MAX_IMAGE_SIZE)  # sources are resized (and poisoned) to this many pixels
    batch_size: int = Field(16, gt=0)  # images per diffusion call, per process
    num_workers: int = Field(4, ge=0)  # DataLoader worker processes decoding and poisoning the sources


class BackdoorSection(Section):
    """``backdoor:``: who is poisoned and how, and exactly one attack block (its key is the attack's name)."""

    target_idx: int = Field(0, ge=0)  # index of the target class (sorted class folder order)
    poison_first: bool = True  # trigger on the resized image before the transforms (False: after them)
    poisoning_rate: float = Field(0.1, ge=0.0, le=1.0)  # share of the candidate samples that are poisoned
    random_poisoning: bool = False  # False: a fixed subset; True: each fetch poisoned with that probability
    poison_target_class: bool = False  # whether target-class images may carry the trigger too
    target_type: TargetType = "all_to_one"  # all_to_one: to target_idx; all_to_all: class y to (y + 1) mod n
    clean_label: bool = False  # poison target-class images only, keeping every label (all_to_one only)
    # the attack: one of these blocks, named as in the registry backdoor_attacks.ATTACKS (checked below)
    PatchBackdoor: PatchBackdoorParams | None = None  # BadNets: a square patch (a pattern or an image file)
    BlendedBackdoor: BlendedBackdoorParams | None = None  # Blended: an image mixed into the whole picture
    SIGBackdoor: SIGBackdoorParams | None = None  # SIG: a sine wave across the columns, added to the image
    WaNetBackdoor: WaNetBackdoorParams | None = None  # WaNet: a smooth warp of the pixel grid
    BppBackdoor: BppBackdoorParams | None = None  # BppAttack: colour-depth reduction, optionally dithered

    @field_validator("clean_label")
    @classmethod
    def _clean_label_alone(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("poison_target_class"):
            raise ValueError(
                "clean-label poisoning draws only target-class images, so poison_target_class: true has no "
                "meaning beside it; remove one of the two"
            )
        if value and info.data.get("target_type") == "all_to_all":
            raise ValueError(
                "clean-label poisoning keeps every label, so it cannot send class y to (y + 1) mod n; use "
                "target_type: all_to_one with it, or clean_label: false"
            )
        return value

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

    def targeting(self, num_classes: int) -> Targeting:
        """Who may be poisoned and which label a poisoned image gets, for ``num_classes`` classes."""
        return Targeting(
            num_classes=num_classes,
            target_idx=self.target_idx,
            target_type=self.target_type,
            clean_label=self.clean_label,
            poison_target_class=self.poison_target_class,
        )

    def fit_to_size(self, size: int, where: str) -> None:
        """Default a size-bound trigger's ``image_size`` (Blended, WaNet) to ``size``, and check that it fits."""
        name, params = self.attack_name, self.attack_params
        if hasattr(params, "image_size"):
            if params.image_size is None:
                params.image_size = size
            elif params.image_size != size:
                raise ValueError(
                    f"backdoor.{name}.image_size: {params.image_size} differs from the {size}-pixel images the "
                    f"trigger is applied to ({where})"
                )
        if getattr(params, "trigger_size", 0) > size:
            raise ValueError(
                f"backdoor.{name}.trigger_size: {params.trigger_size} is larger than the {size}-pixel images it "
                f"is applied to ({where})"
            )


if set(ATTACKS) - set(BackdoorSection.model_fields):  # a registered attack no config could name
    raise ImportError(f"BackdoorSection has no block for {sorted(set(ATTACKS) - set(BackdoorSection.model_fields))}")


# ``{TorchvisionTransform: {kwargs}}`` in order, run on float tensors after the resize (as in the reference).
TransformationsSpec = Annotated[dict[str, dict[str, Any] | None], AfterValidator(checked_by_building(build_transform))]
