"""Backdoor triggers. The registry maps the key used under ``backdoor:`` in a config to its class."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from pydantic import BaseModel

from backdoor_attacks.blended_backdoor import BlendedBackdoor
from backdoor_attacks.patch_backdoor import PatchBackdoor


class Attack(Protocol):
    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor: ...


ATTACKS: dict[str, type] = {
    "PatchBackdoor": PatchBackdoor,
    "BlendedBackdoor": BlendedBackdoor,
}


def build_attack(name: str, params: BaseModel | dict) -> Attack:
    """Instantiate the attack registered as ``name`` with its (validated) parameters."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack '{name}'; valid attacks: {', '.join(sorted(ATTACKS))}")
    kwargs = params.model_dump() if isinstance(params, BaseModel) else dict(params)
    return ATTACKS[name](**kwargs)


__all__ = ["ATTACKS", "Attack", "BlendedBackdoor", "PatchBackdoor", "build_attack"]
