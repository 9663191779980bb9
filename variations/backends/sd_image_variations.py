"""Lambda Labs' Stable Diffusion image variations: the CLIP ViT-L/14 image embedding → an SD 1.x UNet.

``StableDiffusionImageVariationPipeline``: the UNet was fine-tuned to take the projected CLIP image embedding
(one token) in place of the text embedding; guidance is against a zero embedding. The model card stresses that
the model was trained on images resized to 224×224 *without* anti-aliasing (bicubic, no centre crop), so the
images are prepared that way here instead of by the repository's CLIP processor. The safety checker in the
repository is neither downloaded nor run (it would black out flagged images in a training set).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from variations.backends.base import GuidedSection, SourceBatch
from variations.backends.diffusers_backend import DiffusersBackend
from variations.backends.diffusers_pipeline import PipelineRequest, without_safety_checker


class SDImageVariationsSection(GuidedSection):
    backend: Literal["sd_image_variations"] = "sd_image_variations"
    model: str = "lambdalabs/sd-image-variations-diffusers"
    # against a zero image embedding (the model card's value); ≤ 1: off. Field keeps GuidedSection's bound.
    guidance_scale: float = Field(3.0, ge=0.0)


class SDImageVariationsBackend(DiffusersBackend):
    Section = SDImageVariationsSection
    title = "Stable Diffusion image variations"

    @classmethod
    def request(cls, settings: SDImageVariationsSection) -> PipelineRequest:
        from diffusers import StableDiffusionImageVariationPipeline

        return without_safety_checker(StableDiffusionImageVariationPipeline, settings.model)

    def clip_input(self, images: list[np.ndarray]) -> torch.Tensor:
        """B×3×S×S normalised CLIP input, resized as the model was trained (bicubic, no anti-aliasing)."""
        side = self.pipe.image_encoder.config.image_size
        processor = self.pipe.feature_extractor
        pixels = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float() / 255
        pixels = tvf.resize(pixels, [side, side], interpolation=InterpolationMode.BICUBIC, antialias=False)
        return tvf.normalize(pixels, processor.image_mean, processor.image_std)

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        out = self.pipe(
            self.clip_input(batch.images),
            num_images_per_prompt=self.settings.num_variations,  # repeats each embedding in a row: image by image
            output_type="pt",
            **self.sampling(batch),
        ).images
        return self.as_variations(batch, out)
