"""The ``classical`` baseline: re-render each image with plain image processing, no generative model.

Per image and variation, seeded by the same per-variation seed as the diffusion backends:

1. downscale to ``downscale`` × the output side (bicubic, antialiased) and enlarge back to the output size;
2. Gaussian blur with ``blur_sigma`` pixels;
3. colour jitter: brightness, contrast and saturation each scaled by a factor in 1 ± ``color_jitter``;
4. additive Gaussian noise with standard deviation ``noise_std`` (in [0, 1] units);
5. JPEG re-encoding at ``jpeg_quality``.

It shows what purification *without* a generative model achieves, for machines without diffusion
weights; results made with it are a baseline, not the method.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from pydantic import Field

from utils.section import Section
from variations.backends.base import GenerationSection, SourceBatch


class ClassicalParams(Section):
    """``diffusion.classical``: the image-processing chain."""

    downscale: float = Field(0.5, gt=0.0, le=1.0)  # shrink to this fraction of the side, then enlarge back
    blur_sigma: float = Field(1.0, ge=0.0)  # Gaussian blur, pixels at output size
    jpeg_quality: int = Field(60, ge=1, le=100)  # JPEG re-encoding quality
    color_jitter: float = Field(0.05, ge=0.0, le=0.5)  # max relative change of brightness/contrast/saturation
    noise_std: float = Field(0.02, ge=0.0, le=0.5)  # additive Gaussian noise, in [0, 1] units


class ClassicalSection(GenerationSection):
    backend: Literal["classical"] = "classical"
    classical: ClassicalParams = Field(default_factory=ClassicalParams)


class ClassicalBackend:
    Section = ClassicalSection

    def __init__(self, settings: ClassicalSection, device: torch.device):
        self.settings = settings
        self.device = device
        self.model_batch_size = None  # one image at a time: any batch gives the same bytes
        self.numerics = {}  # plain CPU image processing: nothing beyond the config decides the bytes

    @classmethod
    def load(cls, settings: ClassicalSection, device: torch.device, batch_size: int = 1) -> ClassicalBackend:
        return cls(settings, device)

    def rerender(self, image: np.ndarray, seed: int) -> np.ndarray:
        """One variation of an H×W×3 uint8 image, as a ``height × width × 3`` uint8 image."""
        height, width, p = self.settings.height, self.settings.width, self.settings.classical
        rng = np.random.default_rng(seed)
        small = (max(1, round(width * p.downscale)), max(1, round(height * p.downscale)))
        out = Image.fromarray(image).resize(small, Image.Resampling.BICUBIC, reducing_gap=None)
        out = out.resize((width, height), Image.Resampling.BICUBIC)
        if p.blur_sigma > 0:
            out = out.filter(ImageFilter.GaussianBlur(p.blur_sigma))
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            out = enhancer(out).enhance(1 + rng.uniform(-p.color_jitter, p.color_jitter))
        pixels = np.asarray(out, dtype=np.float64) + rng.normal(0, p.noise_std * 255, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=p.jpeg_quality)
        buffer.seek(0)
        return np.array(Image.open(buffer).convert("RGB"))

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        """B×V×3×H×W in [0, 1]."""
        pixels = np.stack(
            [
                np.stack([self.rerender(image, seed) for seed in per_image])
                for image, per_image in zip(batch.images, batch.seeds, strict=True)
            ]
        )
        return torch.from_numpy(pixels).permute(0, 1, 4, 2, 3).float().div(255).to(self.device)
