"""Images/s of the teacher's data pipeline alone and of full training steps (ResNet-18 by default).

    python -m benchmarks.teacher_throughput --data ../shared/data/cifar10/train --sizes 32 224

The pipeline is the real one (decode, resize, BadNets trigger on 10 % of the images, random flip, collate).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import Subset

from backdoor_attacks import PatchBackdoor
from datasets.image_folder import scan_image_folder
from datasets.poison_plan import Targeting, fixed_poison_indices, index_mask
from datasets.poisoned_image_folder import PoisonedImageFolder, Poisoning
from datasets.transforms import build_transform
from models.classifier_factory import build_classifier
from training.compute import Compute
from training.loop import Trainable, train_one_epoch
from training.objectives import SupervisedObjective
from training.optim import build_optimizer
from training.setup import LoaderSpec, make_loader
from utils.distributed import resolve_device


def build_dataset(root: str, size: int, limit: int) -> Subset:
    index = scan_image_folder(root)
    poison = fixed_poison_indices(index.labels, 0, 0.1, False, seed=0)
    targeting = Targeting(num_classes=len(index.classes), target_idx=0)
    poisoning = Poisoning(PatchBackdoor("checkerboard", 3), targeting, fixed_mask=index_mask(poison, len(index)))
    dataset = PoisonedImageFolder(
        index.samples, size, poisoning, transform=build_transform({"RandomHorizontalFlip": {"p": 0.5}})
    )
    picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit].tolist()
    return Subset(dataset, picks)


def data_only(loader) -> float:
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    count, started = 0, time.perf_counter()
    for images, *_ in iterator:
        count += images.shape[0]
    return count / (time.perf_counter() - started)


def training(loader, architecture: str, compute: Compute) -> float:
    model = compute.prepare(build_classifier(architecture, 10))
    optimizer = build_optimizer({"Adam": {"lr": 1e-3}}, model.parameters())
    trainable = Trainable(model, optimizer, None, compute, compute.grad_scaler())
    warm = [next(iter(loader))]
    train_one_epoch(trainable, warm, SupervisedObjective(), epoch=0, show_progress=False)
    return train_one_epoch(trainable, loader, SupervisedObjective(), epoch=1, show_progress=False)["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10/train")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--images", type=int, default=2048, help="images per measurement (a random subset)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--mixed-precision", default="bf16", choices=["bf16", "fp16", "none"])
    args = parser.parse_args()
    compute = Compute.for_device(resolve_device(args.device), args.mixed_precision, channels_last=True)
    results = []
    for size in args.sizes:
        dataset = build_dataset(args.data, size, args.images)
        spec = LoaderSpec(
            batch_size=args.batch_size, num_workers=args.workers, shuffle=True, seed=0, device=compute.device
        )
        loader = make_loader(dataset, spec)
        row = {"image_size": size, "workers": args.workers, "data_images_per_s": round(data_only(loader), 1)}
        row["train_images_per_s"] = round(training(loader, args.architecture, compute), 1)
        row["device"] = str(compute.device)
        results.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
