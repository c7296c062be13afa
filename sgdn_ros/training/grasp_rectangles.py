"""Grasp rectangles: the Cornell-style truth of a generated scene, and how each object's are made.

A parallel-jaw grasp closes ACROSS an elongated object (angle = ``grasp_angle``), centred on its
long axis, at positions every ``spacing_px`` from the centre out to ``length/2 - thickness/2``
(box, capsule: where the flat sides end). An ellipse narrows towards its tips, so its positions
stop where the chord across it falls to ``ELLIPSE_MIN_WIDTH_FRACTION`` of its thickness: there
the surface normals are still within about 30 degrees of the finger line for every ellipse
called elongated (thickness <= 0.8 length), inside a friction cone of mu ~ 0.6. The opening
(rectangle width) is the widest chord the jaws meet across their own size, plus
``clearance_px``; the jaw size (rectangle height) is half the opening, the proportion of
Cornell's rectangles and of GG-CNN's predicted ones, so a perfect prediction converted by
``metrics.rectangle_from_grasp`` has IoU 1 with its truth.

Near-round objects (thickness > ``ROUND_OBJECT_RATIO`` * length) can also be taken the other way:
a box by its two other faces (centre only), an ellipse or capsule at every angle
(``ROUND_OBJECT_ANGLE_STEPS`` rectangles at the centre, opening = the object's extent along that
direction + clearance), so every angle class of any K <= ``ROUND_OBJECT_ANGLE_STEPS`` is labelled.
In a scene, grasps whose rectangle would touch another object are dropped
(``rectangles_clear_of``).

Angles follow the project convention: radians in [0, pi), counter-clockwise on screen from the
+column axis; angle ``a`` runs along ``(drow, dcol) = (-sin a, cos a)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.training.scene_objects import SceneObject
from sgdn_ros.training.tabletop import distance_to

GRASP_SPACING_PX = 8.0
GRASP_CLEARANCE_PX = 10.0
ELLIPSE_MIN_WIDTH_FRACTION = 0.8
ROUND_OBJECT_RATIO = 0.8
ROUND_OBJECT_ANGLE_STEPS = 120


@dataclass(frozen=True)
class GraspRectangle:
    """A Cornell-style grasp rectangle in image pixels.

    ``angle`` is the direction of the finger line (project convention), ``width`` the finger
    opening along it, ``height`` the jaw size across it.
    """

    row: float
    col: float
    angle: float
    width: float
    height: float

    def __post_init__(self) -> None:
        values = (self.row, self.col, self.angle, self.width, self.height)
        if not all(isinstance(value, numbers.Real) and math.isfinite(value) for value in values):
            raise ValueError(f"grasp rectangle values must be finite numbers, got {self}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grasp rectangle width and height must be > 0, got {self}")
        if not 0.0 <= self.angle < math.pi:
            raise ValueError(
                f"grasp rectangle angle must be in [0, pi) radians, got {self.angle}; "
                "reduce it modulo pi")

    @property
    def finger_direction(self) -> tuple[float, float]:
        """Unit (drow, dcol) along the finger line."""
        return -math.sin(self.angle), math.cos(self.angle)

    def finger_tips(self) -> np.ndarray:
        """(2, 2) float (row, col) of the two open finger tips, at +-width/2 from the centre."""
        drow, dcol = self.finger_direction
        half = self.width / 2
        return np.array([[self.row - half * drow, self.col - half * dcol],
                         [self.row + half * drow, self.col + half * dcol]])

    def corners(self) -> np.ndarray:
        """(4, 2) float (row, col), in Cornell's order: corner 0 -> 1 runs along the finger line
        (its length is the width), 1 -> 2 along the jaw (its length is the height)."""
        drow, dcol = self.finger_direction
        along = np.array([drow, dcol]) * (self.width / 2)
        across = np.array([dcol, -drow]) * (self.height / 2)
        centre = np.array([self.row, self.col])
        return np.stack([centre - along - across, centre + along - across,
                         centre + along + across, centre - along + across])


def object_grasp_rectangles(
    obj: SceneObject,
    spacing_px: float = GRASP_SPACING_PX,
    clearance_px: float = GRASP_CLEARANCE_PX,
) -> list[GraspRectangle]:
    """Every grasp of ``obj`` on its own (module docstring: where, which angles, what sizes)."""
    if not (isinstance(spacing_px, numbers.Real) and 0 < spacing_px < math.inf):
        raise ValueError(f"spacing_px must be a finite number > 0, got {spacing_px!r}")
    if not (isinstance(clearance_px, numbers.Real) and 0 <= clearance_px < math.inf):
        raise ValueError(f"clearance_px must be a finite number >= 0, got {clearance_px!r}")
    half_length, half_thickness = obj.length / 2, obj.thickness / 2
    jaw_px = (obj.thickness + clearance_px) / 2
    long_axis = (-math.cos(obj.grasp_angle), -math.sin(obj.grasp_angle))  # (drow, dcol)
    rectangles = []
    for offset in _positions_along_axis(obj, spacing_px):
        nearest_to_centre = max(abs(offset) - jaw_px / 2, 0.0)
        opening = _chord_width(obj, nearest_to_centre) + clearance_px
        rectangles.append(GraspRectangle(
            row=obj.row + offset * long_axis[0], col=obj.col + offset * long_axis[1],
            angle=obj.grasp_angle, width=opening, height=opening / 2))
    if obj.thickness > ROUND_OBJECT_RATIO * obj.length:
        for turn in _round_object_turns(obj.shape):
            opening = 2 * _extent_along(obj.shape, half_length, half_thickness, turn) + clearance_px
            rectangles.append(GraspRectangle(
                row=obj.row, col=obj.col, angle=(obj.grasp_angle + turn) % math.pi,
                width=opening, height=opening / 2))
    return rectangles


def rectangles_reach(obj: SceneObject, rectangles: Sequence[GraspRectangle]) -> float:
    """Distance from the object's centre beyond which none of its rectangles reaches."""
    return max(math.hypot(r.row - obj.row, r.col - obj.col) + math.hypot(r.width, r.height) / 2
               for r in rectangles)


