"""Drawing and placement steps that both tabletop renderers share.

The demo renderer (``scenes``) and the training one (``grasp_scenes`` with ``scene_looks``)
differ in how their tables, lights and objects look, not in these steps: pixel grids, positions
along a direction, distance maps, darkening under a shadow, painting an object in, and placing
objects apart by rejection sampling. Each step lives here once, so the two renderers cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from sgdn_ros.training.scene_objects import SceneObject, object_coverage


def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row (H, 1) and column (1, W) coordinates of the pixel centres, float32, to broadcast."""
    return (np.arange(height, dtype=np.float32)[:, None],
            np.arange(width, dtype=np.float32)[None, :])


def along_direction(rows: np.ndarray, cols: np.ndarray, direction: float) -> np.ndarray:
    """Position along ``direction`` (radians from +column towards +row) of each (row, col)."""
    return cols * math.cos(direction) + rows * math.sin(direction)


def distance_to(occupied: np.ndarray) -> np.ndarray:
    """Distance (px) from every pixel to the nearest occupied one, (H, W) float32."""
    free = np.where(occupied, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def darken_under_shadow(image: np.ndarray, shadow: np.ndarray, blur_sigma: float,
                        strength: float) -> None:
    """Darken the (H, W, 3) image in place by up to ``strength`` where ``shadow`` (H, W, in
    [0, 1]) falls, after blurring it by ``blur_sigma`` px so its edge is soft."""
    soft_shadow = cv2.GaussianBlur(shadow, (0, 0), blur_sigma)
    image *= (1.0 - strength * soft_shadow)[..., None]


def paint_over(image: np.ndarray, coverage: np.ndarray, paint: np.ndarray) -> None:
    """Blend ``paint`` into the (H, W, 3) image in place, as far as ``coverage`` (H, W) covers
    each pixel: anti-aliased edges come from the coverage's fractions."""
    image += coverage[..., None] * (paint - image)


def place_apart(
    propose: Callable[[], SceneObject | None],
    height: int,
    width: int,
    count: int,
    attempts: int,
    min_gap_px: float,
) -> list[tuple[SceneObject, np.ndarray]]:
    """Up to ``count`` objects drawn from ``propose``, each with its coverage map, each more than
    ``min_gap_px`` from those placed before it (0: merely not overlapping them).

    ``propose`` gives an object on the image, or None when it has none that fits; ``attempts``
    proposals are made at the most, so a full image yields fewer objects (callers decide
    whether that is an error).
    """
    occupied = np.zeros((height, width), dtype=bool)
    too_close = occupied  # pixels that a new object's footprint may not touch
    placed: list[tuple[SceneObject, np.ndarray]] = []
    for _ in range(attempts):
        if len(placed) == count:
            break
        candidate = propose()
        if candidate is None:
            continue
        coverage = object_coverage(candidate, height, width)
        footprint = coverage > 0.0
        if (footprint & too_close).any():
            continue
        placed.append((candidate, coverage))
        occupied = occupied | footprint
        # Without a gap the occupied pixels are all there is to avoid: no distance map to pay for.
        too_close = distance_to(occupied) <= min_gap_px if min_gap_px > 0.0 else occupied
    return placed
