"""ResNets for 32-pixel images, built by this project: a 3×3 stride-1 stem and no max-pool, so a CIFAR image
keeps its 32×32 resolution into the first block (an ImageNet stem shrinks it to 8×8 there, and to 1×1 at the
end).

- ``resnet20`` … ``resnet110``: He et al. (2016), "Deep Residual Learning", section 4.2 — three stages of 16, 32
  and 64 channels at 32, 16 and 8 pixels, ``n`` two-convolution blocks each (depth 6n + 2), parameter-free
  shortcuts (option A: subsample by 2 and pad the new channels with zeros). ResNet-20 has 0.27 M parameters.
- ``preact_resnet18``: the pre-activation ResNet-18 BackdoorBench trains on CIFAR-10 (64–512 channels, two
  blocks per stage, BN → ReLU → conv inside each block, a 1×1 projection of the pre-activated input where the
  shape changes, and no BN → ReLU after the last block, as in their model); 11.17 M parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: every second pixel, the missing channels zero (adds no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    """conv → BN → ReLU → conv → BN, plus the shortcut, then ReLU (post-activation, as in He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
        self.conv2, self.bn2 = conv3x3(out_channels, out_channels), nn.BatchNorm2d(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN → ReLU → conv, twice, plus the shortcut; a 1×1 convolution of the pre-activated input where the shape
    changes (He et al. 2016b, "Identity Mappings in Deep Residual Networks")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_channels), conv3x3(in_channels, out_channels, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_channels), conv3x3(out_channels, out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.projection = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False) if changes_shape else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(activated)
        out = self.conv1(activated)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class CifarResNet(nn.Module):
    """A 3×3 stride-1 stem, stages that halve the resolution after the first, global average pooling, a linear
    head. ``stem`` and ``stages`` are separate attributes so their feature maps can be inspected."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, width: int, num_classes: int):
        super().__init__()
        self.stem, self.stages = stem, stages
        self.pool = nn.AdaptiveAvgPool2d(1)  # adaptive: other image sizes work too
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _stages(block: Callable[[int, int, int], nn.Module], widths: tuple[int, ...], blocks: int, start: int):
    stages, in_channels = [], start
    for index, width in enumerate(widths):
        strides = [1 if index == 0 else 2] + [1] * (blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(in_channels, width, stride))
            in_channels = width
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages)


def he_cifar_resnet(depth: int, num_classes: int) -> CifarResNet:
    """He et al.'s CIFAR ResNet of ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110)."""
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2, not {depth}")
    stem = nn.Sequential(conv3x3(3, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
    model = CifarResNet(stem, _stages(BasicBlock, (16, 32, 64), (depth - 2) // 6, 16), 64, num_classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):  # He initialisation, as the paper trains from scratch with it
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def preact_resnet18(num_classes: int) -> CifarResNet:
    """BackdoorBench's CIFAR PreAct-ResNet18: its stem is the bare 3×3 convolution (BN-ReLU open each block)."""
    return CifarResNet(conv3x3(3, 64), _stages(PreActBlock, (64, 128, 256, 512), 2, 64), 512, num_classes)


# name → builder(num_classes); listed in the model registry's error message
CIFAR_MODELS: dict[str, Callable[[int], nn.Module]] = {
    **{
        f"resnet{depth}": (lambda classes, depth=depth: he_cifar_resnet(depth, classes))
        for depth in (20, 32, 44, 56, 110)
    },
    "preact_resnet18": preact_resnet18,
}
