"""SDEdit with any Stable Diffusion 1.x/2.x checkpoint: re-noise the image part-way, denoise it under a prompt.

``StableDiffusionImg2ImgPipeline``: the source is encoded by the VAE, noised to ``strength`` of the diffusion
(0.5: half-way; 1: nearly pure noise) and denoised in ``strength × inference_steps`` steps, guided by
``prompt``, in which ``{class_name}`` is the class folder the image is filed under — for a poisoned image the
target class, exactly as a user's own poisoned data would label it. Unless ``height``/``width`` are set, the model
renders at its native size (the UNet's ``sample_size`` × the VAE's scale: 512 px for SD 1.x, 768 for SD 2.x; the
shorter side, for sources that are not square) and the result is resized back to the source's size: SD draws
noise on the 4×4 latents of a 32-px CIFAR-10 image. Set, ``height``/``width`` are both the render and the output
size; below ``MIN_SIDE`` pixels a warning says so. The checkpoint's safety checker is neither downloaded nor run.
"""

from __future__ import annotations

import logging
import string
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import Field, field_validator, model_validator

from utils.limits import MAX_IMAGE_SIZE
from variations.backends.base import GuidedSection, SourceBatch, output_pixels
from variations.backends.diffusers_backend import DiffusersBackend
from variations.backends.diffusers_pipeline import PipelineRequest, without_safety_checker

log = logging.getLogger(__name__)
MIN_SIDE = 256  # pixels: below this, SD 1.x/2.x (trained at 512/768) draws little but noise and blur


class SDImg2ImgSection(GuidedSection):
    backend: Literal["sd_img2img"] = "sd_img2img"
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    # pixels, rendered and written; None: rendered at the model's native size, written at the source's
    height: int | None = Field(None, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)
    width: int | None = Field(None, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)
    strength: float = Field(0.5, gt=0.0, le=1.0)  # share of the diffusion re-noised (SDEdit's t0)
    prompt: str = "a photo of a {class_name}"  # {class_name}: the image's class folder as the dataset files it
    negative_prompt: str | None = None  # what guidance steers away from; None: the empty prompt

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, prompt: str) -> str:
        unknown = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None} - {"class_name"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; only {{class_name}}")
        return prompt

    @model_validator(mode="after")
    def _consistent(self):
        if (self.height is None) != (self.width is None):
            raise ValueError("height and width: set both, or neither to render at the model's native size")
        if int(self.inference_steps * self.strength) < 1:
            raise ValueError(
                f"strength {self.strength} × inference_steps {self.inference_steps} leaves no denoising step; "
                "raise either"
            )
        return self


class SDImg2ImgBackend(DiffusersBackend):
    Section = SDImg2ImgSection
    title = "Stable Diffusion img2img (SDEdit)"

    @classmethod
    def request(cls, settings: SDImg2ImgSection) -> PipelineRequest:
        from diffusers import StableDiffusionImg2ImgPipeline

        # SD 1.x/2.x checkpoints are published as text-to-image pipelines; the feature extractor only feeds the
        # safety checker, the image encoder only IP-adapters
        return without_safety_checker(
            StableDiffusionImg2ImgPipeline,
            settings.model,
            "feature_extractor",
            "image_encoder",
            accepts=("StableDiffusionPipeline",),
        )

    @staticmethod
    def native_side(pipe) -> int:
        """Pixels: the side the checkpoint was trained at (latent ``sample_size`` × the VAE's scale factor)."""
        sample = pipe.unet.config.sample_size
        return (sample if isinstance(sample, int) else min(sample)) * pipe.vae_scale_factor

    @classmethod
    def check(cls, pipe, settings: SDImg2ImgSection) -> None:
        native = cls.native_side(pipe)
        if settings.height is None:
            log.info("sd_img2img: rendering at the model's native %d px, written at the source's size", native)
        if min(settings.height or native, settings.width or native) < MIN_SIDE:
            shown = f"{settings.height}×{settings.width}" if settings.height else f"{native}×{native} (native)"
            advice = (
                f"; leave diffusion.height/width unset to render at its native {native} px" if settings.height else ""
            )
            log.warning(
                "sd_img2img renders at %s, below %d px: Stable Diffusion draws mostly noise there%s",
                shown,
                MIN_SIDE,
                advice,
            )

    def render_pixels(self) -> int:
        native = self.native_side(self.pipe)
        return output_pixels(self.settings) if self.settings.height is not None else native * native

    def sizes(self, batch: SourceBatch) -> tuple[tuple[int, int], tuple[int, int]]:
        """(output size, size the model renders at): the configured size for both, else the source's size and the
        model's native one (for its shorter side, the aspect kept); the VAE needs multiples of its scale factor."""
        shapes = {image.shape[:2] for image in batch.images}
        if len(shapes) > 1:
            raise ValueError(f"sd_img2img: one model batch holds images of several sizes {sorted(shapes)}")
        (source,) = shapes
        settings, factor = self.settings, self.pipe.vae_scale_factor
        if settings.height is not None:
            output = render = (settings.height, settings.width)
        else:
            output, scale = source, self.native_side(self.pipe) / min(source)
            render = tuple(round(side * scale) for side in source)
        return output, tuple(-(-side // factor) * factor for side in render)

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        settings = self.settings
        output, render = self.sizes(batch)
        images = [Image.fromarray(image).resize(render[::-1], Image.Resampling.BICUBIC) for image in batch.images]
        prompts = [settings.prompt.format(class_name=name) for name in batch.class_names]
        # one row per (image, variation), image by image: the pipeline's own num_images_per_prompt would pair
        # the repeated prompts with the images in another order
        count = len(batch) * settings.num_variations
        sampling = self.sampling(batch)
        del sampling["height"], sampling["width"]  # the pipeline renders at the (resized) source's size
        out = self.pipe(
            prompt=self.per_variation(prompts),
            image=self.per_variation(images),
            strength=settings.strength,
            negative_prompt=[settings.negative_prompt] * count if settings.negative_prompt else None,
            output_type="pt",
            **sampling,
        ).images
        if render != output:
            out = F.interpolate(out.float(), size=output, mode="bicubic", antialias=True).clamp(0, 1)
        return self.as_variations(batch, out)
