"""Rendered RGB-D tabletop scenes with true 3-D grasps, as a RealSense looking down sees them.

The 3-D stages (depth at a grasp, its pose in the camera frame) need test images whose geometry
is known exactly. Here a camera with a RealSense D435's colour intrinsics hangs 0.5-0.7 m above a
table, looking straight down (optionally tilted a few degrees); boxes and upright cylinders of
real sizes stand on the table inside the centre crop the network sees. Every pixel's ray is cast
against the table and the objects (``rgbd_geometry``: the camera, objects, ray casting), which
gives:

- a noiseless depth image (metres along the optical axis, the z of the hit point),
- a depth image as the sensor would give it: Gaussian noise growing with z^2 (1 mm at 0.6 m),
  quantised to millimetres, with holes (0) in random bands along depth steps and a few random
  small holes,
- a colour image in the demo's style (``scenes``: its light table, dark objects, soft shadows),
  with the objects' top faces and visible sides shaded by one light from the upper left,
- for each object its true grasps: across a box's short side (also across its long side when the
  box is nearly square) or across a cylinder at several angles, all through the top face's centre.

Colour and depth are registered (one camera, like RealSense's ``aligned_depth_to_color``).
Frames and conventions: the camera's optical frame (x right, y down, z forward); pixel centres at
integer (row, col); grasp angles as the project's ``Grasp``: the finger line runs along
(dcol, drow) = (cos(angle), -sin(angle)), angle in [0, pi).

Speed: one 640x480 scene renders in 60-75 ms (median of 20; 3 or 5 objects alike) on the
project's 2-core CPU: vectorised NumPy, objects ray-cast only inside their own image regions; the
demo's table is a third of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sgdn_ros.training.depth_sensor import measure_depth
from sgdn_ros.training.grasp_rectangles import ROUND_OBJECT_RATIO
from sgdn_ros.training.rgbd_geometry import RgbdCamera, TableObject, cast_rays, realsense_camera
from sgdn_ros.training.scene_objects import OBJECT_PALETTE_BGR
from sgdn_ros.training.scenes import network_crop_bounds, render_tabletop_scene
from sgdn_ros.training.tabletop import darken_under_shadow

__all__ = ["RgbdCamera", "RgbdScene", "TableObject", "TrueGrasp", "realsense_camera",
           "render_rgbd_scene"]

CAMERA_HEIGHT_RANGE_M = (0.5, 0.7)
MAX_TILT_DEG = 15.0
BOX_LENGTH_RANGE_M = (0.04, 0.10)
BOX_WIDTH_RANGE_M = (0.02, 0.045)
CYLINDER_DIAMETER_RANGE_M = (0.03, 0.06)
OBJECT_HEIGHT_RANGE_M = (0.02, 0.08)
CYLINDER_FRACTION = 0.3
CYLINDER_GRASP_ANGLES = 6
MIN_OBJECT_GAP_PX = 20.0

_PLACEMENT_ROUNDS = 8
_PLACEMENT_ATTEMPTS = 400
_CROP_MARGIN_PX = 6.0
_REGION_PADDING_PX = 2
_LIGHT_IN_TABLE_FRAME = (-0.15, 0.15, 1.0)  # image-right, image-up, table normal: upper left
_AMBIENT_SHADE = 0.55
_SHADOW_STRENGTH = 0.3
_SHADOW_BLUR_SIGMA = 2.0
_OPTICS_BLUR_SIGMA = 0.6
_OBJECT_GRAIN = 1.5


@dataclass(frozen=True)
class TrueGrasp:
    """A parallel-jaw grasp through the centre of an object's top face.

    (row, col), ``angle`` and ``width_px`` as the project's ``Grasp`` (the opening seen at the
    top face); ``surface_point`` is the top-face centre in the optical frame (metres) and
    ``surface_depth_m`` its z; ``width_m`` the object's extent between the jaws.
    """

    object_index: int
    row: float
    col: float
    angle: float
    width_px: float
    width_m: float
    surface_point: tuple[float, float, float]
    surface_depth_m: float


@dataclass(frozen=True)
class RgbdScene:
    """One rendered RGB-D frame and its truth.

    ``bgr`` (H, W, 3) uint8; ``depth_mm`` (H, W) uint16 as the sensor gives it (0: no reading);
    ``depth_m_truth`` (H, W) float32 noiseless; the table is the plane of points p with
    dot(table_up, p) = -camera.height_above_table_m (``table_up``: unit, towards the camera).
    """

    bgr: np.ndarray
    depth_mm: np.ndarray
    depth_m_truth: np.ndarray
    camera: RgbdCamera
    table_up: tuple[float, float, float]
    objects: tuple[TableObject, ...]
    true_grasps: tuple[TrueGrasp, ...]


def render_rgbd_scene(
    seed: int,
    num_objects: int = 3,
    camera: RgbdCamera | None = None,
    tilt_deg: float = 0.0,
) -> RgbdScene:
    """Render a reproducible RGB-D scene of ``num_objects`` objects (module docstring: what).

    Without ``camera``, a ``realsense_camera`` at a height drawn from CAMERA_HEIGHT_RANGE_M.
    ``tilt_deg`` pitches the camera about its x axis (the table normal then leans towards +y or
    -y in the image); the camera stays ``height_above_table_m`` from the table plane.
    """
    if num_objects < 0:
        raise ValueError(f"num_objects must be >= 0, got {num_objects}")
    if not abs(tilt_deg) <= MAX_TILT_DEG:
        raise ValueError(f"tilt_deg must be within +-{MAX_TILT_DEG:.0f} (a camera looking down), "
                         f"got {tilt_deg}")
    rng = np.random.default_rng(seed)
    if camera is None:
        camera = realsense_camera(float(rng.uniform(*CAMERA_HEIGHT_RANGE_M)))
    tilt = math.radians(tilt_deg)
    table_up = np.array([0.0, math.sin(tilt), -math.cos(tilt)])
    rays = camera.pixel_rays()
    table_depth = camera.height_above_table_m / -(rays @ table_up)
    objects = _place_objects(rng, camera, table_up, rays, table_depth, num_objects)
    depth, label, normals = _ray_cast(camera, rays, table_depth, table_up, objects)
    bgr = _render_colour(seed, rng, camera, table_up, rays, depth, label, normals, objects)
    grasps = [grasp for index, obj in enumerate(objects)
              for grasp in _true_grasps(index, obj, camera)]
    return RgbdScene(bgr=bgr, depth_mm=measure_depth(rng, depth),
                     depth_m_truth=depth.astype(np.float32), camera=camera,
                     table_up=_as_point(table_up), objects=tuple(objects),
                     true_grasps=tuple(grasps))


def _table_axes(table_up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in the table plane towards image-right and image-up."""
    right = np.array([1.0, 0.0, 0.0]) - table_up[0] * table_up
    right /= np.linalg.norm(right)
    return right, np.cross(table_up, right)


