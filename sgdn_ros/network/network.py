"""SGDN (AFFGA-Net) in PyTorch, with the module names of the published checkpoints.

The layout follows the author's public code so that a published ResNet-101 ``state_dict``
(744 entries) loads with ``load_state_dict(strict=True)``:

- ``backbone`` (``sgdn_ros.network.backbone``): a torchvision-style ResNet at output stride
  16 (strides 1, 2, 2, 1; dilations 1, 1, 1, 2; ``layer4`` a multi-grid unit). It returns the
  deepest feature and ``layer1``'s.
- ``hasp``: four atrous conv-BN-ReLU branches (``hasp1_1`` .. ``hasp2_2``) fused by
  ``conv_small``, ``conv_big`` and ``conv_all``.
- ``decoder``: the three heads ``able_conv``, ``angle_conv``, ``width_conv`` at 1/4 resolution,
  each ending in a stride-2 transposed convolution (index 8) and a 1x1 convolution (index 10).
  ``conv_2``, ``conv_hasp_mid`` and ``conv_hasp_big`` are in every published checkpoint but
  unused by its forward pass; they are kept so that strict loading works.

The network returns logits ``(able, angle, width)`` at the input size; sigmoid and arg-max are
left to the decoding. ``upsample`` selects how every upsampling is done: ``"bilinear"``
(``align_corners=True``, as trained; TensorRT >= 8 parses it) or ``"nearest"`` (what TensorRT 7
could parse; the published ``sgdn.onnx`` was exported that way).

Other backbones reuse the same heads: ``resnet50``, ``resnet18`` and ``light``, a narrow
BasicBlock ResNet for CPUs and Jetsons. Widths other than the published ones scale the HASP
branches in proportion (published: ``hasp_channels`` = 256).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sgdn_ros.network.backbone import BACKBONES, BackboneSpec, ResNetBackbone

UPSAMPLE_MODES = ("bilinear", "nearest")
OUTPUT_STRIDE = 16
# Atrous rates of the HASP branches hasp1_1, hasp1_2, hasp2_1, hasp2_2 (the first is a 1x1).
_HASP_RATES = (1, 6, 12, 18)
_HEAD_DROPOUTS = (0.5, 0.1)
_HASP_DROPOUT = 0.5


class ModelConfigError(ValueError):
    """A network configuration that cannot be built."""


def _require_positive_int(name: str, value: object) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ModelConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SGDNConfig:
    """Everything that decides the network's structure and its upsampling.

    The defaults are the published ResNet-101 network (K = 120 angle classes, K width
    channels). ``input_channels`` is 3 for BGR images, 1 for depth (4 for the author's RGB-D
    variant). ``angle_head_channels`` is the middle width of ``angle_conv`` only (None: the
    same as ``head_channels``); the AFFGA-Net Cornell code uses 256 there.
    """

    backbone: str = "resnet101"
    input_channels: int = 3
    num_angle_classes: int = 120
    width_channels: int = 120
    upsample: str = "bilinear"
    hasp_channels: int = 256
    decoder_channels: int = 256
    head_channels: int = 128
    low_level_channels: int = 48
    angle_head_channels: int | None = None

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ModelConfigError(
                f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ModelConfigError(
                f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        for name in ("input_channels", "num_angle_classes", "width_channels", "hasp_channels",
                     "decoder_channels", "head_channels", "low_level_channels"):
            _require_positive_int(name, getattr(self, name))
        if self.angle_head_channels is not None:
            _require_positive_int("angle_head_channels", self.angle_head_channels)
        if self.width_channels not in (1, self.num_angle_classes):
            raise ModelConfigError(
                f"width_channels must be 1 or num_angle_classes ({self.num_angle_classes}), "
                f"got {self.width_channels!r}")

    @property
    def backbone_spec(self) -> BackboneSpec:
        return BACKBONES[self.backbone]


# "light" is the project's CPU/Jetson network: 1.45 M parameters, a 5.4 MB ONNX file, about
# 28 ms per 1x3x320x320 frame on ONNX Runtime with 2 CPU cores (median of 20 runs). "tiny" is
# for shipped test models: 0.29 M parameters (fewer in the ONNX file: the unused decoder convs
# are not exported), one block per stage.
PRESETS: dict[str, SGDNConfig] = {
    "resnet101": SGDNConfig(),
    "resnet50": SGDNConfig(backbone="resnet50"),
    "light": SGDNConfig(backbone="light", num_angle_classes=18, width_channels=1,
                        hasp_channels=64, decoder_channels=64, head_channels=32,
                        low_level_channels=16),
    "tiny": SGDNConfig(backbone="tiny", num_angle_classes=18, width_channels=1,
                       hasp_channels=32, decoder_channels=32, head_channels=16,
                       low_level_channels=16),
}


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """Conv (no bias, 'same' padding) + BN: indices 0 and 1 of the published Sequentials."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False),
            nn.BatchNorm2d(out_channels)]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(in_channels, out_channels, kernel_size), nn.ReLU())


