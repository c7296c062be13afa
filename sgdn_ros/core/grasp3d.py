"""The 3-D grasp stage: 2-D grasps + aligned depth + intrinsics -> poses a robot can act on.

A grasp in pixels says nothing about how far away the object is, how wide the opening is in
metres, or how deep the fingers may go before they hit something. This module answers all
three from the depth image aligned to the colour image, following the author's ROS 1 node
(the highest surface on the finger line, then the fingers stepped down until they collide) but
with the camera's own calibration instead of hard-coded intrinsics, a robust surface depth
instead of one pixel, and an exact, gap-free finger test on every depth pixel.

Conventions. Poses are in the camera's OPTICAL frame (REP 103, ``frame_id`` of camera_info):
x right (image columns), y down (image rows), z forward, into the scene. The gripper frame at
a grasp of image angle ``a`` has z = approach = the optical axis +z, x = closing direction =
the finger line (cos a, -sin a, 0), y = z cross x = (sin a, cos a, 0); its orientation is a
rotation about z by -a, quaternion (x, y, z, w) = (0, 0, sin(-a/2), cos(-a/2))::

    in the image, for a = 0                  side view, looking along y_g

    o------> x (columns)                                camera
    |                                                     |   z_g = approach = +z
    |    [##]------+------[##]  --> x_g                   v
    v y  finger    |    finger    (closing)      pre_grasp_position (pre_grasp_offset_m up)
  (rows)           v y_g                                  :
                                              ---[##]-----+-----[##]---  surface_depth_m:
    For a > 0 the finger line turns              [##]     :     [##]     + = surface_point
    counter-clockwise on screen by a.            [##]     :     [##]     grasp_depth_m down
                                                 [##]     o     [##]     o = position (tips)
                                                     <-width_m->

``surface_depth_m`` is a low percentile of the valid depths sampled between the finger tips:
the top of the object, robust to a stray pixel. The fingers (``finger_thickness_m`` along the
closing direction, ``finger_width_m`` across it, placed just outside the opening) go down from
the surface in steps of ``grasp_depth_step_m``; at each step a depth pixel collides when its
centre lies inside a finger's rectangle projected to the image at the finger-tip depth and its
depth is smaller (nearer the camera) than the tips: its ray meets a surface before reaching
the tips, so the space the tips need is taken or hidden behind that surface, and hidden space
counts as occupied (beside an off-axis object, a strip of the table is hidden below its outer
edge). ``grasp_depth_m`` is the last step before the first collision, at most
``max_grasp_depth_m``. Every pixel is tested, for all steps at once: a rectangle's projection
scales with 1/depth, so each pixel collides over one interval of tip depths, computed in
closed form. Finger rectangles that leave the image are tested only where they are in it.

A model whose widths are in metres gives ``width_m`` and, without a known image scale, a NaN
``width_px``: its opening is projected to pixels at the surface depth under the grasp centre
(to sample the finger line) and is the pose's ``width_m`` as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from sgdn_ros.core.camera import CameraModel
from sgdn_ros.core.decoding import Grasp

INVALID_REASONS = ("off_depth_image", "no_depth", "collision")

Vector3 = tuple[float, float, float]
_NAN3: Vector3 = (math.nan, math.nan, math.nan)
_TOLERANCE_M = 1e-9  # float noise in depth arithmetic, far below any camera's resolution
_CENTRE_HALF_LENGTH_PX = 2.0  # the surface under a metric grasp's centre: 5 px of its line


class GripperGeometryError(ValueError):
    """Gripper dimensions or depth-sampling settings that make no sense."""


@dataclass(frozen=True)
class GripperGeometry:
    """The parallel-jaw gripper's fingers and how grasps are measured in the depth image."""

    finger_width_m: float = 0.03  # finger extent across the closing direction
    finger_thickness_m: float = 0.01  # finger extent along the closing direction
    max_grasp_depth_m: float = 0.03  # deepest the finger tips go below the surface
    grasp_depth_step_m: float = 0.003
    min_grasp_depth_m: float = 0.003  # shallower grasps are rejected as "collision"
    pre_grasp_offset_m: float = 0.10  # pre-grasp distance back along the approach
    min_valid_fraction: float = 0.5  # of the finger-line depth samples, else "no_depth"
    surface_percentile: float = 10.0  # of the valid finger-line depths: the surface

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise GripperGeometryError(f"{field.name} must be a finite number, got {value!r}")
        for name in ("finger_width_m", "finger_thickness_m", "max_grasp_depth_m",
                     "grasp_depth_step_m"):
            if getattr(self, name) <= 0:
                raise GripperGeometryError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.grasp_depth_step_m > self.max_grasp_depth_m:
            raise GripperGeometryError(
                f"grasp_depth_step_m ({self.grasp_depth_step_m}) must not exceed "
                f"max_grasp_depth_m ({self.max_grasp_depth_m})")
        if not 0 <= self.min_grasp_depth_m <= self.max_grasp_depth_m:
            raise GripperGeometryError(
                f"min_grasp_depth_m must be in [0, max_grasp_depth_m = "
                f"{self.max_grasp_depth_m}], got {self.min_grasp_depth_m}")
        if self.pre_grasp_offset_m < 0:
            raise GripperGeometryError(
                f"pre_grasp_offset_m must be >= 0, got {self.pre_grasp_offset_m}")
        if not 0 < self.min_valid_fraction <= 1:
            raise GripperGeometryError(
                f"min_valid_fraction must be in (0, 1], got {self.min_valid_fraction}")
        if not 0 <= self.surface_percentile <= 100:
            raise GripperGeometryError(
                f"surface_percentile must be in [0, 100], got {self.surface_percentile}")

    @property
    def depth_steps(self) -> int:
        """How many steps of ``grasp_depth_step_m`` fit in ``max_grasp_depth_m``."""
        return int(math.floor(self.max_grasp_depth_m / self.grasp_depth_step_m + 1e-9))


