"""Training scenes from the simulator: the frames a clearance run sees, with their true grasps.

Each scene drops 1-10 training-split objects (never a held-out one) and is cleared by the
simulator's own true grasps; every frame on the way is kept, so the piles thin out as they do
when a robot works, and each frame is labelled with every true grasp of every object in it
(``antipodal``). The camera's height varies a little per scene (0.6-0.7 m) so that a model does
not learn one object scale. What is stored is ``training.stored_scenes``' compact format.
"""

from __future__ import annotations

import multiprocessing
import pathlib
from collections.abc import Sequence

import numpy as np

from sgdn_ros.sim.antipodal import best_true_grasp, scene_true_grasps
from sgdn_ros.sim.camera import TopDownCamera
from sgdn_ros.sim.clearance import PlannedGrasp, SensorFrame, clear_tray
from sgdn_ros.sim.gripper import Gripper, GripperSpec
from sgdn_ros.sim.world import BinWorld
from sgdn_ros.training.rgbd_geometry import realsense_camera
from sgdn_ros.training.stored_scenes import STORE_MARGIN_PX, StoredFrame, write_scene_store

OBJECT_COUNT_RANGE = (1, 10)
CAMERA_HEIGHT_RANGE_M = (0.6, 0.7)
NETWORK_INPUT_PX = 320


class _RecordingPlanner:
    """Plans with the true grasps and keeps each frame with all of them."""

    def __init__(self, world: BinWorld, camera: TopDownCamera, gripper: GripperSpec,
                 num_angle_classes: int, colour: bool) -> None:
        self._world, self._camera, self._gripper = world, camera, gripper
        self._num_angle_classes = num_angle_classes
        self._colour = colour
        self.frames: list[StoredFrame] = []

    def __call__(self, frame: SensorFrame) -> PlannedGrasp | None:
        grasps = scene_true_grasps(self._world, self._camera, frame.truth, self._gripper,
                                   self._num_angle_classes)
        self.frames.append(_stored(frame, grasps, self._colour))
        return best_true_grasp(grasps)


def _stored(frame: SensorFrame, grasps, colour: bool) -> StoredFrame:
    """The centre crop plus margin of the noiseless depth (and of the colour), and the grasps
    inside it."""
    size = NETWORK_INPUT_PX + 2 * STORE_MARGIN_PX
    height, width = frame.truth.depth_m.shape
    top, left = (height - size) // 2, (width - size) // 2
    depth = frame.truth.depth_m[top:top + size, left:left + size]
    depth_mm = np.where(np.isfinite(depth), np.rint(depth * 1000.0), 0).astype(np.uint16)
    rows = np.array([[grasp.row - top, grasp.col - left, grasp.angle_class, grasp.width_px]
                     for grasp in grasps], dtype=np.float32).reshape(-1, 4)
    inside = ((rows[:, 0] >= 0) & (rows[:, 0] < size) & (rows[:, 1] >= 0)
              & (rows[:, 1] < size))
    bgr = frame.bgr[top:top + size, left:left + size].copy() if colour else None
    return StoredFrame(depth_mm, rows[inside], bgr)


def record_scene(seed: int, num_angle_classes: int, num_objects: int | None = None,
                 colour: bool = False) -> list[StoredFrame]:
    """The frames of scene ``seed`` (training objects only; ``num_objects`` None: drawn from
    OBJECT_COUNT_RANGE)."""
    rng = np.random.default_rng([seed, 2])
    height = float(rng.uniform(*CAMERA_HEIGHT_RANGE_M))
    count = int(rng.integers(OBJECT_COUNT_RANGE[0], OBJECT_COUNT_RANGE[1] + 1))
    camera = TopDownCamera(realsense_camera(height), height)
    spec = GripperSpec()
    with BinWorld() as world:
        world.drop_objects(seed, num_objects or count, "train")
        planner = _RecordingPlanner(world, camera, spec, num_angle_classes, colour)
        clear_tray(world, Gripper(world, spec), camera, planner, seed)
    return planner.frames


def write_training_scenes(path: pathlib.Path, seeds: Sequence[int], num_angle_classes: int,
                          workers: int = 1, colour: bool = False) -> int:
    """Record the scenes of ``seeds`` (``workers`` processes) into one store; returns the
    number of frames."""
    arguments = [(seed, num_angle_classes, None, colour) for seed in seeds]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            scenes = pool.starmap(record_scene, arguments, chunksize=1)
    else:
        scenes = [record_scene(*argument) for argument in arguments]
    frames = [frame for scene in scenes for frame in scene]
    write_scene_store(path, frames, num_angle_classes)
    return len(frames)
