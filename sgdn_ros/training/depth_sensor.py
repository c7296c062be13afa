"""A RealSense-like depth sensor's reading of a true depth image.

Shared by every renderer that makes depth for training or evaluation (the ray-cast RGB-D
scenes, the physics bench), so that a model meets one sensor model everywhere: Gaussian noise
growing with z^2 (1 mm at 0.6 m), quantised to millimetres, holes (0) in bands of wandering
width along depth steps where stereo matching fails, and a few small random holes.
"""

from __future__ import annotations

import cv2
import numpy as np

from sgdn_ros.training.tabletop import distance_to

DEPTH_NOISE_MM_AT_REFERENCE = 1.0
DEPTH_NOISE_REFERENCE_M = 0.6
DEPTH_STEP_M = 0.01
EDGE_HOLE_MAX_WIDTH_PX = 3.0
RANDOM_HOLE_COUNT_RANGE = (3, 9)
_HOLE_BAND_CELLS = (6, 8)


def measure_depth(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """The sensor's reading of ``depth_m``: uint16 millimetres, noisy, with holes (0); no
    reading where ``depth_m`` is 0 (no surface in range)."""
    sigma_mm = DEPTH_NOISE_MM_AT_REFERENCE * (depth_m / DEPTH_NOISE_REFERENCE_M) ** 2
    noisy_mm = np.rint(depth_m * 1000.0 + rng.standard_normal(depth_m.shape) * sigma_mm)
    holes = _edge_holes(rng, depth_m) | _random_holes(rng, depth_m.shape) | (depth_m <= 0)
    return np.where(holes, 0, np.clip(noisy_mm, 1, 65535)).astype(np.uint16)


def depth_steps(depth_m: np.ndarray) -> np.ndarray:
    """The pixels on either side of a depth step (> DEPTH_STEP_M between neighbours)."""
    steps = np.zeros(depth_m.shape, dtype=bool)
    across_cols = np.abs(np.diff(depth_m, axis=1)) > DEPTH_STEP_M
    across_rows = np.abs(np.diff(depth_m, axis=0)) > DEPTH_STEP_M
    steps[:, :-1] |= across_cols
    steps[:, 1:] |= across_cols
    steps[:-1] |= across_rows
    steps[1:] |= across_rows
    return steps


def _edge_holes(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """Bands along depth steps where stereo matching fails: their width wanders smoothly from
    none to EDGE_HOLE_MAX_WIDTH_PX on each side."""
    steps = depth_steps(depth_m)
    if not steps.any():
        return steps
    height, width = depth_m.shape
    wander = cv2.resize(rng.random(_HOLE_BAND_CELLS, dtype=np.float32), (width, height),
                        interpolation=cv2.INTER_LINEAR)
    band_px = wander * (EDGE_HOLE_MAX_WIDTH_PX + 1.0) - 1.0
    return distance_to(steps) <= band_px


def _random_holes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A few small round holes anywhere (specular spots, texture-less patches)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for _ in range(rng.integers(*RANDOM_HOLE_COUNT_RANGE)):
        centre = (int(rng.integers(shape[1])), int(rng.integers(shape[0])))
        cv2.circle(mask, centre, int(rng.integers(1, 4)), 1, thickness=-1)
    return mask.astype(bool)
