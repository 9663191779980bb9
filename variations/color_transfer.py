"""Colour transfer from the source images to their variations, batched on the device.

- ``mean_std`` (the reference behaviour): per RGB channel, shift and scale the variation's mean and
  standard deviation to the source's, then clip to the valid range.
- ``lab``: the same statistics matched in CIE Lab (Reinhard et al., 2001), via kornia.

Sources and variations may differ in size: only per-image channel statistics are compared. A channel
with zero variance in the variation takes the source's mean (no division by zero, no NaN).
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab

EPS = 1e-6
MODES = ("none", "mean_std", "lab")


def _match_statistics(target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per image and channel: give ``target`` (B×C×H×W) the mean and std of ``reference`` (B×C×h×w)."""
    t_mean, t_std = target.mean((2, 3), keepdim=True), target.std((2, 3), correction=0, keepdim=True)
    r_mean, r_std = reference.mean((2, 3), keepdim=True), reference.std((2, 3), correction=0, keepdim=True)
    scale = torch.where(t_std > EPS, r_std / t_std.clamp_min(EPS), torch.zeros_like(t_std))
    return (target - t_mean) * scale + r_mean


def transfer_colors(variations: torch.Tensor, sources: torch.Tensor, mode: str) -> torch.Tensor:
    """Colour-correct ``variations`` (B×3×H×W floats in [0, 1]) towards ``sources`` (B×3×h×w in [0, 1])."""
    if mode == "none":
        return variations
    dtype = torch.promote_types(variations.dtype, torch.float32)  # float64 stays float64
    variations, sources = variations.to(dtype), sources.to(dtype)
    if mode == "mean_std":
        return _match_statistics(variations, sources).clamp(0, 1)
    if mode == "lab":
        return lab_to_rgb(_match_statistics(rgb_to_lab(variations), rgb_to_lab(sources)), clip=True)
    raise ValueError(f"unknown colour transfer '{mode}'; valid: {', '.join(MODES)}")
