"""Training-step images/s of a classifier on random data: mixed precision, channels_last, torch.compile.

    python -m benchmarks.model_throughput --architecture resnet101 --image-size 224 --batch-size 128   # GPU

On CUDA it runs the grid {fp32, bf16} × {contiguous, channels_last} × {eager, compiled}; on a CPU only fp32
eager (the others are CUDA features here). The step is the real ``train_one_epoch``.
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch

from models.classifier_factory import build_classifier
from training.compute import Compute
from training.loop import Trainable, train_one_epoch
from training.objectives import SupervisedObjective
from training.optim import build_optimizer
from utils.distributed import resolve_device


def step_rate(args, device: torch.device, precision: str, channels_last: bool, compiled: bool) -> float:
    compute = Compute.for_device(device, precision, channels_last)
    model = compute.prepare(build_classifier(args.architecture, 10))
    if compiled:
        model = torch.compile(model)
    optimizer = build_optimizer({"SGD": {"lr": 0.01, "momentum": 0.9}}, model.parameters())
    trainable = Trainable(model, optimizer, None, compute, compute.grad_scaler())
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8)
    batch = [(images, torch.randint(0, 10, (args.batch_size,)))]
    objective = SupervisedObjective()
    for _ in range(args.warmup):  # compilation and cudnn autotuning happen here
        train_one_epoch(trainable, batch, objective, epoch=0, show_progress=False)
    stats = train_one_epoch(trainable, batch * args.steps, objective, epoch=1, show_progress=False)
    return stats["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="resnet101")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        grid = itertools.product(["none", "bf16"], [False, True], [False, True])
    else:
        grid = [("none", False, False)]
    for precision, channels_last, compiled in grid:
        rate = step_rate(args, device, precision, channels_last, compiled)
        row = {
            "device": str(device),
            "architecture": args.architecture,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "precision": precision,
            "channels_last": channels_last,
            "compile": compiled,
            "train_images_per_s": round(rate, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
