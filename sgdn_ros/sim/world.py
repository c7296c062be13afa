"""A tray of settled clutter in its own pybullet physics server.

Each ``BinWorld`` owns a DIRECT (headless) server, so several can live in one process (tests,
evaluation and data generation side by side) and nothing here needs a display. A scene is a
pure function of its seed: the objects, their drop poses and the settling run on pybullet's
deterministic solver, so the same seed gives the same pile on the same build.

World frame: z up, the tray floor's top at z = 0, the tray centred on the origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.sim.catalogue import OBJECT_SCALE, data_path, draw_objects, object_urdf

TIME_STEP_S = 1.0 / 240.0
# The shipped tray is 0.6 m wide; at 0.6 scale its 0.3 m floor lies inside the 320x320 centre
# crop that the network sees from 0.65 m.
TRAY_SCALE = 0.6
_TRAY_FLOOR_TOP_M = 0.015 * TRAY_SCALE
_GROUND_M = -0.05  # the table around the tray, catching what falls out
DROP_HALF_SPAN_M = 0.07
DROP_HEIGHT_RANGE_M = (0.08, 0.25)
SETTLE_STEPS_MAX = 1200
SETTLE_SPEED_M_S = 0.005
OBJECT_FRICTION = 1.0
REMOVED_BELOW_M = -0.5


@dataclass(frozen=True)
class PlacedObject:
    """One object in the tray: pybullet body id and the catalogue id it came from."""

    body: int
    object_id: int


class BinWorld:
    """The physics server with a tray and the objects dropped into it."""

    def __init__(self) -> None:
        import pybullet

        self.p = pybullet
        self.client = pybullet.connect(pybullet.DIRECT)
        self.p.setGravity(0.0, 0.0, -9.81, physicsClientId=self.client)
        self.p.setTimeStep(TIME_STEP_S, physicsClientId=self.client)
        root = data_path()
        self.plane = self.p.loadURDF(str(root / "plane.urdf"), [0, 0, _GROUND_M],
                                     physicsClientId=self.client)
        self.tray = self.p.loadURDF(str(root / "tray" / "traybox.urdf"),
                                    [0, 0, -_TRAY_FLOOR_TOP_M], globalScaling=TRAY_SCALE,
                                    useFixedBase=True, physicsClientId=self.client)
        self.objects: list[PlacedObject] = []

    def close(self) -> None:
        if self.client >= 0:
            self.p.disconnect(physicsClientId=self.client)
            self.client = -1

    def __enter__(self) -> BinWorld:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            self.p.stepSimulation(physicsClientId=self.client)

    def drop_objects(self, seed: int, count: int, split: str) -> list[PlacedObject]:
        """Drop ``count`` objects of ``split`` one by one above the tray and let them settle."""
        rng = np.random.default_rng(seed)
        for object_id in draw_objects(rng, split, count):
            xy = rng.uniform(-DROP_HALF_SPAN_M, DROP_HALF_SPAN_M, size=2)
            z = rng.uniform(*DROP_HEIGHT_RANGE_M)
            orientation = self.p.getQuaternionFromEuler(rng.uniform(-math.pi, math.pi, size=3))
            self.add_object(object_id, split, (float(xy[0]), float(xy[1]), float(z)),
                            orientation)
            self.settle(SETTLE_STEPS_MAX // 4)
        self.settle()
        return list(self.objects)

    def add_object(self, object_id: int, split: str, position: Sequence[float],
                   orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0)) -> PlacedObject:
        body = self.p.loadURDF(str(object_urdf(object_id, split)), list(position),
                               list(orientation), globalScaling=OBJECT_SCALE,
                               physicsClientId=self.client)
        self.p.changeDynamics(body, -1, lateralFriction=OBJECT_FRICTION,
                              physicsClientId=self.client)
        placed = PlacedObject(body, object_id)
        self.objects.append(placed)
        return placed

    def add_box(self, half_extents: Sequence[float], position: Sequence[float],
                yaw: float = 0.0, mass_kg: float = 0.1) -> PlacedObject:
        """A plain box (visual = collision shape exactly): for tests of known geometry."""
        collision = self.p.createCollisionShape(self.p.GEOM_BOX, halfExtents=list(half_extents),
                                                physicsClientId=self.client)
        visual = self.p.createVisualShape(self.p.GEOM_BOX, halfExtents=list(half_extents),
                                          rgbaColor=[0.8, 0.3, 0.2, 1.0],
                                          physicsClientId=self.client)
        body = self.p.createMultiBody(mass_kg, collision, visual, list(position),
                                      self.p.getQuaternionFromEuler([0.0, 0.0, yaw]),
                                      physicsClientId=self.client)
        self.p.changeDynamics(body, -1, lateralFriction=OBJECT_FRICTION,
                              physicsClientId=self.client)
        placed = PlacedObject(body, -1)
        self.objects.append(placed)
        return placed

    def settle(self, max_steps: int = SETTLE_STEPS_MAX) -> int:
        """Step until every object is nearly still (or ``max_steps``); returns the steps run."""
        for step in range(1, max_steps + 1):
            self.step()
            if step % 24 == 0 and self._all_still():
                return step
        return max_steps

    def _all_still(self) -> bool:
        for placed in self.objects:
            linear, angular = self.p.getBaseVelocity(placed.body, physicsClientId=self.client)
            if np.linalg.norm(linear) > SETTLE_SPEED_M_S or np.linalg.norm(angular) > 0.05:
                return False
        return True

    def remove(self, placed: PlacedObject) -> None:
        self.p.removeBody(placed.body, physicsClientId=self.client)
        self.objects.remove(placed)

    def remove_fallen(self) -> list[PlacedObject]:
        """Objects pushed out of the tray (off its floor) leave the scene, as in the papers."""
        fallen = [placed for placed in self.objects if not self.in_tray(placed)]
        for placed in fallen:
            self.remove(placed)
        return fallen

    def in_tray(self, placed: PlacedObject) -> bool:
        (x, y, z), _ = self.pose(placed)
        half = 0.25 * TRAY_SCALE
        return abs(x) < half and abs(y) < half and z > REMOVED_BELOW_M

    def pose(self, placed: PlacedObject) -> tuple[tuple[float, ...], tuple[float, ...]]:
        position, orientation = self.p.getBasePositionAndOrientation(
            placed.body, physicsClientId=self.client)
        return tuple(position), tuple(orientation)

    def state(self) -> np.ndarray:
        """Every object's position and orientation, (N, 7): for determinism checks."""
        return np.array([[*position, *orientation] for position, orientation
                         in (self.pose(placed) for placed in self.objects)])
