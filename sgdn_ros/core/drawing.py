"""Debug images of decoded grasps, for people and RViz."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sgdn_ros.core.frames import bgr_image_problem

if TYPE_CHECKING:
    from sgdn_ros.core.decoding import Grasp

BEST_COLOUR_BGR = (0, 255, 0)
OTHER_COLOUR_BGR = (0, 190, 255)
TEXT_OUTLINE_BGR = (0, 0, 0)
JAW_THICKNESS = 2
PLATE_THICKNESS = 4
MIN_PLATE_LENGTH = 6.0
MAX_PLATE_LENGTH = 30.0
CENTRE_RADIUS = 3
_SHIFT = 4
_SUBPIXEL = 1 << _SHIFT


class DrawingError(ValueError):
    """An image, confidence map or grasp that cannot be drawn."""


def _require_bgr(name: str, image: np.ndarray) -> None:
    problem = bgr_image_problem(image)
    if problem is not None:
        raise DrawingError(f"{name}: {problem}; convert it with cv2.cvtColor first")


def _fixed_point(col: float, row: float) -> tuple[int, int]:
    """(x, y) for OpenCV's sub-pixel drawing (coordinates scaled by 2**_SHIFT)."""
    return round(col * _SUBPIXEL), round(row * _SUBPIXEL)


def _segment(
    canvas: np.ndarray, centre: tuple[float, float], direction: tuple[float, float],
    length: float, colour: tuple[int, int, int], thickness: int,
) -> None:
    """Draws a segment given its centre (col, row) and unit direction (dcol, drow)."""
    half_col, half_row = direction[0] * length / 2, direction[1] * length / 2
    start = _fixed_point(centre[0] - half_col, centre[1] - half_row)
    end = _fixed_point(centre[0] + half_col, centre[1] + half_row)
    cv2.line(canvas, start, end, colour, thickness, cv2.LINE_AA, _SHIFT)


def _draw_gripper(
    canvas: np.ndarray, grasp: Grasp, on_crop: bool, colour: tuple[int, int, int]
) -> tuple[float, float]:
    """Draws the jaw line, two finger plates and a centre dot; returns the centre (col, row)."""
    if on_crop:
        row, col, width = float(grasp.crop_row), float(grasp.crop_col), grasp.crop_width_px
    else:
        row, col, width = grasp.row, grasp.col, grasp.width_px
    if not all(math.isfinite(value) for value in (row, col, width, grasp.angle)):
        raise DrawingError(
            f"grasp at row {row}, col {col} has a non-finite position, width or angle; "
            "only decoded grasps can be drawn"
        )
    jaw = (math.cos(grasp.angle), -math.sin(grasp.angle))
    plate = (-jaw[1], jaw[0])
    plate_length = min(max(width / 2, MIN_PLATE_LENGTH), MAX_PLATE_LENGTH)
    _segment(canvas, (col, row), jaw, width, colour, JAW_THICKNESS)
    for side in (-1.0, 1.0):
        finger = (col + side * jaw[0] * width / 2, row + side * jaw[1] * width / 2)
        _segment(canvas, finger, plate, plate_length, colour, PLATE_THICKNESS)
    cv2.circle(canvas, _fixed_point(col, row), CENTRE_RADIUS * _SUBPIXEL, colour, cv2.FILLED,
               cv2.LINE_AA, _SHIFT)
    return col, row


def _put_confidence(canvas: np.ndarray, confidence: float, col: float, row: float) -> None:
    """Writes the confidence up and right of the centre, kept inside the image."""
    text = f"{confidence:.3f}"
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (text_width, text_height), baseline = cv2.getTextSize(text, font, scale, 1)
    x = int(np.clip(col + 8, 0, max(canvas.shape[1] - text_width, 0)))
    y = int(np.clip(row - 8, text_height, max(canvas.shape[0] - baseline, text_height)))
    cv2.putText(canvas, text, (x, y), font, scale, TEXT_OUTLINE_BGR, 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), font, scale, BEST_COLOUR_BGR, 1, cv2.LINE_AA)


def _draw_all(canvas: np.ndarray, grasps: Sequence[Grasp], on_crop: bool) -> None:
    """Draws the others first, so the best (highest confidence) stays on top."""
    if not grasps:
        return
    best = max(range(len(grasps)), key=lambda index: grasps[index].confidence)
    for index, grasp in enumerate(grasps):
        if index != best:
            _draw_gripper(canvas, grasp, on_crop, OTHER_COLOUR_BGR)
    col, row = _draw_gripper(canvas, grasps[best], on_crop, BEST_COLOUR_BGR)
    _put_confidence(canvas, grasps[best].confidence, col, row)


def draw_grasps(
    image_bgr: np.ndarray, grasps: Sequence[Grasp], *, on_crop: bool = False
) -> np.ndarray:
    """A copy of the image with each grasp drawn as a parallel-jaw gripper.

    The best grasp is green with its confidence written beside it, the others amber. With
    on_crop the network-input position and width are used, for drawing on the crop.
    """
    _require_bgr("image_bgr", image_bgr)
    canvas = image_bgr.copy()
    _draw_all(canvas, grasps, on_crop)
    return canvas


def draw_grasp(image_bgr: np.ndarray, grasp: Grasp, colour_bgr: tuple[int, int, int]
               ) -> np.ndarray:
    """A copy of the image with one grasp drawn in ``colour_bgr`` (e.g. an attempt's outcome)."""
    _require_bgr("image_bgr", image_bgr)
    canvas = image_bgr.copy()
    _draw_gripper(canvas, grasp, False, colour_bgr)
    return canvas


def render_heatmap(
    crop_bgr: np.ndarray, confidence: np.ndarray, grasps: Sequence[Grasp], alpha: float = 0.5
) -> np.ndarray:
    """The confidence map in JET colours (red = likely) blended over the crop, grasps on top."""
    _require_bgr("crop_bgr", crop_bgr)
    if not isinstance(confidence, np.ndarray) or confidence.shape != crop_bgr.shape[:2]:
        shape = getattr(confidence, "shape", type(confidence).__name__)
        raise DrawingError(
            f"confidence must be an (H, W) array the size of the crop {crop_bgr.shape[:2]}, got "
            f"{shape}; pass decoding.confidence_map(able)"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= alpha <= 1.0:
        raise DrawingError(f"alpha (the heatmap's weight) must be in [0, 1], got {alpha!r}")
    levels = np.nan_to_num(np.clip(confidence, 0.0, 1.0), nan=0.0) * 255.0
    heat = cv2.applyColorMap(np.round(levels).astype(np.uint8), cv2.COLORMAP_JET)
    canvas = cv2.addWeighted(heat, alpha, crop_bgr, 1.0 - alpha, 0.0)
    _draw_all(canvas, grasps, on_crop=True)
    return canvas