def rectangles_clear_of(rectangles: list[GraspRectangle], obstacles: Sequence[np.ndarray]
                        ) -> list[GraspRectangle]:
    """The rectangles that keep off every obstacle (coverage maps of other objects).

    Each rectangle is checked at a 9 x 5 grid of points against the distance to the nearest
    obstacle pixel; a point's distance must exceed half a grid cell's diagonal (plus a pixel),
    so no part of the rectangle between the points can reach an obstacle either.
    """
    if not obstacles or not rectangles:
        return rectangles
    distance = distance_to(np.maximum.reduce(obstacles) > 0)
    geometry = np.array([(r.row, r.col, r.angle, r.width, r.height) for r in rectangles])
    rows, cols, angles, widths, heights = geometry.T
    along = np.linspace(-0.5, 0.5, 9)[None, :, None] * widths[:, None, None]
    across = np.linspace(-0.5, 0.5, 5)[None, None, :] * heights[:, None, None]
    sin, cos = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    sample_rows = rows[:, None, None] - along * sin + across * cos
    sample_cols = cols[:, None, None] + along * cos + across * sin
    height, width = distance.shape
    sample_rows = np.clip(np.rint(sample_rows), 0, height - 1).astype(np.intp)
    sample_cols = np.clip(np.rint(sample_cols), 0, width - 1).astype(np.intp)
    reach = np.hypot(widths / 16, heights / 8) + 1.0
    nearest = distance[sample_rows, sample_cols].reshape(len(rectangles), -1).min(axis=1)
    return [rectangle for rectangle, keep in zip(rectangles, nearest > reach) if keep]


def _positions_along_axis(obj: SceneObject, spacing_px: float) -> list[float]:
    """Offsets from the centre along the long axis, every spacing_px, out to the last valid one
    (included even off the spacing grid, so the labelled segment has its full length)."""
    half_length = obj.length / 2
    reach = half_length - obj.thickness / 2
    if obj.shape == "ellipse":
        reach = min(reach, half_length * math.sqrt(1.0 - ELLIPSE_MIN_WIDTH_FRACTION ** 2))
    steps = [spacing_px * k for k in range(1, int(reach / spacing_px + 1e-9) + 1)]
    if reach - (steps[-1] if steps else 0.0) > 0.5:
        steps.append(reach)
    return [0.0] + [sign * step for step in steps for sign in (1.0, -1.0)]


def _chord_width(obj: SceneObject, offset: float) -> float:
    """Width of the object across its long axis at ``offset`` (>= 0) from the centre, within
    the part where grasps are placed (the flat sides of a box or capsule)."""
    if obj.shape == "ellipse":
        fraction = min(offset / (obj.length / 2), 1.0)
        return obj.thickness * math.sqrt(1.0 - fraction ** 2)
    return obj.thickness


def _round_object_turns(shape: str) -> list[float]:
    """Angles, from the grasp across the long axis, of the extra grasps of a near-round object."""
    if shape == "box":
        return [math.pi / 2]
    step = math.pi / ROUND_OBJECT_ANGLE_STEPS
    return [step * k for k in range(1, ROUND_OBJECT_ANGLE_STEPS)]


def _extent_along(shape: str, half_length: float, half_thickness: float, turn: float) -> float:
    """Half the object's extent along a direction ``turn`` away from the across axis: where
    closing parallel jaws stop (support function of the convex outline)."""
    across, along = abs(math.cos(turn)), abs(math.sin(turn))
    if shape == "box":
        return half_thickness * across + half_length * along
    if shape == "ellipse":
        return math.hypot(half_thickness * across, half_length * along)
    return (half_length - half_thickness) * along + half_thickness
