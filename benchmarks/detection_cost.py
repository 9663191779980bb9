"""Cost of the detection step: seconds per 10,000 training images (each with its variations), on one thread.

    python -m benchmarks.detection_cost                       # the demo's model: ResNet-10-T at 32 px, 1,000 images
    python -m benchmarks.detection_cost --per-class 500 --num-variations 4

A teacher run directory with the demo teacher's config and random weights (the cost does not depend on them) and
classical variations of a generated demo dataset are made in a temporary folder; then ``run_detection`` is timed:
reading and poisoning the sources, decoding the variations, the teacher's forward passes, the three detectors and
the outputs. CPU time of the process is given beside wall time, as a contended machine inflates the latter.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from config.loading import load_config
from config.schema import TeacherConfig, VariationConfig
from datasets.build import attack_from, build_poisoning, poisoned_indices
from datasets.image_folder import scan_image_folder
from datasets.setting_keys import CONFIG_NAME
from demo.dataset import generate_demo_dataset
from detection.run import run_detection
from models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from models.classifier_factory import build_classifier
from training.run_directory import checkpoint_metadata, write_poison_indices
from utils.atomic_io import atomic_write_yaml
from variations.run import run_variations


def teacher_run(root: Path, data: Path) -> Path:
    """A teacher run directory as train_teacher.py leaves it, with untrained weights."""
    overrides = [f"dataset.root_train={data}/train", f"dataset.root_test={data}/test"]
    cfg = load_config(TeacherConfig, "configs/demo/teacher.yaml", overrides)
    index = scan_image_folder(cfg.dataset.root_train)
    cfg.model.num_classes = len(index.classes)
    run_dir = root / "teacher"
    run_dir.mkdir(parents=True)
    atomic_write_yaml(run_dir / CONFIG_NAME, cfg.to_dict())
    poisoning = build_poisoning(cfg.backdoor, attack_from(cfg.backdoor), index, cfg.seed)
    write_poison_indices(run_dir, poisoned_indices(poisoning))
    mean, std = cfg.model.mean_std()
    model = build_classifier(cfg.model.architecture, cfg.model.num_classes, False, mean, std)
    save_checkpoint(run_dir / CHECKPOINT_NAME, model, checkpoint_metadata(cfg, index.classes, "teacher"))
    return run_dir


def variations(root: Path, teacher: Path, num_variations: int) -> Path:
    config = yaml.safe_load((teacher / CONFIG_NAME).read_text())
    overrides = [
        f"seed={config['seed']}",
        f"dataset.root={config['dataset']['root_train']}",
        f"output_folder={root / 'variations'}",
        f"diffusion.num_variations={num_variations}",
        "device=cpu",
        "dataset.num_workers=0",
    ]
    cfg = load_config(VariationConfig, "configs/demo/variations.yaml", overrides)
    cfg.backdoor = TeacherConfig.model_validate(config).backdoor
    run_variations(cfg)
    return root / "variations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="demo training images per class (10 classes)")
    parser.add_argument("--num-variations", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = generate_demo_dataset(root / "data", train_per_class=args.per_class, test_per_class=2)
        teacher = teacher_run(root, data)
        folder = variations(root, teacher, args.num_variations)
        torch.set_num_threads(args.threads)
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_detection(teacher, folder, out=root / "detection", batch_size=128)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = summary["num_images"]
    print(
        json.dumps(
            {
                "images": images,
                "num_variations": args.num_variations,
                "threads": args.threads,
                "wall_seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "wall_seconds_per_10k_images": round(wall * 10_000 / images, 1),
                "cpu_seconds_per_10k_images": round(cpu * 10_000 / images, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