class HASPBranch(nn.Module):
    """One atrous conv-BN-ReLU branch (published names ``atrous_conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, rate: int) -> None:
        super().__init__()
        kernel_size = 1 if rate == 1 else 3
        padding = 0 if rate == 1 else rate
        self.atrous_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                                     dilation=rate, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class HASP(nn.Module):
    """Hybrid atrous spatial pyramid: small (rates 1, 6), big (12, 18) and all four fused.

    Branch widths are 2C, C, 2C, C for ``hasp_channels`` C (published: 512, 256, 512, 256).
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        wide, narrow = 2 * channels, channels
        self.hasp1_1 = HASPBranch(in_channels, wide, _HASP_RATES[0])
        self.hasp1_2 = HASPBranch(in_channels, narrow, _HASP_RATES[1])
        self.hasp2_1 = HASPBranch(in_channels, wide, _HASP_RATES[2])
        self.hasp2_2 = HASPBranch(in_channels, narrow, _HASP_RATES[3])
        self.conv_small = _fuse(wide + narrow, channels)
        self.conv_big = _fuse(wide + narrow, channels)
        self.conv_all = _fuse(2 * (wide + narrow), channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        branches = (self.hasp1_1(x), self.hasp1_2(x), self.hasp2_1(x), self.hasp2_2(x))
        small = self.conv_small(torch.cat(branches[:2], dim=1))
        big = self.conv_big(torch.cat(branches[2:], dim=1))
        fused = self.conv_all(torch.cat(branches, dim=1))
        return small, big, fused


def _fuse(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(in_channels, out_channels, 1), nn.ReLU(),
                         nn.Dropout(_HASP_DROPOUT))


def _head(in_channels: int, mid_channels: int, head_channels: int,
          out_channels: int) -> nn.Sequential:
    """A prediction head at stride 4 ending at stride 2; indices as published (8: ConvT, 10: 1x1).

    0 conv3x3, 1 BN, 2 ReLU, 3 Dropout, 4 conv3x3, 5 BN, 6 ReLU, 7 Dropout,
    8 ConvTranspose k2 s2, 9 ReLU, 10 conv1x1 (with bias).
    """
    return nn.Sequential(
        *_conv_bn(in_channels, mid_channels, 3), nn.ReLU(), nn.Dropout(_HEAD_DROPOUTS[0]),
        *_conv_bn(mid_channels, head_channels, 3), nn.ReLU(), nn.Dropout(_HEAD_DROPOUTS[1]),
        nn.ConvTranspose2d(head_channels, head_channels, kernel_size=2, stride=2), nn.ReLU(),
        nn.Conv2d(head_channels, out_channels, kernel_size=1))


class Decoder(nn.Module):
    """Fuses HASP outputs with the stride-4 feature and predicts able, angle and width."""

    def __init__(self, config: SGDNConfig) -> None:
        super().__init__()
        spec = config.backbone_spec
        hasp, low, mid = config.hasp_channels, config.low_level_channels, config.decoder_channels
        self.upsample = config.upsample
        self.conv_1 = _conv_bn_relu(spec.low_level_channels, low, 1)
        # conv_2, conv_hasp_mid and conv_hasp_big: in the published checkpoints, never run.
        self.conv_2 = _conv_bn_relu(spec.layer2_channels, low, 1)
        self.conv_hasp_small = _conv_bn_relu(hasp + low, mid, 3)
        self.conv_hasp_mid = _conv_bn_relu(hasp + 2 * low, mid, 3)
        self.conv_hasp_big = _conv_bn_relu(hasp + low, mid, 3)
        angle_head = config.angle_head_channels or config.head_channels
        self.able_conv = _head(mid + hasp, mid, config.head_channels, 1)
        self.angle_conv = _head(hasp + low, mid, angle_head, config.num_angle_classes)
        self.width_conv = _head(hasp + low, mid, config.head_channels, config.width_channels)

    def forward(self, low_level: torch.Tensor, small: torch.Tensor, big: torch.Tensor,
                fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low_level = self.conv_1(low_level)
        size = low_level.shape[-2:]
        small = self.conv_hasp_small(
            torch.cat((resize(small, size, self.upsample), low_level), dim=1))
        able_input = torch.cat((small, resize(big, size, self.upsample)), dim=1)
        angle_input = torch.cat((resize(fused, size, self.upsample), low_level), dim=1)
        return (self.able_conv(able_input), self.angle_conv(angle_input),
                self.width_conv(angle_input))


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size, mode: str) -> torch.Tensor:
    """Upsample to ``size``: bilinear with aligned corners (as trained) or nearest."""
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    return F.interpolate(x, size=size, mode="nearest")


class SGDN(nn.Module):
    """The grasp detection network: image planes -> (able, angle, width) logits."""

    def __init__(self, config: SGDNConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.backbone_spec, config.input_channels)
        self.hasp = HASP(config.backbone_spec.out_channels, config.hasp_channels)
        self.decoder = Decoder(config)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> able (N, 1, H, W), angle (N, K, H, W), width (N, 1 or K, H, W)."""
        able, angle, width = self.forward_heads(x)
        size = x.shape[-2:]
        return able, self.upsample_head(angle, size), self.upsample_head(width, size)

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward`` with the angle and width maps left at their heads' size (half the
        input's): a decoder that reads their K logits at a few chosen pixels samples them
        there instead, where upsampling all K planes would write 2 x 49 MB a frame at K = 120
        for nothing. ``upsample_head`` finishes them as ``forward`` does."""
        features, low_level = self.backbone(x)
        able, angle, width = self.decoder(low_level, *self.hasp(features))
        return self.upsample_head(able, x.shape[-2:]), angle, width

    def upsample_head(self, head: torch.Tensor, size: tuple[int, int] | torch.Size
                      ) -> torch.Tensor:
        """A head's map at the input's size. Contiguous first: compiled, the network runs
        channels-last, and the upsampling then read K-channel pixels to write K full-size
        planes: 78 us per K = 120 map on the H200; from planes it writes them in order (the
        frame's GPU time 1.39 -> 1.33 ms, profiled). A no-op for the eager network and in
        ONNX."""
        return resize(head.contiguous(), size, self.config.upsample)


class HeadSizeChannelMaps(nn.Module):
    """``network`` with ``forward_heads`` as its forward, for an exporter to trace: angle and
    width maps at their heads' size, for decoders that sample them."""

    def __init__(self, network: SGDN) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.network.forward_heads(x)


def _initialise(model: nn.Module) -> None:
    """He-normal convolutions and unit batch norms, as the published training started."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_sgdn(config: SGDNConfig) -> SGDN:
    """Build a freshly initialised network for ``config``."""
    if not isinstance(config, SGDNConfig):
        raise ModelConfigError(
            f"config must be an SGDNConfig, got {type(config).__name__}; pick one from "
            f"PRESETS ({', '.join(PRESETS)}) or build one")
    return SGDN(config)
