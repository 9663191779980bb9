"""What every trigger shares: one entry point for both image kinds, each checked before it is touched."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel


class Trigger:
    """Calls ``apply_uint8`` on H×W×3 uint8 arrays and ``apply_float`` on 3×H×W float tensors in [0, 1]."""

    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise TypeError(f"expected an H×W×3 uint8 array, got {image.dtype} {image.shape}")
            return self.apply_uint8(image)
        if isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise TypeError(f"expected a 3×H×W float tensor, got {image.dtype} {tuple(image.shape)}")
            return self.apply_float(image)
        raise TypeError(f"{type(self).__name__} takes a numpy array or a torch tensor, not {type(image).__name__}")

    @classmethod
    def from_params(cls, params: BaseModel | dict) -> Trigger:
        """The trigger a config block describes: its validated ``Params``, or a mapping of their values."""
        return cls(**(params.model_dump() if isinstance(params, BaseModel) else dict(params)))

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def check_image_size(attack: str, size: int, height: int, width: int) -> None:
    """A trigger made for ``size × size`` images refuses others, naming the key that sets its size."""
    if (height, width) != (size, size):
        raise ValueError(
            f"{attack} trigger is {size}×{size} but the image is {height}×{width}; "
            f"set backdoor.{attack}.image_size to the size the trigger is applied at"
        )
