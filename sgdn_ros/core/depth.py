"""Depth images in metres: from the bytes of a ``sensor_msgs/Image``, and with holes filled.

A depth camera reports "no measurement" as 0 (16UC1) or NaN / inf (32FC1); the 3-D grasp stage
must never mistake a hole for a surface at 0 m, so every hole becomes NaN here, once, in one
float32 array in metres. Depth networks need a hole-free image instead; ``fill_depth_holes``
does what the author's cv2.inpaint did, fast enough to run on every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sgdn_ros.core.frames import byte_view


class DepthImageError(ValueError):
    """A depth image message that cannot be read as depth in metres."""


@dataclass(frozen=True)
class _DepthUnit:
    """How one depth encoding stores a pixel, and what one raw unit is in metres."""

    sample_type: np.dtype
    metres_per_unit: float


_UNITS = {
    "16UC1": _DepthUnit(np.dtype(np.uint16), 0.001),
    "32FC1": _DepthUnit(np.dtype(np.float32), 1.0),
}

DEPTH_ENCODINGS: tuple[str, ...] = tuple(_UNITS)

_ENCODING_ADVICE = ("publish 16UC1 (millimetres) or 32FC1 (metres), e.g. RealSense's "
                    "aligned_depth_to_color/image_raw")


def depth_to_metres(data, height: int, width: int, step: int, encoding: str,
                    is_bigendian: bool = False, depth_scale: float = 0.0) -> np.ndarray:
    """Depth in metres as a new (height, width) float32 array, holes (0, NaN, inf, negative)
    as NaN.

    ``data``, ``height``, ``width``, ``step``, ``encoding`` and ``is_bigendian`` are the fields
    of a ``sensor_msgs/Image``; the raw samples are read through a view of ``data`` (no copy
    before the one conversion to metres). ``depth_scale`` > 0 is the metres per raw unit for a
    camera that publishes other units; 0 uses the encoding's own (16UC1: 0.001, 32FC1: 1).
    Raises ``DepthImageError`` naming what is wrong and how to fix it.
    """
    unit = _UNITS.get(encoding)
    if unit is None:
        raise DepthImageError(
            f"depth image encoding {encoding!r} is not a depth encoding; {_ENCODING_ADVICE}")
    if isinstance(depth_scale, bool) or not (0.0 <= depth_scale < math.inf):
        raise DepthImageError(
            f"depth_scale must be finite and >= 0 (0: the encoding's own unit), got "
            f"{depth_scale!r}")
    samples = _sample_view(data, height, width, step, encoding, unit.sample_type, is_bigendian)
    metres_per_unit = depth_scale if depth_scale > 0 else unit.metres_per_unit
    metres = samples.astype(np.float32)
    if metres_per_unit != 1.0:
        metres *= np.float32(metres_per_unit)
    with np.errstate(invalid="ignore"):
        holes = ~((metres > 0) & (metres < np.inf))
    metres[holes] = np.nan
    return metres


def _sample_view(data, height: int, width: int, step: int, encoding: str,
                 sample_type: np.dtype, is_bigendian: bool) -> np.ndarray:
    """The (height, width) raw samples of the message, as a view of its data."""
    if height <= 0 or width <= 0:
        raise DepthImageError(
            f"depth image has no pixels (height {height}, width {width}); the publisher sent an "
            "empty frame, check the depth camera driver")
    row_bytes = width * sample_type.itemsize
    if step < row_bytes:
        raise DepthImageError(
            f"depth image step {step} is smaller than width x bytes per pixel = {width} x "
            f"{sample_type.itemsize} = {row_bytes} for {encoding!r}; step must be the number of "
            "bytes per row, check the publisher's step and encoding fields")
    raw = byte_view(data, "depth image", DepthImageError)
    if raw.size < height * step:
        raise DepthImageError(
            f"depth image data is truncated: {raw.size} bytes, but height x step = {height} x "
            f"{step} = {height * step}; the publisher sent an incomplete frame, check its "
            "height, step and data fields")
    rows = raw[: height * step].reshape(height, step)[:, :row_bytes]
    byte_order = ">" if is_bigendian else "<"
    return rows.view(sample_type.newbyteorder(byte_order))


def fill_depth_holes(metres: np.ndarray) -> np.ndarray:
    """A float32 copy of a depth image in metres with its NaN (and inf) holes filled from the
    surrounding depth; valid pixels keep their exact values.

    Push-pull normalized convolution: the valid depths and a validity weight are blurred and
    halved (``cv2.pyrDown``) until every pixel of the coarsest level has support, then each
    level, on the way back up, keeps its own weighted average where it has enough support and
    blends in the upsampled coarser estimate where it has little. A hole is thus filled from
    its nearest surroundings at the scale of the hole, like inpainting, and smooth surfaces are
    continued smoothly. 640x480 with 5 % holes (``test_depth``'s surface): 1.0 ms on this
    project's 2-core CPU, largest error 1.2 mm; ``cv2.inpaint`` (Navier-Stokes, radius 3, the
    author's choice) takes 6-7 ms there, largest error 3.0 mm. An image with no valid pixel is
    returned as it is (all NaN): there is nothing to fill from.
    """
    if not isinstance(metres, np.ndarray) or metres.ndim != 2 or 0 in metres.shape:
        shape = getattr(metres, "shape", type(metres).__name__)
        raise DepthImageError(f"expected a non-empty (H, W) depth image in metres, got {shape}")
    filled = metres.astype(np.float32, copy=True)
    holes = ~np.isfinite(filled)
    if not holes.any() or holes.all():
        return filled
    weight = (~holes).astype(np.float32)
    levels = [(np.where(holes, np.float32(0), filled), weight)]
    while levels[-1][1].min() <= 0 and max(levels[-1][1].shape) > 1:
        weighted_depth, weight = levels[-1]
        levels.append((cv2.pyrDown(weighted_depth), cv2.pyrDown(weight)))
    coarsest_depth, coarsest_weight = levels.pop()
    estimate = coarsest_depth / np.maximum(coarsest_weight, np.finfo(np.float32).tiny)
    for weighted_depth, weight in reversed(levels[1:]):
        estimate = _blend(weighted_depth, weight, _upsample(estimate, weight.shape))
    filled[holes] = _upsample(estimate, filled.shape)[holes]
    return filled


def _upsample(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    height, width = shape
    return cv2.pyrUp(image, dstsize=(width, height))


_FULL_SUPPORT = 0.25  # a level trusts its own average where a quarter of its kernel is valid


def _blend(weighted_depth: np.ndarray, weight: np.ndarray, coarser: np.ndarray) -> np.ndarray:
    """One pull step: the level's own average where it has support, the coarser estimate
    where it has none, a mix in between. Where the weight is 1 this is the depth itself."""
    confidence = np.minimum(weight * np.float32(1 / _FULL_SUPPORT), np.float32(1))
    own_average = weighted_depth / np.maximum(weight, np.finfo(np.float32).tiny)
    return confidence * own_average + (np.float32(1) - confidence) * coarser
