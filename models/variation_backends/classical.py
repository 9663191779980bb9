"""The ``classical`` baseline: re-render each image with plain image processing, no generative model.

Per image and variation, seeded by the same per-variation seed as the diffusion backend:

1. downscale to ``downscale`` × the output side (bicubic, antialiased) and enlarge back to the output size;
2. Gaussian blur with ``blur_sigma`` pixels;
3. colour jitter: brightness, contrast and saturation each scaled by a factor in 1 ± ``color_jitter``;
4. additive Gaussian noise with standard deviation ``noise_std`` (in [0, 1] units);
5. JPEG re-encoding at ``jpeg_quality``.

It shows what purification *without* a generative model achieves, for machines without the Versatile
Diffusion weights; results made with it are a baseline, not the method.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter


class ClassicalBackend:
    def __init__(self, height: int, width: int, num_variations: int, params, device: torch.device):
        self.height = height
        self.width = width
        self.num_variations = num_variations
        self.params = params
        self.device = device
        self.numerics = {}  # plain CPU image processing: nothing beyond the config decides the bytes

    @classmethod
    def from_config(cls, diffusion, device: torch.device, batch_size: int = 1) -> ClassicalBackend:
        return cls(diffusion.height, diffusion.width, diffusion.num_variations, diffusion.classical, device)

    def rerender(self, image: np.ndarray, seed: int) -> np.ndarray:
        """One variation of an H×W×3 uint8 image, as a ``height × width × 3`` uint8 image."""
        p = self.params
        rng = np.random.default_rng(seed)
        small = (max(1, round(self.width * p.downscale)), max(1, round(self.height * p.downscale)))
        out = Image.fromarray(image).resize(small, Image.Resampling.BICUBIC, reducing_gap=None)
        out = out.resize((self.width, self.height), Image.Resampling.BICUBIC)
        if p.blur_sigma > 0:
            out = out.filter(ImageFilter.GaussianBlur(p.blur_sigma))
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            out = enhancer(out).enhance(1 + rng.uniform(-p.color_jitter, p.color_jitter))
        pixels = np.asarray(out, dtype=np.float64) + rng.normal(0, p.noise_std * 255, (self.height, self.width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=p.jpeg_quality)
        buffer.seek(0)
        return np.array(Image.open(buffer).convert("RGB"))

    def generate(self, images: list[np.ndarray], seeds: list[list[int]]) -> torch.Tensor:
        """B×V×3×H×W in [0, 1]."""
        batch = np.stack(
            [
                np.stack([self.rerender(image, seed) for seed in per_image])
                for image, per_image in zip(images, seeds, strict=True)
            ]
        )
        return torch.from_numpy(batch).permute(0, 1, 4, 2, 3).float().div(255).to(self.device)
