"""The DDPM purifiers' training: clean images (the demo's shapes or an ImageFolder subset), the DDPM objective,
a resumable trainer.

Every batch (images, timesteps, noise) is a pure function of (seed, step), so a run resumed from its
checkpoint ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from demo.diffusion_data import SHAPES, FolderImages, ShapeImages
from utils.atomic_io import atomic_path
from utils.errors import TrainingError, UserError
from utils.progress import on_terminal, progress

ATTENTION_SIDE = 8  # self-attention only at the level whose feature maps are 8×8 pixels: cheap on a CPU


@dataclass(frozen=True)
class DiffusionTraining:
    """What decides the weights (a checkpoint made with other values is refused)."""

    seed: int = 0  # model initialisation and the stream of training images, timesteps and noise
    steps: int = 2000  # optimisation steps
    batch_size: int = 64  # images per step, each freshly drawn
    learning_rate: float = 1e-3  # AdamW peak; linear warm-up, then cosine decay to 0
    warmup_steps: int = 100  # steps of linear learning-rate warm-up
    size: int = 32  # image side, pixels (the demo's dataset.image_size)
    channels: tuple[int, ...] = (32, 64, 96, 128)  # UNet block widths, one level each (each halves the side)
    train_timesteps: int = 1000  # DDPM noise levels, linear betas 1e-4 → 0.02 (Ho et al.)
    ema_power: float = 0.75  # EMA warm-up: decay = 1 − (1 + step)^−power, capped at 0.9999
    max_timestep: int = 400  # train on noise levels t < this only (SDEdit at strength s uses t < s·1000): the
    # demo's SDEdit runs at 0.25; trained on every level (600 steps) its variations lost the shapes
    data: str = SHAPES  # "shapes" (the demo's generator, fresh images every step) or an ImageFolder root
    first: int = 0  # ImageFolder: the first image taken from each class (ImageFolder order)
    per_class: int = 0  # ImageFolder: images taken from each class from ``first`` on; 0 = as many as all have
    flip: bool = False  # ImageFolder: mirror each image with probability 1/2 (seeded per step)


@dataclass(frozen=True)
class TrainingPaths:
    out: Path  # the exported pipeline (save_pretrained layout)
    state_dir: Path  # the resumable checkpoint
    checkpoint_every: int = 100  # steps between checkpoints


def build_unet(settings: DiffusionTraining):
    from diffusers import UNet2DModel

    attention = [settings.size >> level == ATTENTION_SIDE for level in range(len(settings.channels))]
    return UNet2DModel(
        sample_size=settings.size,
        in_channels=3,
        out_channels=3,
        block_out_channels=settings.channels,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        layers_per_block=1,  # one residual block per level: the images are simple, the CPU is slow
        norm_num_groups=8,  # channels must be multiples of 8
        attention_head_dim=32,  # channels per attention head
    )


def noise_scheduler(settings: DiffusionTraining):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=settings.train_timesteps, beta_schedule="linear")


def noising(seed: int, step: int, shape: torch.Size, timesteps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The timesteps (``0 … timesteps − 1``) and Gaussian noise of one batch, drawn from (seed, step) alone."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))
    t = torch.randint(0, timesteps, (shape[0],), generator=generator)
    return t, torch.randn(shape, generator=generator)


def denoising_loss(unet, scheduler, images: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The DDPM objective: mean squared error of the predicted noise."""
    device = next(unet.parameters()).device
    images, t, noise = images.to(device), t.to(device), noise.to(device)
    return F.mse_loss(unet(scheduler.add_noise(images, noise, t), t).sample, noise)


def training_images(settings: DiffusionTraining, show_progress: bool = True) -> ShapeImages | FolderImages:
    if not 0 < settings.max_timestep <= settings.train_timesteps:
        raise UserError(f"--max-timestep {settings.max_timestep}: must be 1 … {settings.train_timesteps}")
    if settings.data == SHAPES:
        return ShapeImages(settings.seed, settings.size)
    return FolderImages(
        settings.data, settings.first, settings.per_class, settings.size, settings.seed, settings.flip, show_progress
    )


@torch.no_grad()
def held_out_loss(unet, settings: DiffusionTraining, images: torch.Tensor | None = None) -> float | None:
    """The objective on fixed clean images that training never sees (None where the source has none)."""
    images = training_images(settings, show_progress=False).held_out() if images is None else images
    if images is None:
        return None
    t, noise = noising(settings.seed, 0, images.shape, settings.max_timestep)
    return denoising_loss(unet, noise_scheduler(settings), images, t, noise).item()


