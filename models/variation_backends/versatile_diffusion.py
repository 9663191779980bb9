"""Versatile Diffusion's image-variation mode through diffusers.

Only ``VersatileDiffusionImageVariationPipeline`` is loaded (CLIP image encoder, image UNet, VAE: about
1.25 B parameters, 2.5 GB in fp16), once per process. The pipeline conditions on all 257 CLIP vision tokens
(post-layernorm, projected, divided by the norm of the projected CLS token) and guides against the
embedding of a blank image. Images go in as PIL, so the CLIP processor rescales them exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from utils.errors import UserError, first_line

log = logging.getLogger(__name__)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def pipeline_class():
    # Deprecated (no longer maintained) in diffusers but still shipped; the import is pinned and tested.
    from diffusers.pipelines.deprecated import VersatileDiffusionImageVariationPipeline

    return VersatileDiffusionImageVariationPipeline


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


def load_pipeline(model: str, device: torch.device, dtype: torch.dtype, scheduler: str | None = None):
    """Load the image-variation pipeline from a hub id or a local ``save_pretrained`` folder."""
    quiet_loading_bars()
    looks_local = Path(model).exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_local and not Path(model).expanduser().is_dir():
        raise UserError(f"diffusion.model: folder not found: {model}")
    try:
        pipe = pipeline_class().from_pretrained(str(Path(model).expanduser()) if looks_local else model, dtype=dtype)
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


def use_sdpa(pipe) -> None:
    """PyTorch's fused scaled-dot-product attention in the UNet (diffusers' default on torch 2, made explicit)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe.image_unet.set_attn_processor(AttnProcessor2_0())


class VersatileDiffusionBackend:
    def __init__(
        self,
        pipe,
        device: torch.device,
        steps: int,
        guidance_scale: float,
        height: int,
        width: int,
        num_variations: int,
        model_batch_size: int,
    ):
        self.pipe = pipe
        self.device = device
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.height = height
        self.width = width
        self.num_variations = num_variations
        self.model_batch_size = model_batch_size
        # what, besides the config, decides the bytes written (compared when a run resumes)
        self.numerics = {"dtype": str(pipe.dtype).removeprefix("torch."), "model_batch_size": model_batch_size}

    @classmethod
    def from_config(cls, diffusion, device: torch.device, batch_size: int) -> VersatileDiffusionBackend:
        dtype = resolve_dtype(diffusion.dtype, device)
        pipe = load_pipeline(diffusion.model, device, dtype, diffusion.scheduler)
        use_sdpa(pipe)
        if diffusion.compile and device.type == "cuda":
            pipe.image_unet = torch.compile(pipe.image_unet)
        model_batch_size = diffusion.model_batch_size or (batch_size if device.type == "cuda" else 1)
        log.info(
            "Versatile Diffusion image variations: %s, %s, %s, %d steps, guidance %.1f",
            diffusion.model, type(pipe.scheduler).__name__, dtype, diffusion.inference_steps,
            diffusion.guidance_scale,
        )  # fmt: skip
        return cls(
            pipe,
            device,
            diffusion.inference_steps,
            diffusion.guidance_scale,
            diffusion.height,
            diffusion.width,
            diffusion.num_variations,
            model_batch_size,
        )

    def generate(self, images: list[np.ndarray], seeds: list[list[int]]) -> torch.Tensor:
        """B×V×3×H×W in [0, 1]; variation ``v`` of image ``b`` starts from the noise of ``seeds[b][v]``.

        The model always sees exactly ``model_batch_size`` images (a short chunk is padded with copies of
        its last image): kernels then run on the same shapes however the work was split, so an image's
        bytes depend only on the image, its seeds and ``model_batch_size``.
        """
        outputs = []
        size = self.model_batch_size
        for start in range(0, len(images), size):
            chunk, chunk_seeds = images[start : start + size], seeds[start : start + size]
            real = len(chunk)
            chunk = chunk + [chunk[-1]] * (size - real)
            chunk_seeds = chunk_seeds + [chunk_seeds[-1]] * (size - real)
            outputs.append(self._run(chunk, chunk_seeds)[:real])
        return torch.cat(outputs)

    def _run(self, images: list[np.ndarray], seeds: list[list[int]]) -> torch.Tensor:
        # The pipeline repeats each image's embedding num_images_per_prompt times in a row, so the
        # generators are listed image by image, variation by variation.
        generators = [torch.Generator("cpu").manual_seed(seed) for per_image in seeds for seed in per_image]
        out = self.pipe(
            [Image.fromarray(image) for image in images],
            height=self.height,
            width=self.width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            num_images_per_prompt=self.num_variations,
            generator=generators,
            output_type="pt",
        ).images
        return out.float().reshape(len(images), self.num_variations, *out.shape[1:])
