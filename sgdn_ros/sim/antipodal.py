"""Ground-truth grasps from the simulator's geometry: antipodal, reachable, top-down.

A candidate is a pixel of an object's visible surface and one of the network's angle classes:
the fingers come straight down (the camera's axis) and close along that angle. It is a true
grasp when

- the fingers get down: the 3-D stage the node itself runs (``core.grasp3d``, on the noiseless
  depth image) lowers the fingers at the contact width without meeting any surface, to the
  grasp height;
- the contacts are antipodal: horizontal rays cast from where each finger starts to close, at
  two heights along the finger pads and across their width, meet THIS object first (not a
  neighbour), on faces whose normals lie within the friction cone of the closing line;
- the opening fits: the contact width plus a clearance on each side is within the gripper's.

Rays go against pybullet's collision shapes (what the fingers will touch), so a label is as
true as the physics; executing the best of them is the bench's model-free sanity check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.grasp3d import GripperGeometry, grasps_in_3d
from sgdn_ros.sim.camera import RgbdFrame, TopDownCamera
from sgdn_ros.sim.clearance import PlannedGrasp, SensorFrame
from sgdn_ros.sim.gripper import GripperSpec
from sgdn_ros.sim.world import BinWorld, PlacedObject

FRICTION_CONE_DEG = 35.0  # within atan(1.0) = 45 deg of the objects' friction, with a margin
CLEARANCE_M = 0.008  # opening beyond the contacts on each side
TARGET_GRASP_DEPTH_M = 0.02  # finger tips this far below the top surface, when free
CONTACT_HEIGHTS_M = (0.003, 0.008, 0.014)  # above the tips: where the pads are sampled
PAD_SIDES = (-0.4, 0.0, 0.4)  # across the pad, in finger widths
MIN_GRASP_DEPTH_M = 0.006  # shallower, the pads barely touch the object
HEIGHT_PREFERENCE_M = 0.1  # the planner's bonus for a grasp 0.1 m higher equals a quality of 1
QUALITY_DISTANCE_M = 0.03  # off the centre of mass by this, a grasp's quality falls to 1/e
CENTRE_STRIDE_PX = 4
_DEPTH_STEP_M = 0.002
_PAD_POINTS = tuple((height, side) for height in CONTACT_HEIGHTS_M for side in PAD_SIDES)
_PAD_MIDDLE = tuple((CONTACT_HEIGHTS_M[1], side) for side in PAD_SIDES)
_RAY_BATCH = 8192  # pybullet drops rays beyond MAX_RAY_INTERSECTION_BATCH_SIZE - 1


@dataclass(frozen=True)
class TrueGrasp:
    """One true grasp: image (row, col, angle in the project's convention, class), world
    position of the finger tips, closing direction, opening, and how good it is (0..1)."""

    object_body: int
    row: float
    col: float
    angle: float
    angle_class: int
    tips_world: tuple[float, float, float]
    closing_world: tuple[float, float, float]
    width_m: float
    width_px: float
    quality: float


def true_grasps(world: BinWorld, camera: TopDownCamera, frame: RgbdFrame,
                placed: PlacedObject, gripper: GripperSpec, num_angle_classes: int,
                stride_px: int = CENTRE_STRIDE_PX) -> list[TrueGrasp]:
    """Every true grasp of ``placed`` on a ``stride_px`` grid of its visible pixels."""
    rows, cols = np.nonzero(frame.body_ids == placed.body)
    keep = (rows % stride_px == 0) & (cols % stride_px == 0)
    rows, cols = rows[keep], cols[keep]
    if rows.size == 0:
        return []
    classes = np.arange(num_angle_classes)
    angles = classes * math.pi / num_angle_classes
    # every (pixel, class) pair, pixel-major
    rows_k = np.repeat(rows, num_angle_classes).astype(np.float64)
    cols_k = np.repeat(cols, num_angle_classes).astype(np.float64)
    classes_k = np.tile(classes, rows.size)
    angles_k = np.tile(angles, rows.size)
    top_depth = frame.depth_m[rows_k.astype(int), cols_k.astype(int)].astype(np.float64)
    x, y = camera.model.normalized_rays(cols_k, rows_k)
    top_world = camera.to_world(np.stack([x * top_depth, y * top_depth, top_depth], axis=1))
    # image angle a: finger line along (du, dv) = (cos a, -sin a) -> world (cos a, sin a, 0)
    closing = np.stack([np.cos(angles_k), np.sin(angles_k), np.zeros_like(angles_k)], axis=1)
    object_bottom = world.p.getAABB(placed.body, physicsClientId=world.client)[0][2]
    target_depth = np.minimum(TARGET_GRASP_DEPTH_M,
                              0.6 * np.maximum(top_world[:, 2] - object_bottom, 0.0))
    nominal_tips = top_world - np.array([0.0, 0.0, 1.0]) * target_depth[:, None]
    # one ray pair per candidate first (most fail there), the whole pads on the survivors
    opening = np.full(len(nominal_tips), np.nan)
    candidate = np.flatnonzero(target_depth >= MIN_GRASP_DEPTH_M)
    for pad_points in (_PAD_MIDDLE, _PAD_POINTS):
        width, _ = _antipodal_contacts(world, placed, nominal_tips[candidate],
                                       closing[candidate], gripper, pad_points)
        opening[candidate] = width + 2 * CLEARANCE_M
        candidate = candidate[np.isfinite(width)
                              & (opening[candidate] <= gripper.max_opening_m)]
        if candidate.size == 0:
            return []
    tips_optical = _lowered_tips(frame, camera, rows_k[candidate], cols_k[candidate],
                                 angles_k[candidate], opening[candidate],
                                 target_depth[candidate], gripper)
    reached = np.isfinite(tips_optical[:, 0])
    candidate, tips_optical = candidate[reached], tips_optical[reached]
    tips = camera.to_world(tips_optical)
    # the contacts again where the tips really end up; the opening the fingers were checked at
    # must still leave half the clearance on each side
    final_width, alignment = _antipodal_contacts(world, placed, tips, closing[candidate], gripper,
                                                 _PAD_POINTS)
    holds = np.isfinite(final_width) & (final_width + CLEARANCE_M <= opening[candidate])
    centre_of_mass = np.array(world.pose(placed)[0])
    off_centre = np.linalg.norm((tips - centre_of_mass)[:, :2], axis=1)
    quality = alignment * np.exp(-off_centre / QUALITY_DISTANCE_M)
    width_px = opening * camera.model.fx / top_depth
    return [TrueGrasp(placed.body, float(rows_k[i]), float(cols_k[i]), float(angles_k[i]),
                      int(classes_k[i]), tuple(tips[j].tolist()), tuple(closing[i].tolist()),
                      float(opening[i]), float(width_px[i]), float(quality[j]))
            for j, i in enumerate(candidate) if holds[j]]


def _antipodal_contacts(world: BinWorld, placed: PlacedObject, tips: np.ndarray,
                        closing: np.ndarray, gripper: GripperSpec,
                        pad_points: Sequence[tuple[float, float]]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Contact width (NaN when not antipodal on this object) and the worse normal alignment.

    Each finger pad is sampled by rays over its face, cast along the closing motion; the pad
    first touches the surface where its ray travels least: that point's normal must lie in the
    friction cone, and no ray may meet another object first.
    """
    count = len(tips)
    across = np.stack([-closing[:, 1], closing[:, 0], np.zeros(count)], axis=1)
    reach = gripper.max_opening_m / 2 + CLEARANCE_M
    starts, ends = [], []
    for height, side in pad_points:
        base = tips + np.array([0.0, 0.0, height]) + across * (side * gripper.finger_width_m)
        for sign in (1.0, -1.0):
            starts.append(base + sign * closing * reach)
            ends.append(base)
    body, position, normal = _cast(world, np.concatenate(starts), np.concatenate(ends))
    body = body.reshape(len(pad_points), 2, count)
    position = position.reshape(len(pad_points), 2, count, 3)
    normal = normal.reshape(len(pad_points), 2, count, 3)
    on_object = body == placed.body
    clear = ((body == placed.body) | (body < 0)).all(axis=0).all(axis=0)
    # travel along -sign * closing from the start: the outermost contact travels least
    signs = np.array([1.0, -1.0]).reshape(1, 2, 1)
    outward = np.einsum("psck,ck->psc", position, closing) * signs
    outward = np.where(on_object, outward, -np.inf)
    first = np.argmax(outward, axis=0)  # (2, count)
    touched = on_object.any(axis=0).all(axis=0)
    pick = first[np.newaxis, ..., np.newaxis]
    contact = np.take_along_axis(position, pick, axis=0)[0]  # (2, count, 3)
    contact_normal = np.take_along_axis(normal, pick, axis=0)[0]
    alignment = np.einsum("sck,ck->sc", contact_normal, closing) * signs[0]
    cone = math.cos(math.radians(FRICTION_CONE_DEG))
    antipodal = clear & touched & (alignment > cone).all(axis=0)
    gap = np.einsum("ck,ck->c", contact[0] - contact[1], closing)
    width = np.where(antipodal & (gap > 0), gap, np.nan)
    return width, np.clip(alignment.min(axis=0), 0.0, 1.0)


def _cast(world: BinWorld, starts: np.ndarray, ends: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of each ray: body id (-1 for none), position, normal."""
    bodies, positions, normals = [], [], []
    batch = _RAY_BATCH
    for first in range(0, len(starts), batch):
        results = world.p.rayTestBatch(starts[first:first + batch].tolist(),
                                       ends[first:first + batch].tolist(),
                                       numThreads=0, physicsClientId=world.client)
        for body, _link, _fraction, position, normal in results:
            bodies.append(body)
            positions.append(position)
            normals.append(normal)
    return np.array(bodies), np.array(positions, dtype=float), np.array(normals, dtype=float)


def _lowered_tips(frame: RgbdFrame, camera: TopDownCamera, rows: np.ndarray, cols: np.ndarray,
                  angles: np.ndarray, opening: np.ndarray, target_depth: np.ndarray,
                  gripper: GripperSpec) -> np.ndarray:
    """Where the node's own finger test (on the noiseless depth) puts the finger tips, at most
    ``target_depth`` below the surface: (N, 3) optical-frame points, NaN rows where the fingers
    cannot get ``MIN_GRASP_DEPTH_M`` down."""
    geometry = GripperGeometry(finger_width_m=gripper.finger_width_m,
                               finger_thickness_m=gripper.finger_thickness_m,
                               max_grasp_depth_m=TARGET_GRASP_DEPTH_M,
                               grasp_depth_step_m=_DEPTH_STEP_M,
                               min_grasp_depth_m=MIN_GRASP_DEPTH_M)
    depth = np.where(np.isfinite(frame.depth_m), frame.depth_m, np.nan).astype(np.float32)
    grasps = [Grasp(row=float(row), col=float(col), angle=float(angle), width_px=math.nan,
                    width_m=float(width), confidence=1.0, angle_class=0, crop_row=0, crop_col=0,
                    crop_width_px=math.nan)
              for row, col, angle, width in zip(rows, cols, angles, opening)]
    tips = np.full((len(grasps), 3), np.nan)
    for index, (located, target) in enumerate(zip(
            grasps_in_3d(grasps, depth, camera.model, geometry), target_depth)):
        if located.valid:
            surface = np.array(located.position) - np.array([0.0, 0.0, located.grasp_depth_m])
            tips[index] = surface + np.array([0.0, 0.0, min(located.grasp_depth_m, target)])
    return tips


class TrueGraspPlanner:
    """The model-free planner: the best true grasp of the scene, highest object first (as a
    person clearing a pile would), for checking the gripper and the physics, not a model."""

    def __init__(self, world: BinWorld, camera: TopDownCamera, gripper: GripperSpec,
                 num_angle_classes: int = 18) -> None:
        self._world = world
        self._camera = camera
        self._gripper = gripper
        self._num_angle_classes = num_angle_classes

    def __call__(self, frame: SensorFrame) -> PlannedGrasp | None:
        return best_true_grasp(scene_true_grasps(self._world, self._camera, frame.truth,
                                                 self._gripper, self._num_angle_classes))


def scene_true_grasps(world: BinWorld, camera: TopDownCamera, frame: RgbdFrame,
                      gripper: GripperSpec, num_angle_classes: int) -> list[TrueGrasp]:
    """The true grasps of every object in ``world``."""
    return [grasp for placed in world.objects
            for grasp in true_grasps(world, camera, frame, placed, gripper, num_angle_classes)]


def best_true_grasp(candidates: Sequence[TrueGrasp]) -> PlannedGrasp | None:
    """The best of ``candidates``, highest object first; None when there is none."""
    if not candidates:
        return None
    best = max(candidates,
               key=lambda grasp: grasp.quality + grasp.tips_world[2] / HEIGHT_PREFERENCE_M)
    return PlannedGrasp(np.array(best.tips_world), top_down_rotation(best.closing_world),
                        best.width_m, best.row, best.col, best.angle, best.width_px,
                        best.quality)


def top_down_rotation(closing_world: tuple[float, float, float]) -> np.ndarray:
    """Gripper axes (columns x = closing, y, z = approach straight down) in the world."""
    closing = np.asarray(closing_world, dtype=float)
    approach = np.array([0.0, 0.0, -1.0])
    return np.stack([closing, np.cross(approach, closing), approach], axis=1)
