"""Unconditional pixel-space DDPMs with random weights (``DDPMPipeline``: a ``UNet2DModel`` and its scheduler).

``tiny`` is a few hundred kB at 16×16; ``full`` has the architecture of ``google/ddpm-cifar10-32`` (35.7 M
parameters, 32×32), the checkpoint CIFAR-10 users would give the ``ddpm_sdedit`` backend.
"""

from __future__ import annotations

import torch

from benchmarks.random_pipelines import parts

UNETS = {
    "tiny": {
        "sample_size": 16,
        "block_out_channels": (16, 32),
        **parts.block_types("DownBlock2D", "AttnDownBlock2D"),
        **parts.TINY_DEPTH,
        "attention_head_dim": 8,
    },
    "full": {
        "sample_size": 32,
        "block_out_channels": (128, 256, 256, 256),
        **parts.block_types("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        **parts.FULL_DEPTH,
        "attention_head_dim": None,
    },
}


def build(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """``{"model": DDPMPipeline}`` (the hub repositories hold exactly the pipeline: both layouts agree)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(in_channels=3, out_channels=3, **UNETS[size])
    return {"model": DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))}
