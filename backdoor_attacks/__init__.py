"""Backdoor triggers. The registry maps the key used under ``backdoor:`` in a config to its class."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from pydantic import BaseModel

from backdoor_attacks.blended_backdoor import BlendedBackdoor
from backdoor_attacks.bpp_backdoor import BppBackdoor
from backdoor_attacks.patch_backdoor import PatchBackdoor
from backdoor_attacks.sig_backdoor import SIGBackdoor
from backdoor_attacks.wanet_backdoor import WaNetBackdoor


class Attack(Protocol):
    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor: ...


ATTACKS: dict[str, type] = {
    "PatchBackdoor": PatchBackdoor,
    "BlendedBackdoor": BlendedBackdoor,
    "SIGBackdoor": SIGBackdoor,
    "WaNetBackdoor": WaNetBackdoor,
    "BppBackdoor": BppBackdoor,
}


def build_attack(name: str, params: BaseModel | dict) -> Attack:
    """Instantiate the attack registered as ``name`` with its (validated) parameters."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack '{name}'; valid attacks: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name].from_params(params)


def cross_ratio(attack: Attack) -> float:
    """Cross samples the attack asks for per poisoned sample (WaNet's noise mode); 0 for the others.

    An attack with a ratio above 0 also has ``cross(image, generator)``: the image with a randomised trigger,
    which the poison plan applies to that many other training images, keeping their labels.
    """
    return float(getattr(attack, "cross_ratio", 0.0))


__all__ = [
    "ATTACKS",
    "Attack",
    "BlendedBackdoor",
    "BppBackdoor",
    "PatchBackdoor",
    "SIGBackdoor",
    "WaNetBackdoor",
    "build_attack",
    "cross_ratio",
]
