"""Diffusion pipelines with random weights, for tests and benchmarks (never for real variations).

``tiny`` pipelines are a few MB and run on a CPU in milliseconds per step; ``full`` ones have the released
architectures, so that speed and memory can be measured without downloading weights. Saved with
``save_pretrained``, either loads through exactly the same code path as the real checkpoint. One module per
model family; ``FAMILIES`` maps a ``diffusion.backend`` name to its builder, which returns the pipelines keyed by
the ``diffusion`` key that names them (``model``, and ``prior_model`` for Kandinsky).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.random_pipelines import ddpm, kandinsky, stable_diffusion, versatile_diffusion

FAMILIES = {
    "versatile_diffusion": versatile_diffusion.build,
    "sd_image_variations": stable_diffusion.build_image_variations,
    "sd_img2img": stable_diffusion.build_img2img,
    "stable_unclip": stable_diffusion.build_unclip,
    "kandinsky22": kandinsky.build,
    "ddpm_sdedit": ddpm.build,
}


def build_random_pipelines(backend: str, size: str = "tiny", seed: int = 0, layout: str = "pipeline") -> dict:
    """``{diffusion key: pipeline}`` for ``backend``; ``layout``: ``pipeline`` (what loads) or ``hub`` (the repo)."""
    if backend not in FAMILIES:
        raise ValueError(f"no random pipeline for backend '{backend}'; known: {', '.join(FAMILIES)}")
    return FAMILIES[backend](size=size, seed=seed, layout=layout)


def build_random_pipeline(size: str = "tiny", seed: int = 0, backend: str = "versatile_diffusion"):
    """The ``diffusion.model`` pipeline of ``backend`` (default: Versatile Diffusion's image variations)."""
    return build_random_pipelines(backend, size, seed)["model"]


def save_random_models(
    backend: str, folder: Path, size: str = "tiny", seed: int = 0, layout: str = "pipeline", dtype=torch.float32
) -> dict[str, str]:
    """Save ``backend``'s random pipelines under ``folder``; returns the ``diffusion`` keys pointing at them."""
    keys = {}
    for key, pipe in build_random_pipelines(backend, size, seed, layout).items():
        target = Path(folder) / key
        (pipe if dtype == torch.float32 else pipe.to(dtype)).save_pretrained(target)
        keys[key] = str(target)
    return keys
