"""Training images/s with 1 and with 2 processes under torchrun (gloo on CPU, NCCL on GPUs).

    python -m benchmarks.ddp_throughput [--data ../shared/data/cifar10] [--images-per-class 200]

Runs the real train_teacher.py for one epoch on a class-balanced subset (symlinked into a temporary
ImageFolder) and reads ``train/images_per_second`` from the run's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from experiments.evidence import subset_folder

REPO = Path(__file__).resolve().parents[1]


def measure(processes: int, config: Path, workdir: Path, port: int) -> float:
    runs = workdir / f"runs_{processes}"
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", f"--master_port={port}"]
    command = [*launcher, str(REPO / "train_teacher.py"), "-c", str(config), "--set", f"training.save_path={runs}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": str(max(1, os.cpu_count() // processes))}
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    (run_dir,) = runs.iterdir()
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["train/images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10", help="ImageFolder root with train/ and test/")
    parser.add_argument("--images-per-class", type=int, default=200)
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = Path(args.data).resolve()
        subset_folder(data / "train", 0, args.images_per_class, work / "train")
        subset_folder(data / "test", 0, 10, work / "test")
        config = {
            "model": {"architecture": args.architecture},
            "dataset": {
                "root_train": str(work / "train"),
                "root_test": str(work / "test"),
                "image_size": args.image_size,
            },
            "backdoor": {"target_idx": 0, "poisoning_rate": 0.1, "PatchBackdoor": {"trigger_size": 3}},
            "transformations": {"RandomHorizontalFlip": {"p": 0.5}},
            "training": {"num_epochs": 1, "batch_size": args.batch_size, "dataloader_num_workers": 1},
        }
        path = work / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        for processes in (1, 2):
            rate = measure(processes, path, work, 29700 + processes)
            print(json.dumps({"processes": processes, "train_images_per_s": round(rate, 1)}), flush=True)


if __name__ == "__main__":
    main()
