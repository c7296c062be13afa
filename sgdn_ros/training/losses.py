"""SGDN's training loss (AFFGA-Net's three heads) and the able head's starting prior.

The prior belongs with the loss: the focal able loss and the RetinaNet-style prior are two
halves of one remedy for grasp centres being a tiny fraction of the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sgdn_ros.network.network import SGDN
from sgdn_ros.training.dataset import GraspBatch

# Focal weighting of the able loss, RetinaNet's values (Lin et al. 2017): see sgdn_loss.
ABLE_FOCAL_ALPHA = 0.25
ABLE_FOCAL_GAMMA = 2.0
# The able head starts out predicting this grasp probability everywhere (RetinaNet's prior), so
# the first steps are not spent pushing 99.9 % of the pixels down from 0.5.
ABLE_PRIOR_PROBABILITY = 0.01


@dataclass(frozen=True)
class LossParts:
    """The training loss and its three parts (scalars; ``total`` carries the gradient)."""

    total: torch.Tensor
    able: torch.Tensor
    angle: torch.Tensor
    width: torch.Tensor


def sgdn_loss(able_logits: torch.Tensor, angle_logits: torch.Tensor, width_logits: torch.Tensor,
              batch: GraspBatch) -> LossParts:
    """AFFGA-Net's loss, computed in float32 whatever precision the network ran in.

    - able: binary cross-entropy over every pixel, focal-weighted and divided by the number of
      grasp-centre pixels. Those are about 0.5 % of the pixels; a positive weight large enough to
      balance that (~200) would push the confidence up over whole objects and blur the peak the
      decoder picks, while the focal factor (1 - p_t)^gamma mutes the easy table pixels and keeps
      the hard ones near objects, which is where the peak is decided.
    - angle: BCE over the K classes (multi-hot targets) at grasp-centre pixels only, summed over
      classes and averaged over pixels, so its size does not shrink as K grows.
    - width: BCE between sigmoid(width) and width / max width, at grasp-centre pixels and valid
      width channels, minus the target's own entropy so that a perfect prediction scores 0.
    """
    positives = batch.positive_index.numel()
    denominator = max(positives, 1)
    able_loss = _focal_bce(able_logits.float(), batch.able).sum() / denominator
    angle_at_positives = _at_pixels(angle_logits, batch.positive_index).float()
    angle_loss = F.binary_cross_entropy_with_logits(
        angle_at_positives, batch.angle, reduction="sum") / denominator
    width_at_positives = _at_pixels(width_logits, batch.positive_index).float()
    width_excess = (
        F.binary_cross_entropy_with_logits(width_at_positives, batch.width, reduction="none")
        - F.binary_cross_entropy(batch.width, batch.width, reduction="none"))
    width_loss = (width_excess * batch.width_mask).sum() / batch.width_mask.sum().clamp(min=1.0)
    return LossParts(total=able_loss + angle_loss + width_loss, able=able_loss,
                     angle=angle_loss, width=width_loss)


def set_able_prior(model: SGDN) -> None:
    """Bias the able head's last convolution so it predicts ABLE_PRIOR_PROBABILITY at first."""
    final_conv = model.decoder.able_conv[-1]
    nn.init.constant_(final_conv.bias,
                      -math.log((1 - ABLE_PRIOR_PROBABILITY) / ABLE_PRIOR_PROBABILITY))


def _focal_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel focal binary cross-entropy with ABLE_FOCAL_ALPHA and ABLE_FOCAL_GAMMA."""
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probability = torch.sigmoid(logits)
    p_true = probability * targets + (1 - probability) * (1 - targets)
    alpha = ABLE_FOCAL_ALPHA * targets + (1 - ABLE_FOCAL_ALPHA) * (1 - targets)
    return alpha * (1 - p_true).pow(ABLE_FOCAL_GAMMA) * cross_entropy


def _at_pixels(maps: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Rows (P, C) of an (N, C, H, W) map at flat (N, H, W) indices, without copying the map."""
    pixels_per_image = maps.shape[2] * maps.shape[3]
    images = torch.div(flat_index, pixels_per_image, rounding_mode="floor")
    return maps.flatten(2)[images, :, flat_index % pixels_per_image]
