"""Random-weight parts the pipeline families share: CLIP towers and processor, a tokenizer, SD UNet and VAE.

Each builder takes a plain config dict (the architecture's hyper-parameters), so a family module states its
``tiny`` and ``full`` sizes as data and assembles the parts.
"""

from __future__ import annotations

SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}  # SD 1.x/2.x training

# CLIP ViT-L/14 (Stable Diffusion 1.x's text encoder, its image encoder in the image-variation models)
CLIP_L_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
}
CLIP_L_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
}
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
}
TINY_TEXT = {  # with byte_tokenizer's ids
    "hidden_size": 32,
    "intermediate_size": 64,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "vocab_size": 514,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}

# Depth per level and normalisation groups, shared by the UNets and autoencoders of each size.
TINY_DEPTH = {"layers_per_block": 1, "norm_num_groups": 8}
FULL_DEPTH = {"layers_per_block": 2, "norm_num_groups": 32}  # Stable Diffusion's, DDPM-CIFAR's and MoVQ's


def block_types(*down: str) -> dict:
    """``down_block_types`` and the ``up_block_types`` that mirror them.

    Every UNet and autoencoder here decodes through its encoder's levels in reverse, with each block's
    upsampling twin; stating the encoder side alone keeps the two sides from drifting apart.
    """
    twins = (("Downsample", "Upsample"), ("Down", "Up"), ("Encoder", "Decoder"))  # longest first

    def mirrored(name: str) -> str:
        for old, new in twins:
            name = name.replace(old, new)
        return name

    return {"down_block_types": down, "up_block_types": tuple(mirrored(name) for name in reversed(down))}


# Stable Diffusion 1.x UNet (860 M) and VAE (84 M); the tiny ones keep the block types at a few MB.
SD1_UNET = {
    "sample_size": 64,
    "block_out_channels": (320, 640, 1280, 1280),
    **block_types(*("CrossAttnDownBlock2D",) * 3, "DownBlock2D"),
    **FULL_DEPTH,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
TINY_UNET = {
    "sample_size": 8,
    "block_out_channels": (32, 64),
    **block_types("CrossAttnDownBlock2D", "DownBlock2D"),
    **TINY_DEPTH,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
}
SD_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    **block_types(*("DownEncoderBlock2D",) * 4),
    **FULL_DEPTH,
    "sample_size": 512,
}
TINY_VAE = {"block_out_channels": (16, 32), **block_types(*("DownEncoderBlock2D",) * 2), **TINY_DEPTH}


def clip_processor(side: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


def clip_vision(config: dict):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(**config))


def clip_text(config: dict, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model(CLIPTextConfig(**config))


def byte_tokenizer(max_length: int = 77):
    """A real CLIP tokenizer whose vocabulary is the 256 byte symbols (no merges): every text tokenizes."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)  # the last symbol of a word
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def sd_unet(config: dict, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(in_channels=4, out_channels=4, **config, **extra)


def sd_vae(config: dict):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **config)


def sd_scheduler():
    from diffusers import PNDMScheduler

    return PNDMScheduler(skip_prk_steps=True, **SD_SCHEDULER)
