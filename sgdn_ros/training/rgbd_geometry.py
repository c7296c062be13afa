"""The geometry of the RGB-D scenes: the camera, solid objects on a table, and rays meeting them.

The RGB-D scenes (``rgbd_scenes``) hold boxes and upright cylinders with real heights, so their
depth images must come from geometry, not from painted outlines: every pixel's ray (from the
camera's intrinsics and distortion) is cast against the table plane and each object, and the
nearest hit wins (a z-buffer). Everything here is in the camera's optical frame (x right, y down,
z forward) and vectorised over rays.

An object's local frame: ``long_axis`` along the table (a box's length), ``short_axis`` across it
(``up`` x ``long_axis``), ``up`` the table normal; its origin is the centre of the face resting on
the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.camera import CameraModel

REALSENSE_COLOUR_K = (613.4, 0.0, 329.1, 0.0, 613.5, 244.2, 0.0, 0.0, 1.0)
OBJECT_SHAPES = ("box", "cylinder")

_CIRCLE_OUTLINE_POINTS = 24
_NEAREST_HIT_M = 1e-9


@dataclass(frozen=True)
class RgbdCamera(CameraModel):
    """The scenes' camera: a ``CameraModel`` (what its camera_info carries; here "plumb_bob"
    distortion, k1, k2, t1, t2, k3, all zero or empty: none) and its height above the table."""

    height_above_table_m: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.distortion_model != "plumb_bob":
            raise ValueError(f"the scenes' camera uses plumb_bob distortion, got "
                             f"{self.distortion_model!r}")
        if not self.height_above_table_m > 0.0:
            raise ValueError(f"height_above_table_m must be > 0, got {self.height_above_table_m}")

    def project_to_pixels(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame -> (N, 2) pixel (row, col), distortion included."""
        cols, rows = self.project(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        return np.stack([rows, cols], axis=-1)

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) float64 ray through each pixel centre, scaled to z = 1: the distance along
        a ray to a point is then the point's depth."""
        rows, cols = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        x, y = self.normalized_rays(cols, rows)
        return np.stack([x, y, np.ones_like(x)], axis=-1)


def realsense_camera(height_above_table_m: float = 0.6, d: Sequence[float] = ()) -> RgbdCamera:
    """A RealSense D435's colour camera at 640x480 (typical factory intrinsics), by default
    without distortion, as its driver reports it."""
    return RgbdCamera(width=640, height=480, k=REALSENSE_COLOUR_K, distortion_model="plumb_bob",
                      d=tuple(float(value) for value in d), frame_id="camera_color_optical_frame",
                      height_above_table_m=float(height_above_table_m))


@dataclass(frozen=True)
class TableObject:
    """A box or upright cylinder on the table: pose (metres, unit vectors) and size.

    A cylinder's ``length_m`` and ``width_m`` are both its diameter; its ``long_axis`` only
    fixes the directions its grasps are measured from.
    """

    shape: str
    base_centre_m: tuple[float, float, float]
    up: tuple[float, float, float]
    long_axis: tuple[float, float, float]
    length_m: float
    width_m: float
    height_m: float
    colour_bgr: tuple[int, int, int]

    def __post_init__(self) -> None:
        if self.shape not in OBJECT_SHAPES:
            raise ValueError(f"shape must be one of {', '.join(OBJECT_SHAPES)}, got {self.shape!r}")
        if not 0.0 < self.width_m <= self.length_m or self.height_m <= 0.0:
            raise ValueError(
                f"need 0 < width_m <= length_m and height_m > 0, got {self.width_m}, "
                f"{self.length_m}, {self.height_m}; length is the long side")
        if self.shape == "cylinder" and self.width_m != self.length_m:
            raise ValueError(f"a cylinder's length_m and width_m are both its diameter, got "
                             f"{self.length_m} and {self.width_m}")
        if abs(float(np.dot(self.up, self.long_axis))) > 1e-6:
            raise ValueError("long_axis must lie in the table plane (perpendicular to up)")

    @property
    def short_axis(self) -> tuple[float, float, float]:
        """Unit vector across the object in the table plane: ``up`` x ``long_axis``."""
        return tuple(float(v) for v in np.cross(self.up, self.long_axis))

    @property
    def top_centre_m(self) -> tuple[float, float, float]:
        """Centre of the top face, where the object's grasps are centred."""
        return tuple(float(v) for v in np.add(self.base_centre_m,
                                              np.multiply(self.up, self.height_m)))

    def local_basis(self) -> np.ndarray:
        """(3, 3) rows: long axis, short axis, up; multiplying frame vectors gives local ones."""
        return np.array([self.long_axis, self.short_axis, self.up], dtype=np.float64)

    def outline_points(self) -> np.ndarray:
        """(N, 3) points whose convex hull holds the object (a box's corners; a polygon around
        each of a cylinder's end circles): what its image and shadow reach is judged from."""
        half_length, half_width = self.length_m / 2, self.width_m / 2
        if self.shape == "box":
            along, across = np.meshgrid([-half_length, half_length], [-half_width, half_width])
        else:
            turns = np.linspace(0.0, 2 * math.pi, _CIRCLE_OUTLINE_POINTS, endpoint=False)
            circumscribed = half_width / math.cos(math.pi / _CIRCLE_OUTLINE_POINTS)
            along, across = circumscribed * np.cos(turns), circumscribed * np.sin(turns)
        ring = np.stack([along.ravel(), across.ravel()], axis=1)
        local = np.concatenate([np.pad(ring, ((0, 0), (0, 1))),
                                np.pad(ring, ((0, 0), (0, 1)), constant_values=self.height_m)])
        return local @ self.local_basis() + np.asarray(self.base_centre_m)