@dataclass(frozen=True)
class Grasp3D:
    """One grasp located in 3-D, in the camera's optical frame (metres; see the module).

    Invalid grasps (``reason`` one of ``INVALID_REASONS``) keep what could be measured and NaN
    for the rest; ``orientation`` is always known.
    """

    valid: bool
    reason: str
    surface_depth_m: float
    surface_point: Vector3
    grasp_depth_m: float
    position: Vector3
    orientation: tuple[float, float, float, float]
    pre_grasp_position: Vector3
    width_m: float


def grasps_in_3d(grasps: Sequence[Grasp], depth_m: np.ndarray, camera: CameraModel,
                 gripper: GripperGeometry) -> list[Grasp3D]:
    """One ``Grasp3D`` per grasp, in their order.

    ``depth_m`` is the depth image in metres (NaN in holes, as ``depth_to_metres`` gives it),
    aligned to the colour image the grasps were found in and of the camera model's size.
    """
    _check_depth_image(depth_m, camera)
    if not grasps:
        return []
    angles = np.array([grasp.angle for grasp in grasps], dtype=np.float64)
    centres = np.array([(grasp.col, grasp.row) for grasp in grasps], dtype=np.float64)
    closing = np.stack([np.cos(angles), -np.sin(angles)], axis=1)
    metric = np.array([math.isnan(grasp.width_px) for grasp in grasps])
    half_widths = np.array([grasp.width_px / 2 for grasp in grasps], dtype=np.float64)
    if metric.any():
        metric_widths = np.array([grasp.width_m for grasp in grasps])[metric]
        half_widths[metric] = _half_widths_px(centres[metric], closing[metric], metric_widths,
                                              depth_m, camera, gripper)
    tip_offsets = closing * half_widths[:, np.newaxis]
    # (grasps, 3 points: centre, tip on +closing, tip on -closing, 2: col, row)
    points = np.stack([centres, centres + tip_offsets, centres - tip_offsets], axis=1)
    on_image = _inside_image(points, depth_m.shape).all(axis=1)
    surface = _surface_depths(centres, tip_offsets, on_image, depth_m, gripper)
    ray_x, ray_y = camera.normalized_rays(points[..., 0], points[..., 1])
    axes = np.stack([ray_x[:, 0], ray_y[:, 0]], axis=1) * surface[:, np.newaxis]
    widths = surface * np.hypot(ray_x[:, 1] - ray_x[:, 2], ray_y[:, 1] - ray_y[:, 2])
    if metric.any():
        widths[metric] = metric_widths
    measurable = np.isfinite(surface)
    free_steps = np.zeros(len(grasps), dtype=np.int64)
    if measurable.any():
        free_steps[measurable] = _free_steps(
            axes[measurable], surface[measurable], closing[measurable], widths[measurable],
            depth_m, camera, gripper)
    grasp_depths = free_steps * gripper.grasp_depth_step_m
    reasons = np.where(~on_image, "off_depth_image", np.where(
        ~measurable, "no_depth", np.where(
            grasp_depths < gripper.min_grasp_depth_m - _TOLERANCE_M, "collision", "")))
    return [_grasp_3d(str(reason), angle, tuple(axis), depth, grasp_depth, width, gripper)
            for reason, angle, axis, depth, grasp_depth, width in zip(
                reasons, angles.tolist(), axes.tolist(), surface.tolist(),
                grasp_depths.tolist(), widths.tolist())]


