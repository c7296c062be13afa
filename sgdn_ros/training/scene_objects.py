"""The objects on a generated table: their shapes (box, ellipse, capsule) and pixel coverage.

Both renderers draw the same objects: the demo's (``scenes``) and the training one
(``grasp_scenes``). Objects are drawn from signed distance functions, so their edges are
anti-aliased and their centres and sizes are exact to a fraction of a pixel.

Angles follow the project's convention: counter-clockwise on screen from the image +x (column)
axis, in [0, pi); with rows pointing down, angle ``a`` runs along ``(dcol, drow) = (cos a,
-sin a)``. A grasp goes across an object, so ``grasp_angle`` is perpendicular to its long axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OBJECT_PALETTE_BGR: tuple[tuple[int, int, int], ...] = (
    (30, 25, 130),   # dark red
    (120, 45, 25),   # dark blue
    (40, 100, 30),   # dark green
    (90, 30, 80),    # dark purple
    (25, 50, 90),    # dark brown
    (90, 80, 20),    # dark teal
    (35, 35, 40),    # near black
)

SignedDistance = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]


def _box_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                  half_thickness: float) -> np.ndarray:
    outside_along = np.abs(along) - half_length
    outside_across = np.abs(across) - half_thickness
    outer = np.hypot(np.maximum(outside_along, 0.0), np.maximum(outside_across, 0.0))
    inner = np.minimum(np.maximum(outside_along, outside_across), 0.0)
    return outer + inner


def _ellipse_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                      half_thickness: float) -> np.ndarray:
    """First-order distance (implicit value over its gradient): exact enough at the outline."""
    implicit = (along / half_length) ** 2 + (across / half_thickness) ** 2 - 1.0
    gradient = 2.0 * np.hypot(along / half_length ** 2, across / half_thickness ** 2)
    return implicit / np.maximum(gradient, 1e-9)


def _capsule_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                      half_thickness: float) -> np.ndarray:
    spine_half_length = half_length - half_thickness
    beyond_spine = np.maximum(np.abs(along) - spine_half_length, 0.0)
    return np.hypot(beyond_spine, across) - half_thickness


_SIGNED_DISTANCES: dict[str, SignedDistance] = {
    "box": _box_distance,
    "ellipse": _ellipse_distance,
    "capsule": _capsule_distance,
}
SHAPES: tuple[str, ...] = tuple(_SIGNED_DISTANCES)


@dataclass(frozen=True)
class SceneObject:
    """One object on the table and the grasp across it (image pixels, project angle convention)."""

    row: float
    col: float
    length: float
    thickness: float
    grasp_angle: float
    shape: str = "box"
    colour_bgr: tuple[int, int, int] = OBJECT_PALETTE_BGR[0]

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if not 0.0 < self.thickness <= self.length:
            raise ValueError(
                f"need 0 < thickness <= length, got thickness {self.thickness} and length "
                f"{self.length}; length is the long axis")
        if not 0.0 <= self.grasp_angle < math.pi:
            raise ValueError(
                f"grasp_angle must be in [0, pi) radians, got {self.grasp_angle}; "
                "reduce it modulo pi")
        if len(self.colour_bgr) != 3 or not all(0 <= c <= 255 for c in self.colour_bgr):
            raise ValueError(f"colour_bgr must be three values in 0..255, got {self.colour_bgr}")

    @property
    def long_axis_angle(self) -> float:
        """Direction of the long axis, in [0, pi): a quarter turn from the grasp."""
        return (self.grasp_angle + math.pi / 2) % math.pi

    @property
    def bounding_radius(self) -> float:
        """Radius of a circle around the centre that holds the whole object."""
        return math.hypot(self.length, self.thickness) / 2


def object_coverage(obj: SceneObject, height: int, width: int) -> np.ndarray:
    """Fraction of each pixel covered by ``obj``, as (height, width) float32 in [0, 1].

    Pixel centres lie at integer (row, col), so an object centred on (row, col) covers the
    pixel there symmetrically.
    """
    coverage = np.zeros((height, width), dtype=np.float32)
    reach = obj.bounding_radius + 2.0
    top, bottom = max(int(obj.row - reach), 0), min(int(obj.row + reach) + 2, height)
    left, right = max(int(obj.col - reach), 0), min(int(obj.col + reach) + 2, width)
    if top >= bottom or left >= right:
        return coverage
    up = obj.row - np.arange(top, bottom, dtype=np.float64)[:, None]
    right_of = np.arange(left, right, dtype=np.float64)[None, :] - obj.col
    cos_grasp, sin_grasp = math.cos(obj.grasp_angle), math.sin(obj.grasp_angle)
    across = right_of * cos_grasp + up * sin_grasp
    along = up * cos_grasp - right_of * sin_grasp
    distance = _SIGNED_DISTANCES[obj.shape](along, across, obj.length / 2, obj.thickness / 2)
    coverage[top:bottom, left:right] = np.clip(0.5 - distance, 0.0, 1.0)
    return coverage
