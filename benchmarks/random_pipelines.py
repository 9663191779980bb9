"""Diffusion pipelines with random weights, for tests and benchmarks (never for real variations).

``tiny`` is a few MB and runs on a CPU in milliseconds per step; ``full`` has the real architecture
(CLIP ViT-L/14 image encoder, the 860 M-parameter image UNet, the Stable Diffusion VAE: ~1.25 B parameters)
so that speed and memory can be measured without downloading the weights. Saved with
``save_pretrained``, either loads through exactly the same code path as the real checkpoint.
"""

from __future__ import annotations

import torch

SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}

ARCHITECTURES = {
    "tiny": {
        "unet": {
            "sample_size": 8,
            "block_out_channels": (32, 64),
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "layers_per_block": 1,
            "cross_attention_dim": 32,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
        },
        "vae": {
            "block_out_channels": (16, 32),
            "down_block_types": ("DownEncoderBlock2D",) * 2,
            "up_block_types": ("UpDecoderBlock2D",) * 2,
            "layers_per_block": 1,
            "norm_num_groups": 8,
        },
        "clip": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "projection_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 4,
        },
        "processor_size": 32,
    },
    "full": {
        "unet": {
            "sample_size": 64,
            "block_out_channels": (320, 640, 1280, 1280),
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "layers_per_block": 2,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
            "norm_num_groups": 32,
        },
        "vae": {
            "block_out_channels": (128, 256, 512, 512),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "sample_size": 512,
        },
        "clip": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "projection_dim": 768,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        "processor_size": 224,
    },
}


def build_random_pipeline(size: str = "tiny", seed: int = 0):
    """A ``VersatileDiffusionImageVariationPipeline`` with random weights (``size``: tiny or full)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from variations.backends.versatile_diffusion import pipeline_class

    spec = ARCHITECTURES[size]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **spec["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **spec["vae"])
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**spec["clip"]))
    side = spec["processor_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    scheduler = PNDMScheduler(skip_prk_steps=True, **SD_SCHEDULER)
    return pipeline_class()(
        image_feature_extractor=processor, image_encoder=encoder, image_unet=unet, vae=vae, scheduler=scheduler
    )


def build_random_ddpm_pipeline(sample_size: int = 16, seed: int = 0):
    """A ``DDPMPipeline`` (unconditional pixel-space ``UNet2DModel``) with random weights, a few hundred kB."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=8,
    )
    return DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))