def _check_depth_image(depth_m: np.ndarray, camera: CameraModel) -> None:
    if not isinstance(depth_m, np.ndarray) or depth_m.ndim != 2 or depth_m.dtype.kind != "f":
        shape = getattr(depth_m, "shape", type(depth_m).__name__)
        raise ValueError(
            f"expected the depth image as an (H, W) float array in metres, got {shape}; "
            "convert the depth message with depth_to_metres")
    if depth_m.shape != (camera.height, camera.width):
        raise ValueError(
            f"the depth image is {depth_m.shape[1]}x{depth_m.shape[0]} but camera_info "
            f"describes {camera.width}x{camera.height} (width x height); use depth aligned to "
            "the colour image and the colour camera's camera_info (RealSense: "
            "aligned_depth_to_color)")


def _inside_image(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Whether (col, row) positions fall on a pixel of the image (pixel centres at integers)."""
    height, width = shape
    cols, rows = points[..., 0], points[..., 1]
    return (cols >= -0.5) & (cols < width - 0.5) & (rows >= -0.5) & (rows < height - 0.5)


def _half_widths_px(centres: np.ndarray, closing: np.ndarray, widths_m: np.ndarray,
                    depth_m: np.ndarray, camera: CameraModel, gripper: GripperGeometry
                    ) -> np.ndarray:
    """Half of metric openings in pixels: the finger tips, ``widths_m`` apart along the closing
    direction at the surface depth under each centre, projected. 0 where that depth or the
    width is unknown, so the grasp is judged by its centre alone (off the image, no depth)."""
    on_image = _inside_image(centres, depth_m.shape)
    depths = _surface_depths(centres, closing * _CENTRE_HALF_LENGTH_PX, on_image, depth_m,
                             gripper)
    known = np.isfinite(depths) & np.isfinite(widths_m)
    half_widths = np.zeros(len(centres))
    if not known.any():
        return half_widths
    depths = depths[known]
    ray_x, ray_y = camera.normalized_rays(centres[known, 0], centres[known, 1])
    centre_points = np.stack([ray_x * depths, ray_y * depths, depths], axis=1)
    directions = np.concatenate([closing[known], np.zeros((len(depths), 1))], axis=1)
    tip_offsets = directions * (widths_m[known] / 2)[:, np.newaxis]
    cols, rows = camera.project(
        np.stack([centre_points + tip_offsets, centre_points - tip_offsets], axis=1))
    half_widths[known] = np.hypot(cols[:, 0] - cols[:, 1], rows[:, 0] - rows[:, 1]) / 2
    return half_widths


def _surface_depths(centres: np.ndarray, tip_offsets: np.ndarray, on_image: np.ndarray,
                    depth_m: np.ndarray, gripper: GripperGeometry) -> np.ndarray:
    """The low percentile of the valid depths on each finger line (one sample per pixel of
    length); NaN off the image or where too few samples are valid."""
    height, width = depth_m.shape
    lengths = 2 * np.hypot(tip_offsets[:, 0], tip_offsets[:, 1])
    samples = max(2, int(math.ceil(lengths[on_image].max(initial=0.0))) + 1)
    fractions = np.arange(samples) * (2 / (samples - 1)) - 1
    line = centres[:, np.newaxis, :] + fractions[:, np.newaxis] * tip_offsets[:, np.newaxis, :]
    cols = np.minimum(np.maximum(np.rint(line[..., 0]), 0), width - 1).astype(np.intp)
    rows = np.minimum(np.maximum(np.rint(line[..., 1]), 0), height - 1).astype(np.intp)
    depths = np.sort(depth_m[rows, cols], axis=1)  # NaN sorts last
    valid_counts = np.count_nonzero(np.isfinite(depths), axis=1)
    rank = np.floor(gripper.surface_percentile / 100 * np.maximum(valid_counts - 1, 0))
    surface = depths[np.arange(len(depths)), rank.astype(np.intp)]
    enough = on_image & (valid_counts >= gripper.min_valid_fraction * samples)
    return np.where(enough, surface, np.nan).astype(np.float64)


def _free_steps(axes: np.ndarray, surface: np.ndarray, closing: np.ndarray,
                widths: np.ndarray, depth_m: np.ndarray, camera: CameraModel,
                gripper: GripperGeometry) -> np.ndarray:
    """For each grasp, how many depth steps the fingers go down before the first collision.

    Both fingers of all grasps are tested together: finger f (grasp f % grasps) lies along
    ``sides[f]`` (+-closing) from the grasp axis, from ``inner[f]`` (half the opening) to
    ``inner[f]`` + the finger thickness, and across it +- half the finger width. Each
    candidate pixel collides over one interval of tip depths; the first step inside it, if
    any, is that pixel's hit.
    """
    steps, step = gripper.depth_steps, gripper.grasp_depth_step_m
    grasp_of_finger = np.arange(2 * len(axes)) % len(axes)
    sides = np.concatenate([closing, -closing])
    finger_axes, finger_surface = axes[grasp_of_finger], surface[grasp_of_finger]
    inner = widths[grasp_of_finger] / 2
    fingers, pixels, depths = _near_pixels(
        finger_axes, sides, inner, inner + gripper.finger_thickness_m, finger_surface + step,
        finger_surface + steps * step, depth_m, camera, gripper.finger_width_m)
    # Per candidate pixel: its finger's closing direction (side) and across = side turned by
    # +90 degrees; the grasp axis's coordinates along both; where the finger starts.
    side_x, side_y = sides[:, 0].take(fingers), sides[:, 1].take(fingers)
    axis_along = np.sum(sides * finger_axes, axis=1).take(fingers)
    axis_across = (sides[:, 0] * finger_axes[:, 1] - sides[:, 1] * finger_axes[:, 0]).take(fingers)
    finger_inner, start = inner.take(fingers), finger_surface.take(fingers)
    ray_x, ray_y = (table.take(pixels) for table in camera.pixel_ray_table())
    # The pixel's point at tip depth z, relative to the grasp axis, in finger coordinates:
    # along = (side . ray) z - axis_along, across likewise; both linear in z.
    enter_along, leave_along = _depth_interval(
        side_x * ray_x + side_y * ray_y, axis_along, finger_inner,
        finger_inner + gripper.finger_thickness_m)
    half_finger = gripper.finger_width_m / 2
    enter_across, leave_across = _depth_interval(
        side_x * ray_y - side_y * ray_x, axis_across, -half_finger, half_finger)
    first_inside = np.ceil((np.maximum(enter_along, enter_across) - start) * (1 / step)
                           - _TOLERANCE_M / step)
    first_below = np.floor((depths - start) * (1 / step)) + 1  # tips deeper than the pixel
    first_hit = np.maximum(np.maximum(first_inside, first_below), 1)
    leave = np.minimum(leave_along, leave_across) + _TOLERANCE_M
    hits = np.where((start + first_hit * step <= leave) & (first_hit <= steps),
                    first_hit, steps + 1)
    return _first_per_grasp(fingers, hits, len(axes), steps + 1) - 1


def _first_per_grasp(fingers: np.ndarray, hits: np.ndarray, grasps: int, none: int
                     ) -> np.ndarray:
    """The smallest hit of each grasp's two fingers (f and f + grasps), ``none`` if it has
    none; ``fingers`` is sorted, so each finger's hits are one run."""
    runs = np.searchsorted(fingers, np.arange(2 * grasps + 1))
    has_hits = runs[1:] > runs[:-1]
    first = np.full(2 * grasps, none, dtype=np.int64)
    if has_hits.any():
        first[has_hits] = np.minimum.reduceat(hits, runs[:-1][has_hits])
    return np.minimum(first[:grasps], first[grasps:])


def _near_pixels(finger_axes: np.ndarray, sides: np.ndarray, inner: np.ndarray,
                 outer: np.ndarray, shallowest: np.ndarray, deepest: np.ndarray,
                 depth_m: np.ndarray, camera: CameraModel, finger_width: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finger, flat pixel index, depth) of the pixels that may collide with each finger, in
    finger order: those in the image box that holds its rectangle at every tip depth from
    ``shallowest`` to ``deepest``, and nearer than ``deepest``.

    The rectangle's corners move along straight image lines as the depth changes, so the box
    of the corners at both ends holds it at all depths in between (one pixel of margin for
    the bending of a distorted lens).
    """
    across = np.stack([-sides[:, 1], sides[:, 0]], axis=1)
    along = np.stack([inner, outer], axis=1)[:, :, np.newaxis, np.newaxis]
    signs = np.array([-0.5, 0.5])[np.newaxis, np.newaxis, :, np.newaxis] * finger_width
    lateral = (finger_axes[:, np.newaxis, np.newaxis] + along * sides[:, np.newaxis, np.newaxis]
               + signs * across[:, np.newaxis, np.newaxis]).reshape(-1, 1, 4, 2)
    corners = np.empty((len(sides), 2, 4, 3))
    corners[..., :2] = lateral
    corners[..., 2] = np.stack([shallowest, deepest], axis=1)[:, :, np.newaxis]
    corner_cols, corner_rows = camera.project(corners.reshape(len(sides), 8, 3))
    height, width = depth_m.shape
    top = np.maximum(np.floor(corner_rows.min(axis=1)) - 1, 0).astype(np.intp)
    left = np.maximum(np.floor(corner_cols.min(axis=1)) - 1, 0).astype(np.intp)
    last_row = np.minimum(np.ceil(corner_rows.max(axis=1)) + 1, height - 1).astype(np.intp)
    last_col = np.minimum(np.ceil(corner_cols.max(axis=1)) + 1, width - 1).astype(np.intp)
    box_rows = np.arange(max(int((last_row - top).max()) + 1, 0))
    box_cols = np.arange(max(int((last_col - left).max()) + 1, 0))
    in_box = ((box_rows[:, np.newaxis] <= (last_row - top)[:, np.newaxis, np.newaxis])
              & (box_cols <= (last_col - left)[:, np.newaxis, np.newaxis]))
    flat = ((top * width + left)[:, np.newaxis, np.newaxis]
            + (box_rows[:, np.newaxis] * width + box_cols)[np.newaxis])
    depths = depth_m.take(flat, mode="clip")
    near = depths < deepest.astype(depth_m.dtype)[:, np.newaxis, np.newaxis]
    candidates = np.flatnonzero(in_box & near)
    fingers = candidates // (box_rows.size * box_cols.size)
    return fingers, flat.take(candidates), depths.take(candidates).astype(np.float64)


def _depth_interval(slope: np.ndarray, offset: np.ndarray, low: np.ndarray | float,
                    high: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The depths z with low <= slope * z - offset <= high, as (from, to); empty when
    from > to. A zero slope gives (-inf, inf) or an empty interval, as it should."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1 / slope
        first, second = (low + offset) * inverse, (high + offset) * inverse
    return np.minimum(first, second), np.maximum(first, second)


def _grasp_3d(reason: str, angle: float, axis: tuple[float, float], surface_depth: float,
              grasp_depth: float, width: float, gripper: GripperGeometry) -> Grasp3D:
    orientation = (0.0, 0.0, math.sin(-angle / 2), math.cos(-angle / 2))
    if reason in ("off_depth_image", "no_depth"):
        return Grasp3D(valid=False, reason=reason, surface_depth_m=math.nan,
                       surface_point=_NAN3, grasp_depth_m=math.nan, position=_NAN3,
                       orientation=orientation, pre_grasp_position=_NAN3, width_m=math.nan)
    x, y = axis
    tips_depth = surface_depth + grasp_depth
    return Grasp3D(valid=not reason, reason=reason, surface_depth_m=surface_depth,
                   surface_point=(x, y, surface_depth), grasp_depth_m=grasp_depth,
                   position=(x, y, tips_depth), orientation=orientation,
                   pre_grasp_position=(x, y, tips_depth - gripper.pre_grasp_offset_m),
                   width_m=width)