def _place_objects(rng: np.random.Generator, camera: RgbdCamera, table_up: np.ndarray,
                   rays: np.ndarray, table_depth: np.ndarray, count: int) -> list[TableObject]:
    """Random objects whose images lie inside the network's centre crop, each more than
    MIN_OBJECT_GAP_PX from the others; rounds start afresh when early objects leave no room."""
    for _ in range(_PLACEMENT_ROUNDS):
        placed = _place_round(rng, camera, table_up, rays, table_depth, count)
        if len(placed) == count:
            return placed
    raise ValueError(f"could not place {count} objects {MIN_OBJECT_GAP_PX:.0f} px apart "
                     f"inside the centre crop; ask for fewer objects")


def _place_round(rng: np.random.Generator, camera: RgbdCamera, table_up: np.ndarray,
                 rays: np.ndarray, table_depth: np.ndarray, count: int) -> list[TableObject]:
    """Rejection sampling, judged on the circles around the objects' images: up to ``count``."""
    top, left, bottom, right = network_crop_bounds(camera.height, camera.width)
    lowest = np.array([top, left]) + _CROP_MARGIN_PX
    highest = np.array([bottom - 1, right - 1]) - _CROP_MARGIN_PX
    placed: list[tuple[TableObject, np.ndarray, float]] = []
    for _ in range(_PLACEMENT_ATTEMPTS):
        if len(placed) == count:
            break
        row, col = rng.integers(top, bottom), rng.integers(left, right)
        base = rays[row, col] * table_depth[row, col]
        candidate = _random_object(rng, base, table_up)
        pixels = camera.project_to_pixels(candidate.outline_points())
        centre = pixels.mean(axis=0)
        radius = float(np.hypot(*(pixels - centre).T).max())
        inside = (pixels.min(axis=0) >= lowest).all() and (pixels.max(axis=0) <= highest).all()
        if inside and all(np.hypot(*(centre - other_centre)) > radius + other_radius
                          + MIN_OBJECT_GAP_PX for _, other_centre, other_radius in placed):
            placed.append((candidate, centre, radius))
    return [obj for obj, _, _ in placed]


