"""The Cornell rectangle metric: is a predicted grasp one of the labelled ones?

A prediction matches a ground-truth rectangle when their angles differ by at most 30 degrees and
their rectangles overlap with an intersection over union (Jaccard index) above 25 % (Jiang et
al. 2011, as GG-CNN, GR-ConvNet and AFFGA-Net evaluate). Image-wise accuracy counts the images
whose top grasp matches some ground truth.

A decoded grasp has a centre, angle and opening but no jaw size; ``rectangle_from_grasp`` gives
it half the opening, as GG-CNN's evaluation does and as Cornell's labels are shaped (about 2:1).
AFFGA-Net's own evaluation used a fixed jaw of 30 px instead: pass ``height_px=30`` for that.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.training.grasp_rectangles import GraspRectangle

IOU_THRESHOLD = 0.25
ANGLE_THRESHOLD = math.radians(30.0)


def rectangle_iou(a: GraspRectangle, b: GraspRectangle) -> float:
    """Exact intersection over union of two rotated rectangles (polygon clipping)."""
    intersection, _ = cv2.intersectConvexConvex(_polygon(a), _polygon(b))
    union = a.width * a.height + b.width * b.height - intersection
    return float(min(max(intersection / union, 0.0), 1.0))


def angle_difference(a: float, b: float) -> float:
    """Difference of two grasp angles modulo pi (a grasp turned half a turn is the same), in
    [0, pi/2]."""
    difference = abs(a - b) % math.pi
    return min(difference, math.pi - difference)


def grasp_matches(
    predicted: GraspRectangle,
    truths: Sequence[GraspRectangle],
    iou_threshold: float = IOU_THRESHOLD,
    angle_threshold: float = ANGLE_THRESHOLD,
) -> bool:
    """True when some truth is within ``angle_threshold`` and overlaps above ``iou_threshold``."""
    return any(angle_difference(predicted.angle, truth.angle) <= angle_threshold
               and rectangle_iou(predicted, truth) > iou_threshold for truth in truths)


def rectangle_from_grasp(grasp: Grasp, height_px: float | None = None) -> GraspRectangle:
    """The grasp's rectangle in the original image (``row``, ``col``, ``width_px``); the jaw
    size is ``height_px``, or half the opening when None (module docstring)."""
    if height_px is not None and not (isinstance(height_px, numbers.Real)
                                      and math.isfinite(height_px) and height_px > 0):
        raise ValueError(f"height_px must be a finite number > 0 or None, got {height_px!r}")
    return GraspRectangle(row=grasp.row, col=grasp.col, angle=grasp.angle, width=grasp.width_px,
                          height=grasp.width_px / 2 if height_px is None else height_px)


@dataclass(frozen=True)
class EvaluationResult:
    """Image-wise grasp accuracy and the criterion it was measured with."""

    images: int
    correct: int
    accuracy: float
    iou_threshold: float = IOU_THRESHOLD
    angle_threshold: float = ANGLE_THRESHOLD

    def lines(self) -> list[str]:
        """A short human-readable report."""
        return [
            f"image-wise grasp accuracy: {self.accuracy:.2%} ({self.correct} of {self.images} "
            "images)",
            f"criterion: top grasp within {math.degrees(self.angle_threshold):.0f} degrees and "
            f"IoU > {self.iou_threshold:.2f} of a ground-truth rectangle",
        ]


def evaluate_top_grasps(
    predictions: Sequence[Sequence[Grasp]],
    truths: Sequence[Sequence[GraspRectangle]],
    iou_threshold: float = IOU_THRESHOLD,
    angle_threshold: float = ANGLE_THRESHOLD,
    height_px: float | None = None,
) -> EvaluationResult:
    """Image-wise accuracy: per image, the most confident grasp must match a ground truth.

    An image without any predicted grasp, or without ground truth, counts as wrong.
    """
    if len(predictions) != len(truths):
        raise ValueError(
            f"got predictions for {len(predictions)} images but ground truth for {len(truths)}; "
            "pass one list of each per image, in the same order")
    if not predictions:
        raise ValueError("no images to evaluate; pass at least one image's predictions")
    correct = 0
    for grasps, image_truths in zip(predictions, truths):
        if not grasps:
            continue
        top = max(grasps, key=lambda grasp: grasp.confidence)
        if grasp_matches(rectangle_from_grasp(top, height_px), image_truths, iou_threshold,
                         angle_threshold):
            correct += 1
    return EvaluationResult(images=len(predictions), correct=correct,
                            accuracy=correct / len(predictions), iou_threshold=iou_threshold,
                            angle_threshold=angle_threshold)


def _polygon(rectangle: GraspRectangle) -> np.ndarray:
    """Corners as (x, y) = (col, row) float32, the layout OpenCV's geometry functions take."""
    return np.ascontiguousarray(rectangle.corners()[:, ::-1], dtype=np.float32)
