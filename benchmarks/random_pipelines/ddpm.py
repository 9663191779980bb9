"""Unconditional pixel-space DDPMs with random weights (``DDPMPipeline``: a ``UNet2DModel`` and its scheduler).

``tiny`` is a few hundred kB at 16×16; ``full`` has the architecture of ``google/ddpm-cifar10-32`` (35.7 M
parameters, 32×32), the checkpoint CIFAR-10 users would give the ``ddpm_sdedit`` backend.
"""

from __future__ import annotations

import torch

UNETS = {
    "tiny": {
        "sample_size": 16,
        "block_out_channels": (16, 32),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "attention_head_dim": 8,
    },
    "full": {
        "sample_size": 32,
        "block_out_channels": (128, 256, 256, 256),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "attention_head_dim": None,
    },
}


def build(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """``{"model": DDPMPipeline}`` (the hub repositories hold exactly the pipeline: both layouts agree)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(in_channels=3, out_channels=3, **UNETS[size])
    return {"model": DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))}