def _random_object(rng: np.random.Generator, base: np.ndarray, table_up: np.ndarray
                   ) -> TableObject:
    """A random box or cylinder standing on the table at ``base``, turned any way."""
    right, up_in_image = _table_axes(table_up)
    yaw = rng.uniform(0.0, math.pi)
    if rng.random() < CYLINDER_FRACTION:
        shape = "cylinder"
        length = width = rng.uniform(*CYLINDER_DIAMETER_RANGE_M)
    else:
        shape = "box"
        length = rng.uniform(*BOX_LENGTH_RANGE_M)
        width = rng.uniform(BOX_WIDTH_RANGE_M[0], min(BOX_WIDTH_RANGE_M[1], length))
    colour = OBJECT_PALETTE_BGR[rng.integers(len(OBJECT_PALETTE_BGR))]
    return TableObject(
        shape=shape, base_centre_m=_as_point(base), up=_as_point(table_up),
        long_axis=_as_point(math.cos(yaw) * right + math.sin(yaw) * up_in_image),
        length_m=float(length), width_m=float(width),
        height_m=float(rng.uniform(*OBJECT_HEIGHT_RANGE_M)), colour_bgr=colour)


def _as_point(vector: np.ndarray) -> tuple[float, float, float]:
    return float(vector[0]), float(vector[1]), float(vector[2])


def _image_region(camera: RgbdCamera, points: np.ndarray) -> tuple[slice, slice]:
    """The pixels around the image of ``points``, padded and clipped to the image."""
    pixels = camera.project_to_pixels(points)
    low = np.floor(pixels.min(axis=0)).astype(int) - _REGION_PADDING_PX
    high = np.ceil(pixels.max(axis=0)).astype(int) + _REGION_PADDING_PX + 1
    return (slice(max(low[0], 0), min(high[0], camera.height)),
            slice(max(low[1], 0), min(high[1], camera.width)))


