"""Versatile Diffusion with random weights: the image-variation pipeline, or the hub repository's full layout.

``full`` size has the real architecture (CLIP ViT-L/14 image encoder, the 860 M-parameter image UNet, the SD
VAE: ~1.25 B parameters). ``layout="hub"`` adds what the hub repository holds besides (text UNet, CLIP text
encoder, tokenizer) under a ``VersatileDiffusionPipeline`` model index, to prove those are never loaded.
"""

from __future__ import annotations

import torch

from benchmarks.random_pipelines import parts

SIZES = {
    "tiny": {"unet": parts.TINY_UNET, "vae": parts.TINY_VAE, "vision": parts.TINY_VISION, "text": parts.TINY_TEXT},
    "full": {"unet": parts.SD1_UNET, "vae": parts.SD_VAE, "vision": parts.CLIP_L_VISION, "text": parts.CLIP_L_TEXT},
}


def image_variation_parts(size: str, seed: int) -> dict:
    spec = SIZES[size]
    torch.manual_seed(seed)
    unet = parts.sd_unet(spec["unet"])
    vae = parts.sd_vae(spec["vae"])
    encoder = parts.clip_vision(spec["vision"])
    return {
        "image_feature_extractor": parts.clip_processor(spec["vision"]["image_size"]),
        "image_encoder": encoder,
        "image_unet": unet,
        "vae": vae,
        "scheduler": parts.sd_scheduler(),
    }


def text_parts(size: str) -> dict:
    """The text UNet (flat-conditioned, as in the hub repo) and the CLIP text encoder with its tokenizer."""
    from diffusers.pipelines.deprecated.versatile_diffusion.modeling_text_unet import UNetFlatConditionModel

    spec = SIZES[size]
    unet = spec["unet"]
    channels = 768 if size == "full" else 8  # the text UNet denoises 768-d text latents laid flat
    text_unet = UNetFlatConditionModel(
        in_channels=channels,
        out_channels=channels,
        sample_size=1,
        block_out_channels=unet["block_out_channels"],
        down_block_types=tuple(name.replace("2D", "Flat") for name in unet["down_block_types"]),
        up_block_types=tuple(name.replace("2D", "Flat") for name in unet["up_block_types"]),
        layers_per_block=unet["layers_per_block"],
        cross_attention_dim=unet["cross_attention_dim"],
        attention_head_dim=unet["attention_head_dim"],
        norm_num_groups=unet["norm_num_groups"],
    )
    return {
        "text_unet": text_unet,
        "text_encoder": parts.clip_text(spec["text"], projection=True),
        "tokenizer": parts.byte_tokenizer(),
    }


def build(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """``{"model": pipeline}``; layout ``pipeline`` (image variation only) or ``hub`` (the full repository)."""
    from diffusers.pipelines.deprecated import VersatileDiffusionImageVariationPipeline, VersatileDiffusionPipeline

    components = image_variation_parts(size, seed)
    if layout == "pipeline":
        return {"model": VersatileDiffusionImageVariationPipeline(**components)}
    return {"model": VersatileDiffusionPipeline(**components, **text_parts(size))}
