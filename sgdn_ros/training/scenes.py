"""Rendered tabletop images with known grasps, for the demo and the tests.

Until real camera data is at hand, the pipeline is exercised on images this module makes: a
light, slightly textured table under a gentle lighting gradient, with dark elongated objects
(boxes, ellipses, capsules) that cast a soft shadow. Every object comes with its truth (centre,
size, grasp angle), so a test can say where the best grasp must be.

Objects are drawn from signed distance functions, so their edges are anti-aliased and their
centres and sizes are exact to a fraction of a pixel. Random objects are placed wholly inside
the centre crop the network sees (``NETWORK_INPUT_SIZE`` square) and at least
``MIN_OBJECT_GAP_PX`` apart, so each object can be judged on its own.

Angles follow the project's convention: counter-clockwise on screen from the image +x (column)
axis, in [0, pi); with rows pointing down, angle ``a`` runs along ``(dcol, drow) = (cos a,
-sin a)``. A grasp goes across an object, so ``grasp_angle`` is perpendicular to its long axis.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from os import PathLike

import cv2
import numpy as np

NETWORK_INPUT_SIZE = 320
SCENE_TRUTH_FILE = "scenes.json"
MIN_OBJECT_GAP_PX = 60.0
LENGTH_RANGE_PX = (60.0, 130.0)
THICKNESS_RANGE_PX = (20.0, 45.0)
OBJECT_PALETTE_BGR: tuple[tuple[int, int, int], ...] = (
    (30, 25, 130),   # dark red
    (120, 45, 25),   # dark blue
    (40, 100, 30),   # dark green
    (90, 30, 80),    # dark purple
    (25, 50, 90),    # dark brown
    (90, 80, 20),    # dark teal
    (35, 35, 40),    # near black
)

_PLACEMENT_ATTEMPTS = 2000
_CROP_MARGIN_PX = 6.0
_SHADOW_OFFSET_PX = (5.0, 4.0)  # (rows, cols): light from the upper left
_SHADOW_STRENGTH = 0.2
_SHADOW_BLUR_SIGMA = 4.0


SignedDistance = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]


def _box_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                  half_thickness: float) -> np.ndarray:
    outside_along = np.abs(along) - half_length
    outside_across = np.abs(across) - half_thickness
    outer = np.hypot(np.maximum(outside_along, 0.0), np.maximum(outside_across, 0.0))
    inner = np.minimum(np.maximum(outside_along, outside_across), 0.0)
    return outer + inner


def _ellipse_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                      half_thickness: float) -> np.ndarray:
    """First-order distance (implicit value over its gradient): exact enough at the outline."""
    implicit = (along / half_length) ** 2 + (across / half_thickness) ** 2 - 1.0
    gradient = 2.0 * np.hypot(along / half_length ** 2, across / half_thickness ** 2)
    return implicit / np.maximum(gradient, 1e-9)


def _capsule_distance(along: np.ndarray, across: np.ndarray, half_length: float,
                      half_thickness: float) -> np.ndarray:
    spine_half_length = half_length - half_thickness
    beyond_spine = np.maximum(np.abs(along) - spine_half_length, 0.0)
    return np.hypot(beyond_spine, across) - half_thickness


_SIGNED_DISTANCES: dict[str, SignedDistance] = {
    "box": _box_distance,
    "ellipse": _ellipse_distance,
    "capsule": _capsule_distance,
}
SHAPES: tuple[str, ...] = tuple(_SIGNED_DISTANCES)


@dataclass(frozen=True)
class SceneObject:
    """One object on the table and the grasp across it (image pixels, project angle convention)."""

    row: float
    col: float
    length: float
    thickness: float
    grasp_angle: float
    shape: str = "box"
    colour_bgr: tuple[int, int, int] = OBJECT_PALETTE_BGR[0]

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if not 0.0 < self.thickness <= self.length:
            raise ValueError(
                f"need 0 < thickness <= length, got thickness {self.thickness} and length "
                f"{self.length}; length is the long axis")
        if not 0.0 <= self.grasp_angle < math.pi:
            raise ValueError(
                f"grasp_angle must be in [0, pi) radians, got {self.grasp_angle}; "
                "reduce it modulo pi")
        if len(self.colour_bgr) != 3 or not all(0 <= c <= 255 for c in self.colour_bgr):
            raise ValueError(f"colour_bgr must be three values in 0..255, got {self.colour_bgr}")

    @property
    def long_axis_angle(self) -> float:
        """Direction of the long axis, in [0, pi): a quarter turn from the grasp."""
        return (self.grasp_angle + math.pi / 2) % math.pi

    @property
    def bounding_radius(self) -> float:
        """Radius of a circle around the centre that holds the whole object."""
        return math.hypot(self.length, self.thickness) / 2


def object_coverage(obj: SceneObject, height: int, width: int) -> np.ndarray:
    """Fraction of each pixel covered by ``obj``, as (height, width) float32 in [0, 1].

    Pixel centres lie at integer (row, col), so an object centred on (row, col) covers the
    pixel there symmetrically.
    """
    coverage = np.zeros((height, width), dtype=np.float32)
    reach = obj.bounding_radius + 2.0
    top, bottom = max(int(obj.row - reach), 0), min(int(obj.row + reach) + 2, height)
    left, right = max(int(obj.col - reach), 0), min(int(obj.col + reach) + 2, width)
    if top >= bottom or left >= right:
        return coverage
    up = obj.row - np.arange(top, bottom, dtype=np.float64)[:, None]
    right_of = np.arange(left, right, dtype=np.float64)[None, :] - obj.col
    cos_grasp, sin_grasp = math.cos(obj.grasp_angle), math.sin(obj.grasp_angle)
    across = right_of * cos_grasp + up * sin_grasp
    along = up * cos_grasp - right_of * sin_grasp
    distance = _SIGNED_DISTANCES[obj.shape](along, across, obj.length / 2, obj.thickness / 2)
    coverage[top:bottom, left:right] = np.clip(0.5 - distance, 0.0, 1.0)
    return coverage


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
        coverage = object_coverage(obj, height, width)[..., None]
        shading = rng.normal(0.0, 1.5, size=(height, width, 1)).astype(np.float32)
        colour = np.asarray(obj.colour_bgr, dtype=np.float32) + shading
        image += coverage * (colour - image)
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
    rows = np.arange(height, dtype=np.float32)[:, None] - height / 2
    cols = np.arange(width, dtype=np.float32)[None, :] - width / 2
    along_light = (cols * math.cos(light_direction) + rows * math.sin(light_direction))
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
    shadow = cv2.GaussianBlur(np.minimum(shadow, 1.0), (0, 0), _SHADOW_BLUR_SIGMA)
    image *= (1.0 - _SHADOW_STRENGTH * shadow)[..., None]


def _place_random_objects(
    rng: np.random.Generator, height: int, width: int, count: int
) -> list[SceneObject]:
    """Rejection sampling: random objects inside the crop, each far enough from the others."""
    top, left, bottom, right = network_crop_bounds(height, width)
    occupied = np.zeros((height, width), dtype=bool)
    distance_to_placed = np.full((height, width), np.inf, dtype=np.float32)
    placed: list[SceneObject] = []
    for _ in range(_PLACEMENT_ATTEMPTS):
        if len(placed) == count:
            return placed
        candidate = _random_object(rng, top, left, bottom, right)
        if candidate is None:
            continue
        footprint = object_coverage(candidate, height, width) > 0.0
        if distance_to_placed[footprint].min() <= MIN_OBJECT_GAP_PX:
            continue
        placed.append(candidate)
        occupied |= footprint
        distance_to_placed = _distance_to(occupied)
    if len(placed) == count:
        return placed
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


def _distance_to(occupied: np.ndarray) -> np.ndarray:
    """Distance (px) from every pixel to the nearest occupied one."""
    free = np.where(occupied, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
