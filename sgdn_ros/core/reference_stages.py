"""The CPU stages as they were before they were made lean (issue 13), kept callable.

They are the reference the tests pin the lean stages to (the same planes bit for bit, the same
grasps) and the baseline row ``sgdn-ros bench`` measures beside them in the same run, so the
speed-up is a ratio from one run on one machine. Both take what the node had then: the
preprocessing a BGR view of the frame (``raw_image_to_bgr``), the decoding the model's maps.
"""

from __future__ import annotations

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, Grasp, decode_grasps
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import (
    checked_peak_score,
    neighbourhood_max,
    suppress_close_peaks,
    threshold_in,
)
from sgdn_ros.core.preprocessing import PreprocessConfig, locate_input, require_bgr_image


def reference_planes(bgr: np.ndarray, config: PreprocessConfig
                     ) -> tuple[np.ndarray, CropGeometry]:
    """(1, 3, H, W) float32 planes as NumPy wrote them over a transposed (channels first)
    view of the crop: subtract the mean into float32, then scale, two passes over the planes."""
    require_bgr_image(bgr)
    window, target, geometry = locate_input(bgr, config)
    planes = np.empty((1, 3, config.input_height, config.input_width), dtype=np.float32)
    if window.shape[:2] != (config.input_height, config.input_width):
        planes.fill(0.0)
    region = planes[0][(slice(None),) + target]
    mean = np.asarray(config.mean_bgr, dtype=np.float32).reshape(3, 1, 1)
    np.subtract(window.transpose(2, 0, 1), mean, out=region, dtype=np.float32)
    region *= np.float32(config.scale)
    return planes, geometry


def reference_find_peaks(score: np.ndarray, threshold: float, min_distance: int,
                         max_peaks: int) -> tuple[np.ndarray, np.ndarray]:
    """``find_peaks`` as it was: the neighbourhood maximum over the whole map, then the
    suppression pass over every candidate, ties or not."""
    score = checked_peak_score(score, threshold, min_distance, max_peaks)
    above = score >= threshold_in(score.dtype, threshold)
    if not above.any():
        return np.empty(0, np.intp), np.empty(0, np.intp)
    candidates = np.flatnonzero(above & (score == neighbourhood_max(score, min_distance)))
    order = np.argsort(-score.ravel()[candidates], kind="stable")
    rows, cols = np.divmod(candidates[order], score.shape[1])
    kept = suppress_close_peaks(rows, cols, min_distance, max_peaks)
    return rows[kept], cols[kept]


def reference_decode_grasps(able: np.ndarray, angle: np.ndarray, width: np.ndarray,
                            geometry: CropGeometry, config: DecodeConfig) -> list[Grasp]:
    """``decode_grasps`` with ``reference_find_peaks``."""
    return decode_grasps(able, angle, width, geometry, config, reference_find_peaks)