class Trainer:
    """The model, its EMA, the optimiser and its schedule, with a checkpoint that restores all of them."""

    def __init__(self, settings: DiffusionTraining, device: torch.device, show_progress: bool = True):
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.settings = settings
        self.images = training_images(settings, show_progress)
        torch.manual_seed(settings.seed)
        self.unet = build_unet(settings).to(device)
        self.scheduler = noise_scheduler(settings)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=settings.learning_rate, weight_decay=0.0)
        self.lr_schedule = get_cosine_schedule_with_warmup(self.optimizer, settings.warmup_steps, settings.steps)
        self.ema = EMAModel(self.unet.parameters(), use_ema_warmup=True, power=settings.ema_power)
        self.step = 0
        self.losses: list[float] = []  # one per step, for the record
        self.seconds = 0.0  # training wall time, summed over resumed runs
        self.cpu_seconds = 0.0  # this process's CPU time (all threads), summed likewise: contention-free

    def train_step(self) -> float:
        settings = self.settings
        images = self.images.batch(self.step, settings.batch_size)
        t, noise = noising(settings.seed, self.step, images.shape, settings.max_timestep)
        loss = denoising_loss(self.unet, self.scheduler, images, t, noise)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss at step {self.step}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)  # guards the first steps at a high lr
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.step(self.unet.parameters())
        self.step += 1
        self.losses.append(loss.item())
        return self.losses[-1]

    def state(self) -> dict:
        return {
            "settings": asdict(self.settings),
            "step": self.step,
            "losses": self.losses,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "unet": self.unet.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
        }

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)

    def restore(self, path: Path) -> None:
        state = torch.load(path, map_location=next(self.unet.parameters()).device, weights_only=True)
        mine = asdict(self.settings) | {"steps": None}
        saved = {**state["settings"], "channels": tuple(state["settings"]["channels"]), "steps": None}
        if saved != mine:  # more steps may be asked for (the schedule stretches), nothing else may change
            changed = sorted(key for key in mine if mine[key] != saved.get(key))
            raise UserError(
                f"{path} was made with other settings ({', '.join(changed)}); use them, or another --state-dir"
            )
        self.unet.load_state_dict(state["unet"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.step, self.losses = state["step"], state["losses"]
        self.seconds, self.cpu_seconds = state["seconds"], state["cpu_seconds"]

    def ema_unet(self):
        """A copy of the UNet holding the EMA weights (what is exported)."""
        unet = build_unet(self.settings)
        self.ema.copy_to(unet.parameters())
        return unet


def train(
    settings: DiffusionTraining,
    paths: TrainingPaths,
    device: torch.device,
    show_progress: bool = True,
    on_checkpoint: Callable[[Trainer], None] | None = None,
) -> Trainer:
    """Train up to ``settings.steps``, resuming from (and checkpointing to) ``paths.state_dir``.

    A bar on a terminal; elsewhere (a log file) one plain line per checkpoint. ``on_checkpoint`` runs after
    each checkpoint is written (e.g. to export the weights so far).
    """
    terminal = show_progress and on_terminal()
    trainer = Trainer(settings, device, show_progress)
    checkpoint = paths.state_dir / "checkpoint.pt"
    if checkpoint.is_file():
        trainer.restore(checkpoint)
    bar = progress(total=settings.steps, initial=trainer.step, desc="ddpm", unit="step", show=terminal)
    started, cpu_started = time.perf_counter() - trainer.seconds, time.process_time() - trainer.cpu_seconds
    while trainer.step < settings.steps:
        loss = trainer.train_step()
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}")
        if trainer.step % paths.checkpoint_every == 0 or trainer.step == settings.steps:
            trainer.seconds = time.perf_counter() - started
            trainer.cpu_seconds = time.process_time() - cpu_started
            trainer.save(checkpoint)
            if show_progress and not terminal:
                recent = trainer.losses[-paths.checkpoint_every :]
                print(
                    f"ddpm step {trainer.step}/{settings.steps}: loss {np.mean(recent):.4f} (mean of the last "
                    f"{len(recent)}), {trainer.seconds / 60:.1f} min, {trainer.cpu_seconds / 60:.1f} CPU min",
                    file=sys.stderr,
                    flush=True,
                )
            if on_checkpoint is not None:
                on_checkpoint(trainer)
    bar.close()
    return trainer
