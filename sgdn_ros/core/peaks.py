"""Grasp pixels on the confidence map: its local maxima above a threshold, strongest first and
kept apart, as scikit-image's peak_local_max finds them. Compiled where the package was built
with it (``compiled_stages``), else with NumPy and OpenCV in the box the pixels above the
threshold span.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from sgdn_ros.core import compiled_stages
from sgdn_ros.core.checks import require_int, require_number


class DecodingError(ValueError):
    """Network outputs or decoding settings that cannot be decoded."""


def threshold_in(dtype: np.dtype, threshold: float) -> np.floating:
    """The smallest value of dtype that is >= threshold, so comparing in dtype stays exact."""
    cast = dtype.type(threshold)
    if float(cast) < threshold:
        cast = np.nextafter(cast, dtype.type(np.inf))
    return cast


def find_peaks(
    score: np.ndarray, threshold: float, min_distance: int, max_peaks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a 2-D map (rows, cols), best first, like scikit-image's peak_local_max.

    A peak equals the maximum of its (2d+1)x(2d+1) neighbourhood and is >= threshold. Peaks are
    kept greedily, best first (ties in row-major order), so none is within Chebyshev distance d
    of a better one; this also reduces a plateau to one pixel.

    Searched by the compiled library where the package was built with it (``compiled_stages``),
    else by ``box_find_peaks``: the same peaks either way. A map holding a NaN is refused:
    what a NaN does to its neighbours' maxima is each search's own, and a network whose logits
    overflow needs fixing, not decoding.
    """
    score = checked_peak_score(score, threshold, min_distance, max_peaks)
    compiled = compiled_stages.COMPILED_STAGES
    if compiled is not None and score.dtype == np.float32:
        peaks = compiled.find_peaks(score, threshold_in(score.dtype, threshold), min_distance,
                                    max_peaks)
    else:
        peaks = None if np.isnan(score).any() else box_find_peaks(score, threshold,
                                                                   min_distance, max_peaks)
    if peaks is None:
        raise DecodingError(
            "the confidence map holds NaN: the network's activations overflowed (an FP16 copy "
            "of a model with untrained batch-norm statistics does); check the model, or run it "
            "in FP32")
    return peaks


def box_find_peaks(
    score: np.ndarray, threshold: float, min_distance: int, max_peaks: int
) -> tuple[np.ndarray, np.ndarray]:
    """``find_peaks`` with NumPy and OpenCV on a checked score (``checked_peak_score``).

    Only pixels >= threshold can be peaks, and each one's neighbourhood lies in the box around
    them all grown by d, so the neighbourhood maximum is computed in that box only (a grasped
    object covers a small part of the map); the result is the whole-map search's,
    ``reference_find_peaks``.
    """
    above = score >= threshold_in(score.dtype, threshold)
    left, top, width, height = cv2.boundingRect(above.view(np.uint8))
    if width == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    bottom = min(top + height + min_distance, score.shape[0])
    right = min(left + width + min_distance, score.shape[1])
    top, left = max(top - min_distance, 0), max(left - min_distance, 0)
    box = (slice(top, bottom), slice(left, right))
    region = score[box]
    candidates = np.flatnonzero(above[box] & (region == neighbourhood_max(region, min_distance)))
    return strongest_apart(region, candidates, min_distance, max_peaks, (top, left))


def checked_peak_score(score: np.ndarray, threshold: float, min_distance: int,
                       max_peaks: int) -> np.ndarray:
    """The arguments of a peak search checked, and the score as contiguous float32/64 (itself
    where it is one already)."""
    if not isinstance(score, np.ndarray) or score.ndim != 2 or 0 in score.shape:
        shape = getattr(score, "shape", type(score).__name__)
        raise DecodingError(f"score must be a non-empty 2-D numpy array, got {shape}")
    require_number("threshold", threshold, "a number (+-inf allowed)",
                   lambda value: not math.isnan(value), error=DecodingError)
    require_int("min_distance", min_distance, 0, error=DecodingError)
    require_int("max_peaks", max_peaks, 1, error=DecodingError)
    if score.dtype not in (np.float32, np.float64):
        score = score.astype(np.float32)
    return np.ascontiguousarray(score)


def neighbourhood_max(score: np.ndarray, distance: int) -> np.ndarray:
    """Each pixel's maximum over the (2 distance + 1)^2 square around it (clipped at the
    edges)."""
    size = 2 * distance + 1
    return cv2.dilate(score, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)


def strongest_apart(score: np.ndarray, candidates: np.ndarray, min_distance: int,
                    max_peaks: int, origin: tuple[int, int] = (0, 0)
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the candidates (flat indices into ``score``, each the maximum of its
    neighbourhood) kept best first by ``suppress_close_peaks``, offset by ``origin`` (where
    ``score`` lies in a larger map).

    Two such candidates within ``min_distance`` of each other lie in each other's
    neighbourhood, so they have the same score: when no two scores are equal (a network's
    float32 logits), nothing is suppressed and the best ``max_peaks`` are the answer.
    """
    values = score.ravel()[candidates]
    order = np.argsort(-values, kind="stable")
    rows, cols = np.divmod(candidates[order], score.shape[1])
    kept = keep_apart(rows, cols, values[order], min_distance, max_peaks)
    return rows[kept] + origin[0], cols[kept] + origin[1]


def keep_apart(rows: np.ndarray, cols: np.ndarray, ordered_scores: np.ndarray,
               min_distance: int, max_peaks: int) -> np.ndarray:
    """``suppress_close_peaks`` for local maxima sorted best first: two maxima within
    ``min_distance`` share a score, so without equal neighbours in ``ordered_scores`` none is
    suppressed and the first ``max_peaks`` are kept without the greedy pass (its numpy calls
    per kept peak were the largest host cost of a GPU frame after the replay, profiled)."""
    if (ordered_scores[1:] == ordered_scores[:-1]).any():
        return np.asarray(suppress_close_peaks(rows, cols, min_distance, max_peaks), np.intp)
    return np.arange(min(rows.size, max_peaks))


def suppress_close_peaks(
    rows: np.ndarray, cols: np.ndarray, min_distance: int, max_peaks: int
) -> list[int]:
    """Indices of the candidates kept, best first: candidates sorted best first are taken
    greedily, dropping any within Chebyshev distance `min_distance` of a kept one. Shared by
    `find_peaks` and the GPU decoder, whose candidates arrive unsorted."""
    kept: list[int] = []
    remaining = np.arange(rows.size)
    while remaining.size and len(kept) < max_peaks:
        best = remaining[0]
        kept.append(best)
        distance = np.maximum(
            np.abs(rows[remaining] - rows[best]), np.abs(cols[remaining] - cols[best])
        )
        remaining = remaining[distance > min_distance]
    return kept


PeakSearch = Callable[[np.ndarray, float, int, int], tuple[np.ndarray, np.ndarray]]
