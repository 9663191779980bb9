"""Cost of resumable training: writing and reading the per-epoch state, its size, and fresh loader workers per epoch.

    python -m benchmarks.checkpoint_cost --data ../shared/data/cifar10/train

The state is the real one (``training.run_directory``): ResNet-18 weights with Adam's moments after a training
epoch, the scheduler, the loss scaler and every random stream. The loader part compares the workers the
training loader starts afresh each epoch (their random streams then follow the saved loader generator) with
persistent ones: the difference is the time to the first batch of an epoch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.teacher_throughput import build_dataset
from models.classifier_factory import build_classifier
from training.compute import Compute
from training.loop import Trainable, train_one_epoch
from training.objectives import SupervisedObjective
from training.optim import build_lr_scheduler, build_optimizer
from training.run_directory import TrainingState, read_state, state_folder, write_state
from training.setup import LoaderSpec, make_loader
from utils.distributed import resolve_device
from utils.seeding import rng_state


def trained(loader, architecture: str, compute: Compute) -> Trainable:
    """A model after one epoch, so that the optimiser holds its moments."""
    model = compute.prepare(build_classifier(architecture, 10))
    optimizer = build_optimizer({"Adam": {"lr": 1e-3}}, model.parameters())
    scheduler = build_lr_scheduler({"CosineAnnealingLR": {"T_max": 100}}, optimizer)
    trainable = Trainable(model, optimizer, scheduler, compute, compute.grad_scaler())
    train_one_epoch(trainable, loader, SupervisedObjective(), epoch=1, show_progress=False)
    return trainable


def state_cost(trainable: Trainable, loader, saves: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        write_seconds = []
        for epoch in range(1, saves + 1):
            state = TrainingState(
                epoch=epoch,
                world_size=1,
                optimizer=trainable.optimizer.state_dict(),
                scheduler=trainable.scheduler.state_dict(),
                scaler=trainable.scaler.state_dict(),
                rng=[rng_state(loader.generator)],
                history=[{"step": e, "train/loss": 1.0} for e in range(1, epoch + 1)],
            )
            started = time.perf_counter()
            write_state(state_folder(Path(tmp), epoch), trainable.model, {"architecture": "benchmark"}, state)
            write_seconds.append(time.perf_counter() - started)
        folder = state_folder(Path(tmp), saves)
        sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
        started = time.perf_counter()
        read_state(folder)
        read_seconds = time.perf_counter() - started
    return {
        "state_mb": round(sum(sizes.values()) / 1e6, 1),
        "weights_mb": round(sizes["model.safetensors"] / 1e6, 1),
        "training_state_mb": round(sizes["training_state.pt"] / 1e6, 1),
        "write_seconds": round(sum(write_seconds) / len(write_seconds), 3),
        "read_seconds": round(read_seconds, 3),
    }


def first_batch_seconds(dataset, batch_size: int, workers: int, epochs: int, persistent: bool) -> float:
    """Mean time from the start of an epoch to its first batch, over epochs 2.. (epoch 1 starts workers anyway)."""
    spec = LoaderSpec(batch_size=batch_size, num_workers=workers, shuffle=True, seed=0, persistent_workers=persistent)
    loader = make_loader(dataset, spec)
    waits = []
    for _ in range(epochs):
        started = time.perf_counter()
        iterator = iter(loader)
        next(iterator)
        waits.append(time.perf_counter() - started)
        for _batch in iterator:
            pass
    return sum(waits[1:]) / max(1, len(waits) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10/train")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=1024, help="training images (a random subset)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--saves", type=int, default=5, help="states written (the time is their mean)")
    parser.add_argument("--epochs", type=int, default=4, help="loader epochs per worker mode")
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    compute = Compute.for_device(resolve_device(args.device), "bf16", channels_last=True)
    dataset = build_dataset(args.data, args.image_size, args.images)
    spec = LoaderSpec(
        batch_size=args.batch_size, num_workers=args.workers, shuffle=True, seed=0, persistent_workers=False
    )
    loader = make_loader(dataset, spec)
    row = {"architecture": args.architecture, "device": str(compute.device)}
    row.update(state_cost(trained(loader, args.architecture, compute), loader, args.saves))
    for persistent in (True, False):
        wait = first_batch_seconds(dataset, args.batch_size, args.workers, args.epochs, persistent)
        row[f"first_batch_seconds_{'persistent' if persistent else 'fresh'}_workers"] = round(wait, 3)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
