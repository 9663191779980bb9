"""Write the demo DDPM as a DDPMPipeline folder (save_pretrained layout) with its model card, all at once."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from utils.atomic_io import FILE_MODE, TEMP_MARKER

DIR_MODE = FILE_MODE | (FILE_MODE & 0o444) >> 2  # searchable wherever readable (0o644 → 0o755)


@dataclass(frozen=True)
class ExportInfo:
    """What the model card reports."""

    command: str
    settings: dict
    parameters: int
    steps: int
    minutes: float  # training wall time, summed over resumed runs
    cpu_minutes: float  # CPU time of the training process (all its threads), summed likewise
    threads: int  # torch's intra-op threads
    device: str
    final_loss: float  # mean training loss of the last 100 steps
    held_out_loss: float | None  # the objective on fixed clean images training never saw (None: none exist)
    data: str  # what the model learnt from, in words (the training source's description)
    model_path: str  # where the pipeline is written, as a config's ``diffusion.model`` would name it


def model_card(info: ExportInfo) -> str:
    settings = "\n".join(f"| `{key}` | `{value}` |" for key, value in info.settings.items())
    cpu = f"torch threads: {info.threads}, {info.cpu_minutes:.1f} min of CPU time"
    images = f"{info.steps} steps of {info.settings['batch_size']} images"
    if info.steps < info.settings["steps"]:
        images += (
            f" (stopped at step {info.steps} of the {info.settings['steps']} planned: the command above goes on from"
            " its checkpoint; the learning rate was still on its cosine schedule)"
        )
    held_out = "no held-out images" if info.held_out_loss is None else f"{info.held_out_loss:.4f} on held-out images"
    size = info.settings["size"]
    levels = info.settings["max_timestep"]
    noise_levels = (
        "all 1000 noise levels"
        if levels >= info.settings["train_timesteps"]
        else f"noise levels t < {levels} only (SDEdit strengths up to {levels / info.settings['train_timesteps']:.2f}; "
        "it cannot sample from pure noise)"
    )
    return f"""# DDPM purifier, {size}×{size}: {info.data.split(" (")[0]}

An unconditional DDPM (diffusers `UNet2DModel` + `DDPMScheduler`, `DDPMPipeline` layout) trained **only on
{info.data}**, on {noise_levels}. It stands in for a diffusion model pretrained on other, clean data than the
data it purifies: the `ddpm_sdedit` variation backend loads it with `diffusion.model: {info.model_path}`.

Made with:

```
{info.command}
```

| | |
|---|---|
| parameters | {info.parameters:,} ({info.parameters / 1e6:.2f} M), stored as float16 |
| training | {images}, {info.minutes:.1f} min wall time on {info.device} ({cpu}) |
| weights | exponential moving average of the trained weights |
| loss (noise MSE) | {info.final_loss:.4f} over the last 100 steps; {held_out} |

Held-out images (never trained on) and their SDEdit reconstructions through the `ddpm_sdedit` backend
(DDIM, 20-step schedule, no colour transfer):

![held-out images and SDEdit reconstructions](reconstructions.png)

Settings:

| setting | value |
|---|---|
{settings}
"""


def export_pipeline(unet, scheduler, out: Path, info: ExportInfo, extras: Callable[[Path], None] | None = None) -> None:
    """Replace ``out`` with the pipeline and its README.md; a run killed midway leaves the old folder.

    ``extras(folder)`` adds files (e.g. the card's picture) to the complete pipeline folder before it replaces ``out``.
    """
    from diffusers import DDPMPipeline

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{out.name}{TEMP_MARKER}"))
    previous = staging.with_name(staging.name + "-previous")
    try:
        # float16 halves the file kept in the repository; loading casts to the configured dtype
        DDPMPipeline(unet=unet.half(), scheduler=scheduler).save_pretrained(staging)
        (staging / "README.md").write_text(model_card(info))
        if extras is not None:
            extras(staging)
        for path in (staging, *staging.rglob("*")):  # some writers (and mkdtemp) make private files
            path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)
        if out.exists():
            out.rename(previous)
        staging.rename(out)
    except BaseException:
        if previous.exists() and not out.exists():
            previous.rename(out)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
