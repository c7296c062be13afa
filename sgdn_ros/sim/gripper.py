"""A parallel-jaw gripper that executes a 3-D grasp in the tray and says whether it held.

The body is a palm and two box fingers on prismatic joints, sized like a Franka Hand (fingers
20 mm wide and 50 mm long; opening up to 85 mm here, as a Robotiq 2F-85) and closing with a
limited force, so that a grasp that only pinches an edge, or presses on a neighbour, fails as it
would on a robot. It moves as a robot arm drives a gripper: a fixed constraint with a force
limit pulls its base along straight lines, so it stops against what it meets instead of passing
through it.

Gripper frame (the node's convention, ``core.grasp3d``): origin between the finger tips,
z = approach, x = closing direction. The execution: open to the grasp's width, appear at the
pre-grasp pose, descend along z to the grasp, close, lift 0.15 m straight up, hold 1 s.
Success: an object touches both fingers at the end of the hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.geometry import quaternion_from_rotation
from sgdn_ros.sim.world import TIME_STEP_S, BinWorld, PlacedObject


@dataclass(frozen=True)
class GripperSpec:
    finger_width_m: float = 0.02  # across the closing direction
    finger_thickness_m: float = 0.01  # along it
    finger_length_m: float = 0.05
    max_opening_m: float = 0.085
    grip_force_n: float = 40.0  # per finger
    arm_force_n: float = 200.0  # what the arm pushes with before it stalls
    lift_m: float = 0.15
    hold_s: float = 1.0
    approach_speed_m_s: float = 0.2
    lift_speed_m_s: float = 0.25
    close_s: float = 0.5


@dataclass(frozen=True)
class GraspOutcome:
    """What one attempt did: the objects held at the end (empty = failure)."""

    held: tuple[PlacedObject, ...]

    @property
    def success(self) -> bool:
        return bool(self.held)


_PARKED = (0.0, 0.0, 2.0)  # above the camera, out of its view
_FINGER_MASS_KG = 0.05
_PALM_MASS_KG = 0.5
_PALM_HEIGHT_M = 0.02
_FINGERS = (0, 1)


class Gripper:
    """One gripper body in ``world``, parked out of the camera's view between attempts."""

    def __init__(self, world: BinWorld, spec: GripperSpec = GripperSpec()) -> None:
        self.world = world
        self.spec = spec
        p, client = world.p, world.client
        half_finger = [spec.finger_thickness_m / 2, spec.finger_width_m / 2,
                       spec.finger_length_m / 2]
        palm_half = [spec.max_opening_m / 2 + spec.finger_thickness_m, spec.finger_width_m / 2,
                     _PALM_HEIGHT_M / 2]
        finger_shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=half_finger,
                                              physicsClientId=client)
        finger_look = p.createVisualShape(p.GEOM_BOX, halfExtents=half_finger,
                                          rgbaColor=[0.3, 0.3, 0.35, 1], physicsClientId=client)
        palm_shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=palm_half,
                                            physicsClientId=client)
        palm_look = p.createVisualShape(p.GEOM_BOX, halfExtents=palm_half,
                                        rgbaColor=[0.2, 0.2, 0.2, 1], physicsClientId=client)
        # The base frame is the palm's centre; a finger's joint frame sits at its closed place,
        # its centre half a finger above the tips (z = approach points down the fingers).
        palm_z = -spec.finger_length_m - _PALM_HEIGHT_M / 2
        finger_z = -spec.finger_length_m / 2 - palm_z
        self._palm_offset = np.array([0.0, 0.0, palm_z])
        self.body = p.createMultiBody(
            _PALM_MASS_KG, palm_shape, palm_look, list(_PARKED), [0, 0, 0, 1],
            linkMasses=[_FINGER_MASS_KG] * 2,
            linkCollisionShapeIndices=[finger_shape] * 2,
            linkVisualShapeIndices=[finger_look] * 2,
            linkPositions=[[spec.finger_thickness_m / 2, 0, finger_z],
                           [-spec.finger_thickness_m / 2, 0, finger_z]],
            linkOrientations=[[0, 0, 0, 1]] * 2,
            linkInertialFramePositions=[[0, 0, 0]] * 2,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2,
            linkParentIndices=[0, 0],
            linkJointTypes=[p.JOINT_PRISMATIC] * 2,
            linkJointAxis=[[1, 0, 0], [-1, 0, 0]],
            physicsClientId=client)
        for finger in _FINGERS:
            p.changeDynamics(self.body, finger, lateralFriction=1.0, spinningFriction=0.05,
                             rollingFriction=0.01,
                             physicsClientId=client)
        self._arm = p.createConstraint(self.body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0],
                                       [0, 0, 0], list(_PARKED), physicsClientId=client)
        self.park()

    def park(self) -> None:
        self._teleport(np.array(_PARKED) - self._palm_offset, np.eye(3), 0.0)

    def execute(self, position: np.ndarray, rotation: np.ndarray, width_m: float,
                pre_grasp_offset_m: float = 0.1) -> GraspOutcome:
        """Grasp with the finger tips at ``position`` (world), gripper axes ``rotation`` (3x3,
        columns x = closing, y, z = approach, in the world), opening ``width_m``."""
        spec = self.spec
        position = np.asarray(position, dtype=float)
        approach = rotation[:, 2]
        opening = float(np.clip(width_m, 0.0, spec.max_opening_m))
        start = position - approach * pre_grasp_offset_m
        self._teleport(start, rotation, opening)
        self._move(start, position, rotation, opening, spec.approach_speed_m_s)
        self._close(position, rotation)
        lifted = position + np.array([0.0, 0.0, spec.lift_m])
        self._move(position, lifted, rotation, None, spec.lift_speed_m_s)
        self._hold(lifted, rotation, spec.hold_s)
        held = tuple(placed for placed in self.world.objects if self._touches_both(placed))
        return GraspOutcome(held)

    def _teleport(self, tips: np.ndarray, rotation: np.ndarray, opening: float) -> None:
        p, client = self.world.p, self.world.client
        base, orientation = self._base_pose(tips, rotation)
        p.resetBasePositionAndOrientation(self.body, base, orientation, physicsClientId=client)
        p.resetBaseVelocity(self.body, [0, 0, 0], [0, 0, 0], physicsClientId=client)
        for finger in _FINGERS:
            p.resetJointState(self.body, finger, opening / 2, 0.0, physicsClientId=client)
        self._drive_fingers(opening / 2)
        p.changeConstraint(self._arm, base, orientation, maxForce=self.spec.arm_force_n,
                           physicsClientId=client)

    def _base_pose(self, tips: np.ndarray, rotation: np.ndarray) -> tuple[list, list]:
        base = tips + rotation @ self._palm_offset
        return base.tolist(), list(quaternion_from_rotation(rotation))

    def _move(self, start: np.ndarray, end: np.ndarray, rotation: np.ndarray,
              opening: float | None, speed_m_s: float) -> None:
        steps = max(1, int(np.linalg.norm(end - start) / speed_m_s / TIME_STEP_S))
        for step in range(1, steps + 1):
            self._pull_to(start + (end - start) * step / steps, rotation)
            if opening is not None:
                self._drive_fingers(opening / 2)
            self.world.step()

    def _close(self, tips: np.ndarray, rotation: np.ndarray) -> None:
        self._pull_to(tips, rotation)
        self._drive_fingers(0.0)
        self.world.step(int(self.spec.close_s / TIME_STEP_S))

    def _hold(self, tips: np.ndarray, rotation: np.ndarray, seconds: float) -> None:
        self._pull_to(tips, rotation)
        self.world.step(int(seconds / TIME_STEP_S))

    def _pull_to(self, tips: np.ndarray, rotation: np.ndarray) -> None:
        base, orientation = self._base_pose(tips, rotation)
        self.world.p.changeConstraint(self._arm, base, orientation,
                                      maxForce=self.spec.arm_force_n,
                                      physicsClientId=self.world.client)

    def _drive_fingers(self, half_opening: float) -> None:
        p = self.world.p
        for finger in _FINGERS:
            p.setJointMotorControl2(self.body, finger, p.POSITION_CONTROL,
                                    targetPosition=half_opening, force=self.spec.grip_force_n,
                                    maxVelocity=0.1, physicsClientId=self.world.client)

    def _touches_both(self, placed: PlacedObject) -> bool:
        p = self.world.p
        return all(p.getContactPoints(self.body, placed.body, finger, -1,
                                      physicsClientId=self.world.client)
                   for finger in _FINGERS)

