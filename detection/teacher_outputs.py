"""The teacher's logits on every source and its variations, and its penultimate-layer features on the sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datasets.image_folder import read_rgb
from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.image_tensors import to_float_tensor
from utils.progress import progress


@dataclass
class TeacherOutputs:
    source_logits: torch.Tensor  # (N, C)
    variation_logits: torch.Tensor  # (N, K, C)
    features: torch.Tensor  # (N, D): the input of the classifier's last linear layer on the sources


class SourcesAndVariations(Dataset):
    """Image ``i``: its source as the teacher saw it and its K variations, at the teacher's input size."""

    def __init__(self, sources: PoisonedImageFolder, variation_paths: list[list[Path]]):
        self.sources, self.variation_paths = sources, variation_paths

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.sources.image_size
        variations = [to_float_tensor(read_rgb(path, size)) for path in self.variation_paths[i]]
        return self.sources.load(i).image, torch.stack(variations)


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The classifier head: the last ``nn.Linear`` registered in the model (``fc`` of a ResNet, ``head`` of a ViT)."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


@torch.inference_mode()
def teacher_outputs(
    model: nn.Module, data: SourcesAndVariations, device: torch.device, batch_size: int = 128, num_workers: int = 0
) -> TeacherOutputs:
    """One pass over the training set; the model is the frozen teacher (eval mode)."""
    model = model.to(device).eval()
    captured: list[torch.Tensor] = []
    head = last_linear(model)
    hook = head.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].flatten(1))) if head else None
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    sources, variations, features = [], [], []
    try:
        for images, varied in progress(loader, desc="detection: teacher on sources and variations", unit="batch"):
            captured.clear()
            logits = model(images.to(device)).float()
            features.append((captured[0] if captured else logits).float().cpu())
            sources.append(logits.cpu())
            b, k = varied.shape[:2]
            varied_logits = model(varied.flatten(0, 1).to(device)).float()
            variations.append(varied_logits.view(b, k, -1).cpu())
    finally:
        if hook is not None:
            hook.remove()
    return TeacherOutputs(torch.cat(sources), torch.cat(variations), torch.cat(features))
