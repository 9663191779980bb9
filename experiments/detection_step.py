"""The pipeline's optional detection step and cleaned student.

After the variations: the teacher scores every training image against its variations
(``<setting>/<backend>/detection/``, see ``detection``). With a cleaning mode, the flagged images are dropped from,
or relabelled in, a copy of the variations folder made of links (``<setting>/<backend>/cleaned_variations_<mode>/``)
and the same student is distilled on it (``<setting>/<backend>/cleaned_student/``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from detection.cleaning import build_cleaned_folder
from detection.outputs import SUMMARY_NAME
from detection.run import run_detection
from utils import distributed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionChoice:
    detect: bool = False  # run the detection step
    cleaned_student: str | None = None  # drop | relabel: also train the cleaned student (implies detect)

    @property
    def wanted(self) -> bool:
        return self.detect or self.cleaned_student is not None


def detection_folder(configs) -> Path:
    return Path(configs.variant) / "detection"


def cleaned_student_config(configs, mode: str):
    """The setting's student config, trained on the cleaned variations into ``<backend>/cleaned_student``."""
    cfg = configs.student.model_copy(deep=True)
    cfg.dataset.root_train = Path(configs.variant) / f"cleaned_variations_{mode}"
    cfg.training.save_path = Path(configs.variant) / "cleaned_student"
    if cfg.wandb.args.get("name"):
        cfg.wandb.args["name"] += "_cleaned"
    return cfg


def detection_complete(folder: Path, teacher: Path | None, variations: Path) -> bool:
    """``folder`` holds a detection of exactly this teacher run and variations folder."""
    if teacher is None:
        return False
    try:
        summary = json.loads((folder / SUMMARY_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return summary.get("teacher") == str(teacher) and summary.get("variations") == str(variations)


def run_detection_step(configs, teacher: Path, variations: Path) -> bool:
    """Detection on the main process (the others wait); returns whether it was found complete and skipped."""
    folder = detection_folder(configs)
    skipped = None
    if distributed.is_main_process():
        skipped = detection_complete(folder, teacher, variations)
        if skipped:
            log.info("detection: complete in %s, skipped", folder)
        else:
            device = distributed.resolve_device(configs.teacher.training.device)
            root = configs.teacher.dataset.root_train
            run_detection(teacher, variations, root, folder, str(device), configs.teacher.training.batch_size)
    skipped = distributed.broadcast_from_main(skipped)
    return bool(skipped)


def build_cleaned_step(configs, variations: Path, cfg, mode: str) -> None:
    """The cleaned training folder of ``cfg`` (main process; the others wait for it)."""
    if distributed.is_main_process():
        block = build_cleaned_folder(variations, detection_folder(configs), cfg.dataset.root_train, mode)
        log.info("cleaned variations (%s): %d flagged → %s", mode, block["flagged"], cfg.dataset.root_train)
    distributed.barrier()
