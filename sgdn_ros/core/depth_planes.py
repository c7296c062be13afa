"""The input of depth and RGB-D models: the network's crop of the depth image (and of the
colour image) as the author normalised it.

A model says what it takes with its ``input_kind``: ``bgr`` (the published colour input, see
``sgdn_ros.core.preprocessing``), ``depth`` (one plane) or ``depth_bgr`` (four planes: depth,
then B, G, R). The author's depth and RGB-D networks were trained on depth in metres with its
holes filled, minus its mean over the crop and clipped to +-1 m, and on colour as
``bgr / 255`` minus one scalar mean over the crop; feeding anything else would silently degrade
them. The crop is the colour models' (same geometry, same small-image policy), so grasps map
back to the image the same way whatever the model takes.
"""

from __future__ import annotations

import numpy as np

from sgdn_ros.core.depth import fill_depth_holes
from sgdn_ros.core.frames import RawImage
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import (
    PreprocessConfig,
    PreprocessingError,
    image_size,
    locate_input,
    require_bgr_image,
    write_through_tables,
)

INPUT_KIND_CHANNELS: dict[str, int] = {"bgr": 3, "depth": 1, "depth_bgr": 4}
INPUT_KINDS: tuple[str, ...] = tuple(INPUT_KIND_CHANNELS)


def input_kind_of_channels(channels: int) -> str | None:
    """The input kind a network with ``channels`` input planes takes; None for a count the
    detector cannot feed."""
    return next((kind for kind, count in INPUT_KIND_CHANNELS.items() if count == channels), None)
DEPTH_KINDS: tuple[str, ...] = ("depth", "depth_bgr")
DEPTH_CLIP_M = 1.0  # the author's clip of depth relative to the crop's mean

# The author's colour input before its mean is subtracted: pixel / 255 in float32, per channel.
_COLOUR_TABLES = np.tile(np.arange(256, dtype=np.float32) * np.float32(1 / 255), (3, 1))
_ALIGNMENT_ADVICE = ("publish depth aligned to the colour image (RealSense: "
                     "aligned_depth_to_color/image_raw)")


def depth_planes(depth_m: np.ndarray, config: PreprocessConfig
                 ) -> tuple[np.ndarray, CropGeometry]:
    """A fresh (1, 1, H, W) float32 depth plane of the crop, and the crop geometry.

    ``depth_m`` is (H, W) float depth in metres, NaN (or inf) in holes, as ``depth_to_metres``
    gives it. Holes are filled over the whole image before cropping, so a hole at the crop's
    edge is filled from both sides of it. Padding (the pad policy) is 0.0: the crop's mean.
    """
    planes = np.empty((1, 1, config.input_height, config.input_width), dtype=np.float32)
    return planes, write_depth_planes(depth_m, config, planes[0])


def depth_bgr_planes(depth_m: np.ndarray, image: RawImage | np.ndarray,
                     config: PreprocessConfig) -> tuple[np.ndarray, CropGeometry]:
    """Fresh (1, 4, H, W) float32 planes of the crop, depth then B, G, R, and the geometry.

    ``image`` is the colour frame ``depth_m`` is aligned to (same size): a raw frame or an
    (H, W, 3) uint8 BGR array.
    """
    planes = np.empty((1, 4, config.input_height, config.input_width), dtype=np.float32)
    return planes, write_depth_bgr_planes(depth_m, image, config, planes[0])


def write_depth_planes(depth_m: np.ndarray, config: PreprocessConfig,
                       planes: np.ndarray) -> CropGeometry:
    """``depth_planes`` into ``planes``, a (1, H, W) float32 slot (one frame of a batch)."""
    return _write_depth_plane(depth_m, config, planes[0])


def write_depth_bgr_planes(depth_m: np.ndarray, image: RawImage | np.ndarray,
                           config: PreprocessConfig, planes: np.ndarray) -> CropGeometry:
    """``depth_bgr_planes`` into ``planes``, a (4, H, W) float32 slot. The colour planes are
    written as the colour models' are (``write_through_tables``: one read of the crop), with
    the author's ``pixel / 255`` table, then the crop's mean is subtracted."""
    if not isinstance(image, RawImage):
        require_bgr_image(image)
    _require_depth_image(depth_m)
    if depth_m.shape != image_size(image):
        height, width = image_size(image)
        raise PreprocessingError(
            f"the depth image is {depth_m.shape[1]}x{depth_m.shape[0]} but the colour image is "
            f"{width}x{height} (width x height); {_ALIGNMENT_ADVICE}")
    geometry = _write_depth_plane(depth_m, config, planes[0])
    target, _geometry = write_through_tables(image, config, _COLOUR_TABLES, planes[1:])
    region = planes[1:][(slice(None),) + target]
    region -= np.float32(region.mean(dtype=np.float64))
    return geometry


def depth_preview(depth_m: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The crop of a depth image as a grey (H, W, 3) uint8 picture, nearer brighter, to draw
    a depth-only model's grasps and confidence on; padding is black."""
    _require_depth_image(depth_m)
    window, target, _geometry = locate_input(fill_depth_holes(depth_m), config)
    preview = np.zeros((config.input_height, config.input_width, 3), dtype=np.uint8)
    finite = window[np.isfinite(window)]
    if finite.size:
        nearest, farthest = float(finite.min()), float(finite.max())
        brightness = (farthest - window) * (255 / max(farthest - nearest, 1e-6))
        preview[target] = np.nan_to_num(brightness, nan=0.0).astype(np.uint8)[..., np.newaxis]
    return preview


def depth_image_problem(depth_m: object) -> str | None:
    """What keeps ``depth_m`` from being a depth image in metres, or None."""
    if isinstance(depth_m, np.ndarray) and depth_m.ndim == 2 and depth_m.dtype.kind == "f" \
            and 0 not in depth_m.shape:
        return None
    return (f"the depth image must be a non-empty (H, W) float array in metres, got "
            f"{getattr(depth_m, 'dtype', type(depth_m).__name__)} "
            f"{getattr(depth_m, 'shape', '')}")


def _write_depth_plane(depth_m: np.ndarray, config: PreprocessConfig,
                       plane: np.ndarray) -> CropGeometry:
    """Fill ``plane`` (H, W) with the crop's normalised depth; return the crop geometry."""
    _require_depth_image(depth_m)
    window, target, geometry = locate_input(fill_depth_holes(depth_m), config)
    if not np.isfinite(window).all():
        raise PreprocessingError(
            "the depth image has no valid pixel (all holes), so a depth model has nothing to "
            "see; check the depth camera (exposure, range, the lens cap)")
    if window.shape != plane.shape:
        plane.fill(0.0)
    region = plane[target]
    np.subtract(window, np.float32(window.mean(dtype=np.float64)), out=region)
    np.clip(region, -DEPTH_CLIP_M, DEPTH_CLIP_M, out=region)
    return geometry


def _require_depth_image(depth_m: object) -> None:
    problem = depth_image_problem(depth_m)
    if problem is not None:
        raise PreprocessingError(f"{problem}; convert the depth message with depth_to_metres")