def _ray_cast(camera: RgbdCamera, rays: np.ndarray, table_depth: np.ndarray,
              table_up: np.ndarray, objects: Sequence[TableObject]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-buffer: depth (H, W) metres, label (H, W) (object index, -1 the table) and surface
    normal (H, W, 3) of the nearest surface along each pixel's ray."""
    depth = table_depth.copy()
    label = np.full(depth.shape, -1, dtype=np.int32)
    normals = np.broadcast_to(table_up, rays.shape).copy()
    for index, obj in enumerate(objects):
        region = _image_region(camera, obj.outline_points())
        region_rays = rays[region]
        t, hit_normals = cast_rays(obj, np.zeros(3), region_rays.reshape(-1, 3))
        t = t.reshape(region_rays.shape[:2])
        nearer = t < depth[region]
        depth[region][nearer] = t[nearer]
        label[region][nearer] = index
        normals[region][nearer] = hit_normals.reshape(region_rays.shape)[nearer]
    return depth, label, normals


def _render_colour(seed: int, rng: np.random.Generator, camera: RgbdCamera, table_up: np.ndarray,
                   rays: np.ndarray, depth: np.ndarray, label: np.ndarray, normals: np.ndarray,
                   objects: Sequence[TableObject]) -> np.ndarray:
    """The demo's table (same seed), shadows cast by the light, then the objects' faces shaded
    by how squarely they face it (top faces at their full colour), through slightly soft
    optics."""
    table, _ = render_tabletop_scene(seed, camera.height, camera.width, num_objects=0)
    image = table.astype(np.float32)
    right, up_in_image = _table_axes(table_up)
    light = np.stack([right, up_in_image, table_up], axis=1) @ np.array(_LIGHT_IN_TABLE_FRAME)
    light /= np.linalg.norm(light)
    shadow = _shadow_mask(camera, table_up, light, rays, depth, label, objects)
    darken_under_shadow(image, shadow, _SHADOW_BLUR_SIGMA, _SHADOW_STRENGTH)
    on_object = label >= 0
    facing_light = np.clip(normals[on_object] @ light, 0.0, None) / float(light @ table_up)
    shade = _AMBIENT_SHADE + (1.0 - _AMBIENT_SHADE) * facing_light
    palette = np.array([obj.colour_bgr for obj in objects], dtype=np.float64).reshape(-1, 3)
    grain = rng.normal(0.0, _OBJECT_GRAIN, size=(len(shade), 1))
    image[on_object] = palette[label[on_object]] * shade[:, None] + grain
    image = cv2.GaussianBlur(image, (0, 0), _OPTICS_BLUR_SIGMA)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _shadow_mask(camera: RgbdCamera, table_up: np.ndarray, light: np.ndarray,
                 rays: np.ndarray, depth: np.ndarray, label: np.ndarray,
                 objects: Sequence[TableObject]) -> np.ndarray:
    """(H, W) float32: 1 where a visible table point's ray towards the light meets an object."""
    shadow = np.zeros(label.shape, dtype=np.float32)
    for obj in objects:
        outline = obj.outline_points()
        heights = outline @ table_up + camera.height_above_table_m
        cast_on_table = outline - (heights / float(light @ table_up))[:, None] * light
        region = _image_region(camera, np.concatenate([outline, cast_on_table]))
        on_table = label[region] < 0
        table_points = rays[region][on_table] * depth[region][on_table][:, None]
        t, _ = cast_rays(obj, table_points, light)
        shadow[region][on_table] = np.maximum(shadow[region][on_table], np.isfinite(t))
    return shadow


def _true_grasps(index: int, obj: TableObject, camera: RgbdCamera) -> list[TrueGrasp]:
    """The object's grasps (module docstring), each seen by ``camera``."""
    long_axis, short_axis = np.asarray(obj.long_axis), np.asarray(obj.short_axis)
    if obj.shape == "cylinder":
        turns = np.arange(CYLINDER_GRASP_ANGLES) * (math.pi / CYLINDER_GRASP_ANGLES)
        jaw_lines = [(math.cos(turn) * short_axis + math.sin(turn) * long_axis, obj.width_m)
                     for turn in turns]
    else:
        jaw_lines = [(short_axis, obj.width_m)]
        if obj.width_m > ROUND_OBJECT_RATIO * obj.length_m:
            jaw_lines.append((long_axis, obj.length_m))
    centre = np.asarray(obj.top_centre_m)
    row, col = camera.project_to_pixels(centre[None])[0]
    grasps = []
    for direction, opening in jaw_lines:
        tips = camera.project_to_pixels(np.stack([centre - direction * opening / 2,
                                                  centre + direction * opening / 2]))
        drow, dcol = tips[1] - tips[0]
        angle = math.atan2(-drow, dcol) % math.pi
        grasps.append(TrueGrasp(
            object_index=index, row=float(row), col=float(col),
            angle=0.0 if angle >= math.pi else angle, width_px=float(math.hypot(drow, dcol)),
            width_m=float(opening), surface_point=_as_point(centre),
            surface_depth_m=float(centre[2])))
    return grasps
