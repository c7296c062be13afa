"""The ResNet backbones of SGDN, torchvision-style module names (as the published checkpoints).

Output stride 16: strides 1, 2, 2, 1 and dilations 1, 1, 1, 2 per stage, ``layer4`` a
multi-grid unit. ``BACKBONES`` names the variants an ``SGDNConfig`` picks from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Output stride 16: no stride in layer4, which dilates instead (DeepLab).
_LAYER_STRIDES = (1, 2, 2, 1)
_LAYER_DILATIONS = (1, 1, 1, 2)


@dataclass(frozen=True)
class BackboneSpec:
    """Shape of one ResNet variant.

    ``layer4_grid`` holds the multi-grid multipliers of ``layer4``'s blocks: each block's
    dilation is the multiplier times ``layer4``'s dilation 2 (published: 1, 2, 4 -> 2, 4, 8).
    """

    block: str  # "bottleneck" (expansion 4) or "basic" (expansion 1)
    stem_channels: int
    planes: tuple[int, int, int, int]
    blocks: tuple[int, int, int]  # layer1 .. layer3
    layer4_grid: tuple[int, ...]

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def out_channels(self) -> int:
        return self.planes[3] * self.expansion

    @property
    def low_level_channels(self) -> int:
        return self.planes[0] * self.expansion

    @property
    def layer2_channels(self) -> int:
        return self.planes[1] * self.expansion


BACKBONES: dict[str, BackboneSpec] = {
    "resnet101": BackboneSpec("bottleneck", 64, (64, 128, 256, 512), (3, 4, 23), (1, 2, 4)),
    "resnet50": BackboneSpec("bottleneck", 64, (64, 128, 256, 512), (3, 4, 6), (1, 2, 4)),
    "resnet18": BackboneSpec("basic", 64, (64, 128, 256, 512), (2, 2, 2), (1, 2)),
    "light": BackboneSpec("basic", 16, (16, 32, 64, 128), (2, 2, 2), (1, 2)),
    "tiny": BackboneSpec("basic", 16, (16, 24, 32, 48), (1, 1, 1), (1, 2)),
}


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 with stride and dilation, 1x1 x4), torchvision names."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3), dilated in both convolutions."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNetBackbone(nn.Module):
    """ResNet at output stride 16; returns (deepest feature, layer1 feature at stride 4)."""

    def __init__(self, spec: BackboneSpec, input_channels: int) -> None:
        super().__init__()
        block = Bottleneck if spec.block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(input_channels, spec.stem_channels, 7, stride=2, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(spec.stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = spec.stem_channels
        layers = []
        for index, planes in enumerate(spec.planes):
            if index < 3:
                dilations = (_LAYER_DILATIONS[index],) * spec.blocks[index]
            else:
                dilations = tuple(grid * _LAYER_DILATIONS[3] for grid in spec.layer4_grid)
            layers.append(_make_layer(block, in_channels, planes, _LAYER_STRIDES[index],
                                      dilations))
            in_channels = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low_level = self.layer1(x)
        x = self.layer4(self.layer3(self.layer2(low_level)))
        return x, low_level


def _make_layer(block: type[Bottleneck] | type[BasicBlock], in_channels: int, planes: int,
                stride: int, dilations: tuple[int, ...]) -> nn.Sequential:
    """One ResNet stage; only its first block strides (and has the projection shortcut)."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels))
    blocks = [block(in_channels, planes, stride, dilations[0], downsample)]
    blocks += [block(out_channels, planes, 1, dilation, None) for dilation in dilations[1:]]
    return nn.Sequential(*blocks)
