"""What the backends built on a diffusers pipeline share: load once per process, the numerics that decide the
bytes, SDPA and optional ``torch.compile`` for the denoiser, the latent decoder run in slices of rows with its
output in float32, and the (image, variation) layout of a call.

A backend subclass names its ``Section`` and the diffusers ``pipeline`` it loads (or says more in ``request``) and
generates; Kandinsky, which loads two pipelines, extends ``load``.
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from variations.backends.base import (
    DiffusersSection,
    GuidedSection,
    SourceBatch,
    default_decode_rows,
    default_model_batch_size,
    output_pixels,
)
from variations.backends.diffusers_pipeline import PipelineRequest, generators, load, resolve_dtype, use_sdpa

log = logging.getLogger(__name__)


def compiles(settings: DiffusersSection, device: torch.device) -> bool:
    """Whether the denoiser is compiled: ``diffusion.compile`` takes effect on CUDA only (on the CPU the key
    changes nothing, bytes included)."""
    return settings.compile and device.type == "cuda"


def decode_in_slices(decoder, rows: int) -> None:
    """Make ``decoder.decode`` (a VAE's or MoVQ's) decode at most ``rows`` latents per call, and return float32.

    Decoding a whole model call at once peaks at about 0.5 GiB per 512² row in fp16 (1.6 GiB per 768² MoVQ row):
    at 16 images × 4 variations that alone overflows an 80 GB card. The float32 output makes the pipelines'
    [-1, 1] → [0, 1] step run in float32: in bfloat16 it is off by up to a grey level.
    """
    from diffusers.models.autoencoders.vae import DecoderOutput

    decode = decoder.decode

    def sliced(latents, *args, **kwargs):
        outputs = [decode(part, *args, **kwargs) for part in latents.split(rows)]
        as_tuple = isinstance(outputs[0], tuple)
        samples = [out[0] if as_tuple else out.sample for out in outputs]
        sample = (samples[0] if len(samples) == 1 else torch.cat(samples)).float()
        return (sample,) if as_tuple else DecoderOutput(sample=sample)

    decoder.decode = sliced


class DiffusersBackend:
    Section: type[DiffusersSection]
    title: str  # for the log line
    pipeline: str  # the diffusers pipeline class loaded from settings.model, unless request() says more
    denoiser = "unet"  # the pipeline attribute run at every denoising step
    decoder: str | None = "vae"  # the pipeline attribute decoding latents to pixels; None: pixel-space model

    def __init__(self, pipe, settings: DiffusersSection, device: torch.device, model_batch_size: int):
        self.pipe = pipe
        self.settings = settings
        self.device = device
        self.model_batch_size = model_batch_size
        # what, besides the config, decides the bytes written (compared when a run resumes)
        self.numerics = {"dtype": str(pipe.dtype).removeprefix("torch."), "model_batch_size": model_batch_size}
        if self.decoder is not None:
            self.decode_rows = default_decode_rows(settings, self.render_pixels())
            decode_in_slices(getattr(pipe, self.decoder), self.decode_rows)
            if self.decode_rows < model_batch_size * settings.num_variations:
                # slicing can change the float rounding, as any batch shape can; recorded only when it slices, so
                # folders made without (all of them before this key existed) still resume
                self.numerics["decode_batch_size"] = self.decode_rows
        if compiles(settings, device):
            # compiled kernels fuse and reorder float operations, so the bytes can differ. Recorded only when on:
            # folders made without it (all of them before this key existed) then still resume, and toggling it
            # either way shows as a numerics change ("compile: None → True") and is refused.
            self.numerics["compile"] = True
        if pipe.hub_revision is not None:  # the hub commit loaded (local folders: none to record)
            self.numerics["revision"] = pipe.hub_revision

    def render_pixels(self) -> int:
        """Pixels of one image as the model renders it (the decoder's output)."""
        return output_pixels(self.settings)

    @classmethod
    def request(cls, settings) -> PipelineRequest:
        import diffusers  # here, not at import time: importing diffusers takes seconds

        return PipelineRequest(getattr(diffusers, cls.pipeline), settings.model)

    @classmethod
    def check(cls, pipe, settings) -> None:
        """Refuse settings the loaded model cannot honour (one line naming the key); nothing by default."""

    @classmethod
    def load(cls, settings, device: torch.device, batch_size: int):
        dtype = resolve_dtype(settings.dtype, device)
        request = dataclasses.replace(cls.request(settings), revision=settings.revision)
        pipe = load(request, device, dtype, settings.scheduler)
        cls.check(pipe, settings)
        use_sdpa(getattr(pipe, cls.denoiser))
        if compiles(settings, device):
            setattr(pipe, cls.denoiser, torch.compile(getattr(pipe, cls.denoiser)))
        log.info(
            "%s: %s, %s, %s, %d steps",
            cls.title,
            settings.model,
            type(pipe.scheduler).__name__,
            dtype,
            settings.inference_steps,
        )
        return cls(pipe, settings, device, default_model_batch_size(settings, device, batch_size))

    def sampling(self, batch: SourceBatch) -> dict:
        """The pipeline arguments every backend passes alike: output size, steps, guidance, and one generator per
        (image, variation), image by image."""
        settings = self.settings
        arguments = {
            "height": settings.height,
            "width": settings.width,
            "num_inference_steps": settings.inference_steps,
            "generator": generators(batch.seeds),
        }
        if isinstance(settings, GuidedSection):
            arguments["guidance_scale"] = settings.guidance_scale
        return arguments

    def per_variation(self, items: list) -> list:
        """``items`` (one per image) repeated for each variation, image by image: the generators' order."""
        return [item for item in items for _ in range(self.settings.num_variations)]

    def as_variations(self, batch: SourceBatch, images: torch.Tensor) -> torch.Tensor:
        """(B·V)×3×H×W images, image by image, as B×V×3×H×W floats."""
        return images.float().reshape(len(batch), self.settings.num_variations, *images.shape[1:])