def cast_rays(obj: TableObject, origins: np.ndarray, directions: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Where rays ``origins + t * directions`` ((N, 3) or broadcastable) first meet ``obj``.

    Returns t (N,) (inf where a ray misses it; rays start outside it) and the outward
    surface normal (N, 3) at each hit, in the frame of the inputs.
    """
    basis = obj.local_basis()
    offsets = np.asarray(origins, dtype=np.float64) - np.asarray(obj.base_centre_m)
    local_origins = offsets @ basis.T
    local_directions = np.asarray(directions, dtype=np.float64) @ basis.T
    local_origins, local_directions = np.broadcast_arrays(local_origins, local_directions)
    if obj.shape == "box":
        t, local_normals = _cast_at_box(obj, local_origins, local_directions)
    else:
        t, local_normals = _cast_at_cylinder(obj, local_origins, local_directions)
    return t, local_normals @ basis


def _cast_at_box(obj: TableObject, origins: np.ndarray, directions: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Slab method: a ray is inside the box between its last entry into and first exit from the
    three pairs of parallel faces; the face of the last entry is the one it hits."""
    low = np.array([-obj.length_m / 2, -obj.width_m / 2, 0.0])
    high = np.array([obj.length_m / 2, obj.width_m / 2, obj.height_m])
    safe_directions = np.where(directions == 0.0, 1e-12, directions)
    to_low, to_high = (low - origins) / safe_directions, (high - origins) / safe_directions
    entries, exits = np.minimum(to_low, to_high), np.maximum(to_low, to_high)
    entry_axis = entries.argmax(axis=1)
    t_enter = np.take_along_axis(entries, entry_axis[:, None], axis=1)[:, 0]
    hit = (t_enter <= exits.min(axis=1)) & (t_enter > _NEAREST_HIT_M)
    normals = np.zeros_like(origins)
    rows = np.arange(len(origins))
    normals[rows, entry_axis] = -np.sign(safe_directions[rows, entry_axis])
    return np.where(hit, t_enter, np.inf), normals


def _cast_at_cylinder(obj: TableObject, origins: np.ndarray, directions: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The nearer of the side (the entering root of the circle's quadratic, between base and
    top) and the top cap (a disc); rays from above reach nothing else first."""
    radius = obj.width_m / 2
    flat_origins, flat_directions = origins[:, :2], directions[:, :2]
    a = np.maximum((flat_directions ** 2).sum(axis=1), 1e-300)
    b = 2.0 * (flat_origins * flat_directions).sum(axis=1)
    c = (flat_origins ** 2).sum(axis=1) - radius ** 2
    discriminant = b * b - 4.0 * a * c
    t_side = (-b - np.sqrt(np.maximum(discriminant, 0.0))) / (2.0 * a)
    side_height = origins[:, 2] + t_side * directions[:, 2]
    side_hit = ((discriminant >= 0.0) & (t_side > _NEAREST_HIT_M)
                & (side_height >= 0.0) & (side_height <= obj.height_m))
    safe_rise = np.where(directions[:, 2] == 0.0, 1e-12, directions[:, 2])
    t_top = (obj.height_m - origins[:, 2]) / safe_rise
    on_top = flat_origins + t_top[:, None] * flat_directions
    top_hit = ((on_top ** 2).sum(axis=1) <= radius ** 2) & (t_top > _NEAREST_HIT_M)
    side_points = flat_origins + np.where(side_hit, t_side, 0.0)[:, None] * flat_directions
    side_normals = np.pad(side_points / radius, ((0, 0), (0, 1)))
    t_side = np.where(side_hit, t_side, np.inf)
    t_top = np.where(top_hit, t_top, np.inf)
    normals = np.where((t_top <= t_side)[:, None], [0.0, 0.0, 1.0], side_normals)
    return np.minimum(t_side, t_top), normals
