"""Kandinsky 2.2: the prior repository's CLIP ViT-bigG/14 image encoder embeds the image, the decoder renders it.

Of the prior repository (``prior_model``) only the image encoder and its processor are fetched and loaded; the
prior transformer and text encoder, which map text to image embeddings, are not needed for variations. The
decoder (``KandinskyV22Pipeline``: UNet + MoVQ, from ``model``) is guided against the embedding of a zero
image, as in diffusers' Kandinsky prior. Its MoVQ renders sides in multiples of 64 pixels.
"""

from __future__ import annotations

from typing import Literal

import torch
from PIL import Image
from pydantic import Field

from utils.errors import UserError
from utils.limits import MAX_IMAGE_SIZE
from variations.backends.base import GuidedSection, SourceBatch
from variations.backends.diffusers_backend import DiffusersBackend
from variations.backends.diffusers_pipeline import PipelineRequest, load, model_index


class Kandinsky22Section(GuidedSection):
    backend: Literal["kandinsky22"] = "kandinsky22"
    model: str = "kandinsky-community/kandinsky-2-2-decoder"  # the decoder
    prior_model: str = "kandinsky-community/kandinsky-2-2-prior"  # its image encoder embeds the sources
    prior_revision: str | None = None  # hub branch, tag or commit of prior_model; None: main
    # Pixels, multiples of 64. 768, not diffusers' KandinskyV22Pipeline default of 512: the 2.2 decoder's model
    # card's examples render at 768×768, the size its authors show the model at.
    height: int = Field(768, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)
    width: int = Field(768, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)
    inference_steps: int = Field(100, gt=0)  # decoder denoising steps (the pipeline's default)
    guidance_scale: float = Field(4.0, ge=0.0)  # against a zero image's embedding (the pipeline's default)


class Kandinsky22Backend(DiffusersBackend):
    Section = Kandinsky22Section
    pipeline = "KandinskyV22Pipeline"
    decoder = "movq"
    title = "Kandinsky 2.2 image variations"

    @classmethod
    def check(cls, pipe, settings: Kandinsky22Section) -> None:
        side = pipe.movq_scale_factor**2  # the decoder rounds sides up to this
        for key in ("height", "width"):
            if getattr(settings, key) % side:
                raise UserError(
                    f"diffusion.{key}: {getattr(settings, key)}, but this Kandinsky decoder renders multiples of "
                    f"{side} pixels"
                )

    @classmethod
    def prior_request(cls, settings: Kandinsky22Section) -> PipelineRequest:
        from diffusers import KandinskyV22PriorPipeline

        return PipelineRequest(
            KandinskyV22PriorPipeline,
            settings.prior_model,
            key="diffusion.prior_model",
            revision=settings.prior_revision,
            skip=("prior", "text_encoder", "tokenizer", "scheduler"),  # text → image embedding: not needed
        )

    @classmethod
    def load(cls, settings: Kandinsky22Section, device: torch.device, batch_size: int):
        # Both model indexes are checked before any weights are read: a wrong prior_model is refused in
        # seconds, not after the decoder's gigabytes have loaded. (The decoder's is checked by super().load.)
        prior_request = cls.prior_request(settings)
        prior_index = model_index(prior_request)
        backend = super().load(settings, device, batch_size)
        backend.prior = load(prior_request, device, backend.pipe.dtype, index=prior_index)
        if backend.prior.hub_revision is not None:
            backend.numerics["prior_revision"] = backend.prior.hub_revision
        with torch.no_grad():
            backend.zero_embedding = backend.prior.get_zero_embed(device=device)
        return backend

    @torch.no_grad()
    def generate(self, batch: SourceBatch) -> torch.Tensor:
        settings, prior = self.settings, self.prior
        pixels = prior.image_processor([Image.fromarray(image) for image in batch.images], return_tensors="pt")
        embeddings = prior.image_encoder(pixels.pixel_values.to(self.device, prior.image_encoder.dtype)).image_embeds
        rows = len(batch) * settings.num_variations
        # one row per (image, variation), image by image, like the generators
        latents = self.pipe(
            image_embeds=embeddings.repeat_interleave(settings.num_variations, dim=0),
            negative_image_embeds=self.zero_embedding.expand(rows, -1),
            output_type="latent",
            **self.sampling(batch),
        ).images
        # decoded here: the pipeline's "pt" output skips the [-1, 1] → [0, 1] step its other outputs take
        images = self.pipe.movq.decode(latents, force_not_quantize=True).sample
        return self.as_variations(batch, (images * 0.5 + 0.5).clamp(0, 1))
