"""Kandinsky 2.2 with random weights: the prior repository (for its image encoder) and the decoder.

``full`` follows the released configs: a CLIP ViT-bigG/14 image encoder (1280-d embeddings), the 1.2 B
decoder UNet and the MoVQ autoencoder. The prior's own transformer and text encoder are only built for
``layout="hub"`` (tiny), to prove that the backend neither downloads nor loads them.
"""

from __future__ import annotations

import torch

from benchmarks.random_pipelines import parts

SIZES = {
    "tiny": {
        "vision": parts.TINY_VISION,
        "unet": {
            **parts.TINY_UNET,
            **parts.block_types("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            "attention_head_dim": 8,
            "addition_embed_type_num_heads": 8,
        },
        "movq": {  # SpatialNorm groups by 32: channels are multiples of 32; 3 blocks: sides in multiples of 16
            "block_out_channels": (32, 32, 64),
            **parts.block_types("DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
            "layers_per_block": 1,
            "norm_num_groups": 32,
            "num_vq_embeddings": 12,
            "sample_size": 32,
        },
    },
    "full": {
        "vision": {
            "hidden_size": 1664,
            "intermediate_size": 8192,
            "projection_dim": 1280,
            "num_hidden_layers": 48,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "hidden_act": "gelu",
        },
        "unet": {
            **parts.SD1_UNET,
            "block_out_channels": (384, 768, 1152, 1536),
            **parts.block_types("ResnetDownsampleBlock2D", *("SimpleCrossAttnDownBlock2D",) * 3),
            "layers_per_block": 3,
            "attention_head_dim": 64,
            "addition_embed_type_num_heads": 64,
        },
        "movq": {
            "block_out_channels": (128, 256, 256, 512),
            **parts.block_types(*("DownEncoderBlock2D",) * 3, "AttnDownEncoderBlock2D"),
            **parts.FULL_DEPTH,
            "num_vq_embeddings": 16384,
            "sample_size": 256,
        },
    },
}


def prior_text_parts() -> dict:
    """The prior's text side (tiny only): what the image-embedding backend must skip."""
    from diffusers import PriorTransformer, UnCLIPScheduler

    return {
        "prior": PriorTransformer(num_attention_heads=2, attention_head_dim=16, num_layers=1, embedding_dim=32),
        "text_encoder": parts.clip_text(parts.TINY_TEXT, projection=True),
        "tokenizer": parts.byte_tokenizer(),
        "scheduler": UnCLIPScheduler(clip_sample=True, clip_sample_range=10.0, prediction_type="sample"),
    }


def build(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """``{"prior_model": prior pipeline, "model": decoder pipeline}``."""
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline, UNet2DConditionModel, VQModel

    spec = SIZES[size]
    embedding_dim = spec["vision"]["projection_dim"]
    torch.manual_seed(seed)
    encoder = parts.clip_vision(spec["vision"])
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,  # noise and the learned variance
        addition_embed_type="image",
        encoder_hid_dim_type="image_proj",
        encoder_hid_dim=embedding_dim,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        resnet_time_scale_shift="scale_shift",
        **spec["unet"],
    )
    movq = VQModel(latent_channels=4, vq_embed_dim=4, norm_type="spatial", **spec["movq"])
    text = prior_text_parts() if layout == "hub" else dict.fromkeys(("prior", "text_encoder", "tokenizer", "scheduler"))
    prior = KandinskyV22PriorPipeline(
        image_encoder=encoder, image_processor=parts.clip_processor(spec["vision"]["image_size"]), **text
    )
    scheduler = DDPMScheduler(
        beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    return {"prior_model": prior, "model": KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)}
