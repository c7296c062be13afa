"""Clutter clearance, as the grasping papers run it on real robots: look, grasp, lift, repeat.

A scene is a tray of settled objects. Each attempt renders what the camera sees (with the
sensor's noise), asks a planner for one grasp, executes it with the gripper and removes what it
held. The run ends when the tray is empty, after ``max_failures`` failures in a row, or after
``attempts_per_object`` attempts per object; objects knocked out of the tray leave it uncounted.
The planner is anything that turns a camera frame into a grasp in the world: the detector node
over DDS (``tools.sim_eval``), or the simulator's own true grasps (the model-free check).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sgdn_ros.core.camera import CameraModel
from sgdn_ros.sim.camera import RgbdFrame, TopDownCamera
from sgdn_ros.sim.gripper import Gripper
from sgdn_ros.sim.world import BinWorld
from sgdn_ros.training.depth_sensor import measure_depth

MAX_FAILURES_IN_A_ROW = 3
ATTEMPTS_PER_OBJECT = 2


@dataclass(frozen=True)
class SensorFrame:
    """What the camera driver publishes: colour, aligned depth in millimetres (0 = no reading,
    noisy), the intrinsics; and the truth behind it, for scoring only."""

    bgr: np.ndarray
    depth_mm: np.ndarray
    camera: CameraModel
    truth: RgbdFrame


@dataclass(frozen=True)
class PlannedGrasp:
    """A grasp to execute: finger tips (world), gripper axes as columns (x = closing, z =
    approach, world), opening; where it lies in the image (row, col, angle, width in pixels)
    and the planner's confidence, for the record."""

    tips_world: np.ndarray
    rotation_world: np.ndarray
    width_m: float
    row: float
    col: float
    angle: float
    width_px: float
    confidence: float


GraspPlanner = Callable[[SensorFrame], "PlannedGrasp | None"]


@dataclass(frozen=True)
class Attempt:
    """One attempt: the grasp (None when the planner had none), the object id under its centre
    (-1 for the tray or none), whether it held, and the frame it was planned on."""

    grasp: PlannedGrasp | None
    target_object: int
    success: bool
    frame: SensorFrame


@dataclass
class SceneResult:
    seed: int
    object_ids: list[int]
    attempts: list[Attempt] = field(default_factory=list)
    cleared: int = 0
    fell_out: int = 0

    @property
    def successes(self) -> int:
        return sum(attempt.success for attempt in self.attempts)


def observe(world: BinWorld, camera: TopDownCamera, rng: np.random.Generator) -> SensorFrame:
    truth = camera.render(world.p, world.client)
    depth = np.where(np.isfinite(truth.depth_m), truth.depth_m, 0.0).astype(np.float64)
    return SensorFrame(truth.bgr, measure_depth(rng, depth), camera.model, truth)


def clear_tray(world: BinWorld, gripper: Gripper, camera: TopDownCamera, planner: GraspPlanner,
               seed: int, max_failures: int = MAX_FAILURES_IN_A_ROW,
               attempts_per_object: int = ATTEMPTS_PER_OBJECT) -> SceneResult:
    """Run the clearance protocol on ``world``'s objects (already dropped and settled)."""
    result = SceneResult(seed, [placed.object_id for placed in world.objects])
    rng = np.random.default_rng([seed, 1])
    failures_in_a_row = 0
    max_attempts = attempts_per_object * len(world.objects)
    while world.objects and failures_in_a_row < max_failures \
            and len(result.attempts) < max_attempts:
        gripper.park()
        frame = observe(world, camera, rng)
        grasp = planner(frame)
        success, target = False, -1
        if grasp is not None:
            target = _object_under(world, frame.truth, grasp)
            outcome = gripper.execute(grasp.tips_world, grasp.rotation_world, grasp.width_m)
            success = outcome.success
            for placed in outcome.held:
                world.remove(placed)
            result.cleared += len(outcome.held)
        gripper.park()
        world.settle()
        result.fell_out += len(world.remove_fallen())
        result.attempts.append(Attempt(grasp, target, success, frame))
        failures_in_a_row = 0 if success else failures_in_a_row + 1
    return result


def _object_under(world: BinWorld, truth: RgbdFrame, grasp: PlannedGrasp) -> int:
    if not (math.isfinite(grasp.row) and math.isfinite(grasp.col)):
        return -1
    row, col = int(round(grasp.row)), int(round(grasp.col))
    height, width = truth.body_ids.shape
    if not (0 <= row < height and 0 <= col < width):
        return -1
    body = int(truth.body_ids[row, col])
    return next((placed.object_id for placed in world.objects if placed.body == body), -1)
