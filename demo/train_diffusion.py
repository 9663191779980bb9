"""Train the demo's diffusion model: a small DDPM on freshly drawn *clean* shapes, never the demo's images.

    python -m demo.train_diffusion        # → demo/ddpm_shapes (DDPMPipeline, save_pretrained layout)

The shapes come from demo/dataset.py's generator through their own random stream ("diffusion"), disjoint
from the demo's train and test images for any seed: the model is an honest stand-in for a diffusion model
pretrained on clean data, and the ``ddpm_sdedit`` variation backend loads it like any other UNet2DModel
pipeline. A run killed and started again with the same command continues from its last checkpoint in
``--state-dir`` and ends with the same weights; a larger ``--steps`` continues a finished run (the learning-rate
schedule stretches to the new length).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from demo.diffusion_export import ExportInfo, export_pipeline
from demo.diffusion_training import DiffusionTraining, Trainer, TrainingPaths, held_out_loss, train
from demo.purifier_picture import COLUMNS, purifier_picture
from utils.distributed import resolve_device
from utils.errors import UserError

PICTURE = "reconstructions.png"  # in the model folder, shown by its card


def export(trainer: Trainer, out: Path, command: str) -> ExportInfo:
    """Write the EMA weights as a DDPMPipeline with its model card to ``out``; returns what the card says."""
    unet = trainer.ema_unet()
    held_out = trainer.images.held_out()
    info = ExportInfo(
        command=command,
        settings=asdict(trainer.settings),
        parameters=sum(p.numel() for p in unet.parameters()),
        steps=trainer.step,
        minutes=trainer.seconds / 60,
        cpu_minutes=trainer.cpu_seconds / 60,
        threads=torch.get_num_threads(),
        device=str(next(trainer.unet.parameters()).device),
        final_loss=float(np.mean(trainer.losses[-100:])),
        held_out_loss=None if held_out is None else held_out_loss(unet, trainer.settings, held_out),
        data=trainer.images.description,
        model_path=str(out),
    )
    strength = trainer.settings.max_timestep / trainer.settings.train_timesteps
    pictured = held_out if held_out is not None else trainer.images.batch(0, COLUMNS)
    export_pipeline(
        unet,
        trainer.scheduler,
        out,
        info,
        lambda folder: purifier_picture(folder, pictured, strength, folder / PICTURE),
    )
    return info


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(str(int(text) + 1)) - 1


def parser() -> argparse.ArgumentParser:
    defaults = DiffusionTraining()
    parser = argparse.ArgumentParser(
        description="Train a DDPM purifier on clean images: the demo's shapes (default) or an ImageFolder subset",
        epilog="CIFAR-10's purifier: python -m demo.train_diffusion --data ../shared/data/cifar10/train "
        "--per-class 2500 --flip --max-timestep 600 --out purifiers/ddpm_cifar10 --state-dir ddpm_cifar10_training",
    )
    parser.add_argument("--out", type=Path, default=Path("demo/ddpm_shapes"), help="exported pipeline folder")
    parser.add_argument("--state-dir", type=Path, default=Path("demo_ddpm_training"), help="resumable checkpoint")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=positive_int, default=defaults.steps)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="peak AdamW learning rate")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=defaults.warmup_steps, help="steps")
    parser.add_argument("--channels", type=positive_int, nargs="+", default=list(defaults.channels))
    parser.add_argument("--size", type=positive_int, default=defaults.size, help="image side, pixels")
    parser.add_argument("--max-timestep", type=positive_int, default=defaults.max_timestep, help="train on t < this")
    parser.add_argument("--data", default=defaults.data, help="'shapes' (the demo's generator) or an ImageFolder")
    parser.add_argument("--first", type=non_negative_int, default=0, help="ImageFolder: first image of each class")
    parser.add_argument("--per-class", type=non_negative_int, default=0, help="ImageFolder: images per class (0: all)")
    parser.add_argument("--flip", action="store_true", help="ImageFolder: random horizontal flips")
    parser.add_argument("--checkpoint-every", type=positive_int, default=100, help="steps")
    parser.add_argument("--export-every", type=non_negative_int, default=0, help="also export every N steps (0: end)")
    parser.add_argument(
        "--export-now", action="store_true", help="export the last checkpoint of a stopped run, without training"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    return parser


def settings_from(args: argparse.Namespace) -> DiffusionTraining:
    channels = tuple(args.channels)
    if any(c % 8 for c in channels) or args.size % 2 ** (len(channels) - 1):
        raise UserError(
            f"--channels {' '.join(map(str, channels))} with --size {args.size}: widths must be multiples of 8 "
            f"and the side must halve {len(channels) - 1} times"
        )
    return DiffusionTraining(
        seed=args.seed,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        size=args.size,
        channels=channels,
        max_timestep=args.max_timestep,
        data=args.data,
        first=args.first,
        per_class=args.per_class,
        flip=args.flip,
    )


def stopped_trainer(settings: DiffusionTraining, paths: TrainingPaths, device: torch.device) -> Trainer:
    checkpoint = paths.state_dir / "checkpoint.pt"
    if not checkpoint.is_file():
        raise UserError(f"--export-now: no checkpoint in {paths.state_dir}: nothing was trained with these settings")
    trainer = Trainer(settings, device, show_progress=False)
    trainer.restore(checkpoint)
    return trainer


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
        device = resolve_device(args.device)
        command = " ".join(["python -m demo.train_diffusion", *(word for word in argv if word != "--export-now")])

        def milestone(trainer: Trainer) -> None:
            if args.export_every and trainer.step % args.export_every == 0:
                export(trainer, args.out, command)

        paths = TrainingPaths(args.out, args.state_dir, args.checkpoint_every)
        if args.export_now:  # a run stopped part-way: its last checkpoint, as it is
            trainer = stopped_trainer(settings, paths, device)
        else:
            trainer = train(settings, paths, device, on_checkpoint=milestone)
        info = export(trainer, args.out, command)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {info.parameters / 1e6:.2f} M parameters, {info.steps} steps in {info.minutes:.1f} min, "
        f"held-out loss {info.held_out_loss}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
