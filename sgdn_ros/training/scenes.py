"""Rendered tabletop images with known grasps, for the demo and the tests.

Until real camera data is at hand, the pipeline is exercised on images this module makes: a
light, slightly textured table under a gentle lighting gradient, with dark elongated objects
(boxes, ellipses, capsules) that cast a soft shadow. Every object comes with its truth (centre,
size, grasp angle), so a test can say where the best grasp must be.

The objects and their geometry are ``scene_objects``'s; the drawing and placement steps are
``tabletop``'s, shared with the training renderer. Random objects are placed wholly inside the
centre crop the network sees (``NETWORK_INPUT_SIZE`` square) and at least ``MIN_OBJECT_GAP_PX``
apart, so each object can be judged on its own.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Sequence
from dataclasses import asdict, replace
from os import PathLike

import cv2
import numpy as np

from sgdn_ros.training.scene_objects import (
    OBJECT_PALETTE_BGR,
    SHAPES,
    SceneObject,
    object_coverage,
)
from sgdn_ros.training.tabletop import (
    along_direction,
    darken_under_shadow,
    paint_over,
    pixel_grid,
    place_apart,
)

NETWORK_INPUT_SIZE = 320
SCENE_TRUTH_FILE = "scenes.json"
MIN_OBJECT_GAP_PX = 60.0
LENGTH_RANGE_PX = (60.0, 130.0)
THICKNESS_RANGE_PX = (20.0, 45.0)

_PLACEMENT_ATTEMPTS = 2000
_CROP_MARGIN_PX = 6.0
_SHADOW_OFFSET_PX = (5.0, 4.0)  # (rows, cols): light from the upper left
_SHADOW_STRENGTH = 0.2
_SHADOW_BLUR_SIGMA = 4.0


def render_tabletop_scene(
    seed: int,
    height: int = 480,
    width: int = 640,
    num_objects: int = 1,
    objects: Sequence[SceneObject] | None = None,
) -> tuple[np.ndarray, list[SceneObject]]:
    """Render a (height, width, 3) uint8 BGR tabletop image and the objects on it.

    ``objects`` places exact objects (anywhere, unchecked) and overrides ``num_objects``;
    otherwise ``num_objects`` random ones are placed inside the network's centre crop. The same
    seed gives the same image.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height} (width x height)")
    if num_objects < 0:
        raise ValueError(f"num_objects must be >= 0, got {num_objects}")
    rng = np.random.default_rng(seed)
    image = _render_table(rng, height, width)
    if objects is None:
        placed = _place_random_objects(rng, height, width, num_objects)
    else:
        placed = list(objects)
    _cast_shadows(image, placed)
    for obj in placed:
        coverage = object_coverage(obj, height, width)
        shading = rng.normal(0.0, 1.5, size=(height, width, 1)).astype(np.float32)
        paint_over(image, coverage, np.asarray(obj.colour_bgr, dtype=np.float32) + shading)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), placed


