"""The configs of the scripts, composed from the sections each domain owns, with the reference's key names.

Every key has a default where one makes sense, so experiment configs list only what differs. Validation
checks types, ranges and the names of library classes; the data on disk is checked afterwards
(``config.data_checks``), so a config validates without its folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from datasets.sections import BackdoorSection, TrainDatasetSection, TransformationsSpec, VariationDatasetSection
from datasets.transforms import transformed_size
from models.sections import ModelSection
from training.optim import check_schedule
from training.sections import Device, DistillationSection, OptimizerSpec, SchedulerSpec, TrainingSection
from utils.section import Section
from utils.tracking import WandbSection
from variations.backends import DiffusionSection, diffusion_section

SEED_LIMIT = 2**32  # NumPy's RandomState (the poison plan) takes seeds in [0, 2**32)


class TrainConfig(Section):
    """Shared by ``train_teacher.py`` and ``train_student.py``."""

    seed: int = Field(42, ge=0, lt=SEED_LIMIT)  # seeds Python, NumPy, torch and the poison plan
    model: ModelSection = Field(default_factory=ModelSection)
    dataset: TrainDatasetSection
    backdoor: BackdoorSection | None = None  # the attack: poisons the training data and makes the ASR test set
    transformations: TransformationsSpec = Field(default_factory=dict)  # torchvision.transforms, in order
    optimizer: OptimizerSpec = Field(default_factory=lambda: {"Adam": {"lr": 0.001}})
    lr_scheduler: SchedulerSpec | None = None  # torch.optim.lr_scheduler, stepped per epoch
    training: TrainingSection = Field(default_factory=TrainingSection)
    wandb: WandbSection = Field(default_factory=WandbSection)
    rtpt: dict[str, Any] | None = None  # accepted for reference configs, ignored (with a warning)

    @model_validator(mode="after")
    def _sizes_fit(self):
        size = self.dataset.image_size
        transformed = transformed_size(self.transformations, size)  # also: they must take a float image
        if self.backdoor is not None:
            if not self.backdoor.poison_first:
                self.backdoor.fit_to_size(transformed, "output of transformations, poison_first: false")
            self.backdoor.fit_to_size(size, "dataset.image_size")  # test images are not transformed
        return self

    @model_validator(mode="after")
    def _schedule_runs(self):
        try:  # with the configured optimizer this time (the section checks used a stand-in)
            check_schedule(self.optimizer, self.lr_scheduler, self.training.num_epochs)
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"lr_scheduler: {err}") from err
        return self


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


class VariationConfig(Section):
    """``generate_variations.py``."""

    seed: int = Field(42, ge=0, lt=SEED_LIMIT)  # same seed and backdoor block as the teacher → same poisoned samples
    output_folder: Path  # becomes an ImageFolder: <output_folder>/<class>/<file>.png
    dataset: VariationDatasetSection
    backdoor: BackdoorSection | None = None  # None or poisoning_rate 0: the folder is used as it is
    diffusion: DiffusionSection = Field(default_factory=diffusion_section)  # the backend and its keys
    device: Device = "auto"  # auto, cpu, cuda, cuda:N, mps (under torchrun: cuda:LOCAL_RANK)
    save_source_copies: bool = False  # also write the (poisoned) inputs to <output_folder>_sources/
    wandb: WandbSection = Field(default_factory=WandbSection)
    rtpt: dict[str, Any] | None = None  # accepted for reference configs, ignored (with a warning)

    @model_validator(mode="after")
    def _trigger_fits(self):
        if self.backdoor is not None:
            self.backdoor.fit_to_size(self.dataset.image_size, "dataset.image_size")
        return self


SCHEMAS = {"teacher": TeacherConfig, "student": StudentConfig, "variations": VariationConfig}
