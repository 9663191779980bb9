"""Stable Diffusion family with random weights: image variations (Lambda), img2img (SD 1.x), Stable unCLIP (SD 2.1).

``full`` sizes follow the released checkpoints' configs; ``layout="hub"`` lays a folder out like the hub
repository, extras included (the safety checker and its feature extractor, which the backends never load).
"""

from __future__ import annotations

import torch

from benchmarks.random_pipelines import parts

SD1 = {
    "tiny": {"unet": parts.TINY_UNET, "vae": parts.TINY_VAE, "vision": parts.TINY_VISION, "text": parts.TINY_TEXT},
    "full": {"unet": parts.SD1_UNET, "vae": parts.SD_VAE, "vision": parts.CLIP_L_VISION, "text": parts.CLIP_L_TEXT},
}

# Stable Diffusion 2.1 unCLIP-H: v-prediction UNet (865 M) conditioned on the OpenCLIP ViT-H/14 image embedding
# (1024-d, with a 1024-d noise-level embedding appended: 2048 in all) and on the ViT-H text encoder.
UNCLIP = {
    "tiny": {
        "unet": {**parts.TINY_UNET, "cross_attention_dim": 32},
        "embedding_dim": 32,
        "vae": parts.TINY_VAE,
        "vision": parts.TINY_VISION,
        "text": parts.TINY_TEXT,
    },
    "full": {
        "unet": {
            **parts.SD1_UNET,
            "sample_size": 96,
            "cross_attention_dim": 1024,
            "attention_head_dim": (5, 10, 20, 20),
            "use_linear_projection": True,
        },
        "embedding_dim": 1024,
        "vae": parts.SD_VAE,
        "vision": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "projection_dim": 1024,
            "num_hidden_layers": 32,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "hidden_act": "gelu",
        },
        "text": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "projection_dim": 512,
            "num_hidden_layers": 23,
            "num_attention_heads": 16,
            "max_position_embeddings": 77,
            "vocab_size": 49408,
            "hidden_act": "gelu",
        },
    },
}


def safety_parts(spec: dict) -> dict:
    """A safety checker and its feature extractor, as SD 1.x repositories hold them (never loaded here)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config=spec["text"], vision_config=spec["vision"], projection_dim=spec["vision"]["projection_dim"]
    )
    side = spec["vision"]["image_size"]
    return {"safety_checker": StableDiffusionSafetyChecker(config), "feature_extractor": parts.clip_processor(side)}


def denoising_parts(spec: dict) -> dict:
    """UNet, VAE and scheduler of an SD 1.x checkpoint."""
    return {"unet": parts.sd_unet(spec["unet"]), "vae": parts.sd_vae(spec["vae"]), "scheduler": parts.sd_scheduler()}


def build_image_variations(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    from diffusers import StableDiffusionImageVariationPipeline

    spec = SD1[size]
    torch.manual_seed(seed)
    pipe = StableDiffusionImageVariationPipeline(
        **denoising_parts(spec),
        image_encoder=parts.clip_vision(spec["vision"]),
        feature_extractor=parts.clip_processor(spec["vision"]["image_size"]),
        safety_checker=safety_parts(spec)["safety_checker"] if layout == "hub" else None,
        requires_safety_checker=False,
    )
    return {"model": pipe}


def build_img2img(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """An SD 1.x checkpoint: a ``StableDiffusionPipeline`` (as on the hub) or the img2img pipeline alone."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    spec = SD1[size]
    torch.manual_seed(seed)
    components = {
        **denoising_parts(spec),
        "text_encoder": parts.clip_text(spec["text"]),
        "tokenizer": parts.byte_tokenizer(),
    }
    if layout == "hub":
        return {"model": StableDiffusionPipeline(**components, **safety_parts(spec))}
    extras = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    return {"model": StableDiffusionImg2ImgPipeline(**components, **extras)}


def build_unclip(size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """Stable unCLIP 2.1 (the hub repository holds exactly these parts, plus single-file checkpoints)."""
    from diffusers import DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    spec = UNCLIP[size]
    dim = spec["embedding_dim"]
    torch.manual_seed(seed)
    unet = parts.sd_unet(spec["unet"], class_embed_type="projection", projection_class_embeddings_input_dim=2 * dim)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=parts.clip_processor(spec["vision"]["image_size"]),
        image_encoder=parts.clip_vision(spec["vision"]),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=dim),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=parts.byte_tokenizer(),
        text_encoder=parts.clip_text(spec["text"]),
        unet=unet,
        scheduler=DDIMScheduler(
            prediction_type="v_prediction",
            set_alpha_to_one=False,
            steps_offset=1,
            clip_sample=False,
            **parts.SD_SCHEDULER,
        ),
        vae=parts.sd_vae(spec["vae"]),
    )
    return {"model": pipe}