def write_demo_scenes(
    folder: str | PathLike[str], count: int = 8, seed: int = 0
) -> list[tuple[pathlib.Path, list[SceneObject]]]:
    """Write ``count`` 640x480 PNG scenes (1 to 3 objects) and their truth into ``folder``.

    The truth goes to ``SCENE_TRUTH_FILE`` (JSON: per image its seed and objects). Returns each
    image's path with its objects.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = []
    for index in range(count):
        image, objects = render_tabletop_scene(seed + index, num_objects=1 + index % 3)
        path = folder / f"tabletop_{index:02d}.png"
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}; check that the folder is writable")
        scenes.append((path, objects))
    truth = {
        "angle_convention": "radians in [0, pi), counter-clockwise on screen from +x (columns); "
                            "grasp_angle goes across the object's long axis",
        "scenes": [{"image": path.name, "seed": seed + index,
                    "objects": [asdict(obj) for obj in objects]}
                   for index, (path, objects) in enumerate(scenes)],
    }
    (folder / SCENE_TRUTH_FILE).write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return scenes


def write_demo_images(
    folder: str | PathLike[str], count: int = 8, seed: int = 0
) -> list[pathlib.Path]:
    """Like ``write_demo_scenes``, returning only the image paths."""
    return [path for path, _ in write_demo_scenes(folder, count, seed)]


def network_crop_bounds(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the centre crop the network sees, clipped to the image."""
    top = max((height - NETWORK_INPUT_SIZE) // 2, 0)
    left = max((width - NETWORK_INPUT_SIZE) // 2, 0)
    return (top, left, min(top + NETWORK_INPUT_SIZE, height),
            min(left + NETWORK_INPUT_SIZE, width))


def _render_table(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Light table: a base colour, a linear lighting gradient and mild grain, as float32."""
    base = np.array([200.0, 212.0, 222.0]) + rng.uniform(-8.0, 8.0, size=3)
    light_direction = rng.uniform(0.0, 2 * math.pi)
    light_slope = rng.uniform(0.04, 0.1)
    rows, cols = pixel_grid(height, width)
    along_light = along_direction(rows - height / 2, cols - width / 2, light_direction)
    lighting = 1.0 + light_slope * along_light / math.hypot(height, width)
    grain = cv2.GaussianBlur(rng.normal(0.0, 4.0, size=(height, width)).astype(np.float32),
                             (0, 0), 1.2)
    speckle = rng.normal(0.0, 1.5, size=(height, width, 3)).astype(np.float32)
    table = base.astype(np.float32) * lighting[..., None] + grain[..., None] + speckle
    return table.astype(np.float32)


def _cast_shadows(image: np.ndarray, objects: Sequence[SceneObject]) -> None:
    if not objects:
        return
    height, width = image.shape[:2]
    drop_rows, drop_cols = _SHADOW_OFFSET_PX
    shadow = sum(object_coverage(replace(obj, row=obj.row + drop_rows, col=obj.col + drop_cols),
                                 height, width) for obj in objects)
    darken_under_shadow(image, np.minimum(shadow, 1.0), _SHADOW_BLUR_SIGMA, _SHADOW_STRENGTH)


def _place_random_objects(
    rng: np.random.Generator, height: int, width: int, count: int
) -> list[SceneObject]:
    """Rejection sampling: random objects inside the crop, each far enough from the others."""
    top, left, bottom, right = network_crop_bounds(height, width)
    placed = place_apart(lambda: _random_object(rng, top, left, bottom, right), height, width,
                         count, _PLACEMENT_ATTEMPTS, MIN_OBJECT_GAP_PX)
    if len(placed) == count:
        return [obj for obj, _ in placed]
    raise ValueError(
        f"could not place {count} objects {MIN_OBJECT_GAP_PX:.0f} px apart inside the "
        f"{right - left}x{bottom - top} centre crop; ask for fewer objects")


def _random_object(
    rng: np.random.Generator, top: int, left: int, bottom: int, right: int
) -> SceneObject | None:
    """A random object whose centre keeps it inside the crop, or None when it cannot fit."""
    length = rng.uniform(*LENGTH_RANGE_PX)
    thickness = rng.uniform(THICKNESS_RANGE_PX[0], min(THICKNESS_RANGE_PX[1], 0.75 * length))
    grasp_angle = rng.uniform(0.0, math.pi)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = OBJECT_PALETTE_BGR[rng.integers(len(OBJECT_PALETTE_BGR))]
    keep_out = math.hypot(length, thickness) / 2 + _CROP_MARGIN_PX
    row_range = (top + keep_out, bottom - 1 - keep_out)
    col_range = (left + keep_out, right - 1 - keep_out)
    if row_range[0] > row_range[1] or col_range[0] > col_range[1]:
        return None
    return SceneObject(row=rng.uniform(*row_range), col=rng.uniform(*col_range), length=length,
                       thickness=thickness, grasp_angle=grasp_angle, shape=shape,
                       colour_bgr=colour)

