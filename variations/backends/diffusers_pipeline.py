"""Loading a diffusers pipeline for a backend: hub id or local folder, dtype, scheduler swap, SDPA, compile."""

from __future__ import annotations

from pathlib import Path

import torch

from utils.errors import UserError, first_line

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def quiet_loading_bars() -> None:
    """The libraries' per-file loading bars would drown ours; their warnings still show."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_pipeline(pipeline_class, model: str, device: torch.device, dtype: torch.dtype, scheduler: str | None):
    """``pipeline_class.from_pretrained`` from a hub id or a local ``save_pretrained`` folder, on ``device``."""
    quiet_loading_bars()
    looks_local = Path(model).exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_local and not Path(model).expanduser().is_dir():
        raise UserError(f"diffusion.model: folder not found: {model}")
    try:
        pipe = pipeline_class.from_pretrained(str(Path(model).expanduser()) if looks_local else model, dtype=dtype)
    except (OSError, ValueError) as err:
        raise UserError(
            f"diffusion.model: cannot load '{model}' ({first_line(err)}). Without network, download it once "
            "where there is one (it lands in the HuggingFace cache, $HF_HOME, default ~/.cache/huggingface) and "
            "set HF_HUB_OFFLINE=1, or point diffusion.model at a local folder written by save_pretrained"
        ) from err
    if scheduler is not None:
        import diffusers

        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # ours counts images, not denoising steps
    return pipe.to(device)


def use_sdpa(denoiser) -> None:
    """PyTorch's fused scaled-dot-product attention (diffusers' default on torch 2, made explicit)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    denoiser.set_attn_processor(AttnProcessor2_0())


def generators(seeds: list[list[int]]) -> list[torch.Generator]:
    """One CPU generator per (image, variation), image by image: the order diffusers repeats embeddings in."""
    return [torch.Generator("cpu").manual_seed(seed) for per_image in seeds for seed in per_image]
