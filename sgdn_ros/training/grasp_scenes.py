"""Synthetic tabletop scenes with analytic parallel-jaw grasp rectangles, to train SGDN on.

No grasp data set can be downloaded where this project is built, so the network learns from
generated scenes. This module places the objects and gathers the truth; the scenes' varied look
is ``scene_looks``'s, the grasp rectangles of an object are ``grasp_rectangles``'s. About one
scene in six is drawn by the demo renderer (``sgdn_ros.training.scenes``: dark objects on a
light table), so the demo scenes lie inside the training distribution.

Object geometry (box, ellipse, capsule) is ``scene_objects``'s: ``SceneObject`` and
``object_coverage``, shared with the demo renderer.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np

from sgdn_ros.training.grasp_rectangles import (
    GRASP_CLEARANCE_PX,
    ROUND_OBJECT_RATIO,
    GraspRectangle,
    object_grasp_rectangles,
    rectangles_clear_of,
    rectangles_reach,
)
from sgdn_ros.training.scene_looks import render_varied_scene
from sgdn_ros.training.scene_objects import OBJECT_PALETTE_BGR, SHAPES, SceneObject
from sgdn_ros.training.scenes import render_tabletop_scene
from sgdn_ros.training.tabletop import place_apart

REFERENCE_SIZE_PX = 320          # object sizes below are for a 320 x 320 scene and scale with it
LENGTH_RANGE_PX = (40.0, 140.0)
THICKNESS_RANGE_PX = (14.0, 50.0)
ROUND_OBJECT_PROBABILITY = 0.15
DEMO_STYLE_PROBABILITY = 1.0 / 6.0
MIN_SCENE_SIZE_PX = 64

_EDGE_MARGIN_PX = GRASP_CLEARANCE_PX / 2 + 3.0
_PLACEMENT_ATTEMPTS_PER_OBJECT = 25


@dataclass(frozen=True, eq=False)
class GraspScene:
    """An image and its ground truth: the objects on it and every valid grasp rectangle."""

    image: np.ndarray
    objects: tuple[SceneObject, ...]
    rectangles: tuple[GraspRectangle, ...]


def generate_grasp_scene(seed: int, height: int = 320, width: int = 320,
                         max_objects: int = 4) -> GraspScene:
    """A random scene with 1 to ``max_objects`` objects and its grasp rectangles.

    The same seed gives the same scene. Objects lie wholly inside the image (with their grasp
    rectangles' finger tips) and never overlap; sizes scale with ``min(height, width) / 320``,
    so the first object always fits.
    """
    for name, value, minimum in (("seed", seed, 0), ("height", height, MIN_SCENE_SIZE_PX),
                                 ("width", width, MIN_SCENE_SIZE_PX),
                                 ("max_objects", max_objects, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, max_objects + 1))
    scale = min(height, width) / REFERENCE_SIZE_PX
    placed = place_apart(lambda: _random_object(rng, height, width, scale), height, width,
                         count, count * _PLACEMENT_ATTEMPTS_PER_OBJECT, min_gap_px=0.0)
    if rng.random() < DEMO_STYLE_PROBABILITY:
        palette = OBJECT_PALETTE_BGR
        objects = [replace(obj, colour_bgr=palette[rng.integers(len(palette))])
                   for obj, _ in placed]
        image, _ = render_tabletop_scene(int(rng.integers(2**31)), height, width, objects=objects)
    else:
        image, objects = render_varied_scene(rng, placed)
    rectangles = []
    for index, obj in enumerate(objects):
        candidates = object_grasp_rectangles(obj)
        reach = rectangles_reach(obj, candidates)
        nearby = [coverage for other, (neighbour, coverage) in enumerate(placed)
                  if other != index and math.hypot(neighbour.row - obj.row, neighbour.col - obj.col)
                  <= reach + neighbour.bounding_radius + 1.0]
        rectangles.extend(rectangles_clear_of(candidates, nearby))
    return GraspScene(image=image, objects=tuple(objects), rectangles=tuple(rectangles))


def _random_object(rng: np.random.Generator, height: int, width: int,
                   scale: float) -> SceneObject:
    """A random shape placed so that its bounding circle, and so every finger tip of its
    grasps (at most clearance/2 beyond that circle), stays inside the image."""
    if rng.random() < ROUND_OBJECT_PROBABILITY:
        length = rng.uniform(LENGTH_RANGE_PX[0], 1.2 * THICKNESS_RANGE_PX[1]) * scale
        thickness = min(length * rng.uniform(ROUND_OBJECT_RATIO + 0.02, 1.0),
                        THICKNESS_RANGE_PX[1] * scale)
    else:
        length = rng.uniform(*LENGTH_RANGE_PX) * scale
        thickness = rng.uniform(THICKNESS_RANGE_PX[0] * scale,
                                min(THICKNESS_RANGE_PX[1] * scale, ROUND_OBJECT_RATIO * length))
    keep_out = math.hypot(length, thickness) / 2 + _EDGE_MARGIN_PX
    return SceneObject(
        row=rng.uniform(keep_out, height - 1 - keep_out),
        col=rng.uniform(keep_out, width - 1 - keep_out),
        length=length, thickness=thickness, grasp_angle=rng.uniform(0.0, math.pi),
        shape=SHAPES[rng.integers(len(SHAPES))])
