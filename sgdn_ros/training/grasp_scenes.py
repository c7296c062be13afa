"""Synthetic tabletop scenes with analytic parallel-jaw grasp rectangles, to train SGDN on.

No grasp data set can be downloaded where this project is built, so the network learns from
generated scenes. A network trained on one look learns that look, so the scenes vary widely:
tables from black to white, plain or with grain, stripes, wood, checkers or blotches; objects of
any colour (light on dark as well as dark on light, always differing in luminance from the table
under them), some textured, shaded, with soft shadows; uneven lighting and vignetting, blur and
sensor noise. About one scene in six is drawn by the demo renderer
(``sgdn_ros.training.scenes``: dark objects on a light table), so the demo scenes lie inside
the training distribution.

Object geometry (box, ellipse, capsule) is ``sgdn_ros.training.scenes``'s: ``SceneObject`` and
``object_coverage``. Angles follow the project convention: radians in [0, pi), counter-clockwise
on screen from the +column axis; angle ``a`` runs along ``(drow, dcol) = (-sin a, cos a)``.

Grasp labels (``object_grasp_rectangles``): a parallel-jaw grasp closes ACROSS an elongated
object (angle = ``grasp_angle``), centred on its long axis, at positions every ``spacing_px``
from the centre out to ``length/2 - thickness/2`` (box, capsule: where the flat sides end). An
ellipse narrows towards its tips, so its positions stop where the chord across it falls to
``ELLIPSE_MIN_WIDTH_FRACTION`` of its thickness: there the surface normals are still within about
30 degrees of the finger line for every ellipse called elongated (thickness <= 0.8 length),
inside a friction cone of mu ~ 0.6. The opening (rectangle width) is the widest chord the jaws
meet across their own size, plus ``clearance_px``; the jaw size (rectangle height) is half the
opening, the proportion of Cornell's rectangles and of GG-CNN's predicted ones, so a perfect
prediction converted by ``metrics.rectangle_from_grasp`` has IoU 1 with its truth.
Near-round objects (thickness > ``ROUND_OBJECT_RATIO`` * length) can also be taken the other way:
a box by its two other faces (centre only), an ellipse or capsule at every angle
(``ROUND_OBJECT_ANGLE_STEPS`` rectangles at the centre, opening = the object's extent along that
direction + clearance), so every angle class of any K <= ``ROUND_OBJECT_ANGLE_STEPS`` is labelled.
In a scene, grasps whose rectangle would touch another object are dropped.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from sgdn_ros.training.scenes import (
    OBJECT_PALETTE_BGR,
    SHAPES,
    SceneObject,
    object_coverage,
    render_tabletop_scene,
)

GRASP_SPACING_PX = 8.0
GRASP_CLEARANCE_PX = 10.0
ELLIPSE_MIN_WIDTH_FRACTION = 0.8
ROUND_OBJECT_RATIO = 0.8
ROUND_OBJECT_ANGLE_STEPS = 120

REFERENCE_SIZE_PX = 320          # object sizes below are for a 320 x 320 scene and scale with it
LENGTH_RANGE_PX = (40.0, 140.0)
THICKNESS_RANGE_PX = (14.0, 50.0)
ROUND_OBJECT_PROBABILITY = 0.15
DEMO_STYLE_PROBABILITY = 1.0 / 6.0
MIN_SCENE_SIZE_PX = 64
MIN_LUMINANCE_CONTRAST = 35.0    # |luminance(object) - luminance(table under it)|, 0..255
LUMINANCE_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)

_EDGE_MARGIN_PX = GRASP_CLEARANCE_PX / 2 + 3.0
_PLACEMENT_ATTEMPTS_PER_OBJECT = 25
_COLOUR_ATTEMPTS = 12
_TABLE_TEXTURES = ("plain", "noise", "stripes", "wood", "checker", "blotches")


@dataclass(frozen=True)
class GraspRectangle:
    """A Cornell-style grasp rectangle in image pixels.

    ``angle`` is the direction of the finger line (project convention), ``width`` the finger
    opening along it, ``height`` the jaw size across it.
    """

    row: float
    col: float
    angle: float
    width: float
    height: float

    def __post_init__(self) -> None:
        values = (self.row, self.col, self.angle, self.width, self.height)
        if not all(isinstance(value, numbers.Real) and math.isfinite(value) for value in values):
            raise ValueError(f"grasp rectangle values must be finite numbers, got {self}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grasp rectangle width and height must be > 0, got {self}")
        if not 0.0 <= self.angle < math.pi:
            raise ValueError(
                f"grasp rectangle angle must be in [0, pi) radians, got {self.angle}; "
                "reduce it modulo pi")

    @property
    def finger_direction(self) -> tuple[float, float]:
        """Unit (drow, dcol) along the finger line."""
        return -math.sin(self.angle), math.cos(self.angle)

    def finger_tips(self) -> np.ndarray:
        """(2, 2) float (row, col) of the two open finger tips, at +-width/2 from the centre."""
        drow, dcol = self.finger_direction
        half = self.width / 2
        return np.array([[self.row - half * drow, self.col - half * dcol],
                         [self.row + half * drow, self.col + half * dcol]])

    def corners(self) -> np.ndarray:
        """(4, 2) float (row, col), in Cornell's order: corner 0 -> 1 runs along the finger line
        (its length is the width), 1 -> 2 along the jaw (its length is the height)."""
        drow, dcol = self.finger_direction
        along = np.array([drow, dcol]) * (self.width / 2)
        across = np.array([dcol, -drow]) * (self.height / 2)
        centre = np.array([self.row, self.col])
        return np.stack([centre - along - across, centre + along - across,
                         centre + along + across, centre - along + across])


@dataclass(frozen=True, eq=False)
class GraspScene:
    """An image and its ground truth: the objects on it and every valid grasp rectangle."""

    image: np.ndarray
    objects: tuple[SceneObject, ...]
    rectangles: tuple[GraspRectangle, ...]


def object_grasp_rectangles(
    obj: SceneObject,
    spacing_px: float = GRASP_SPACING_PX,
    clearance_px: float = GRASP_CLEARANCE_PX,
) -> list[GraspRectangle]:
    """Every grasp of ``obj`` on its own (module docstring: where, which angles, what sizes)."""
    if not (isinstance(spacing_px, numbers.Real) and 0 < spacing_px < math.inf):
        raise ValueError(f"spacing_px must be a finite number > 0, got {spacing_px!r}")
    if not (isinstance(clearance_px, numbers.Real) and 0 <= clearance_px < math.inf):
        raise ValueError(f"clearance_px must be a finite number >= 0, got {clearance_px!r}")
    half_length, half_thickness = obj.length / 2, obj.thickness / 2
    jaw_px = (obj.thickness + clearance_px) / 2
    long_axis = (-math.cos(obj.grasp_angle), -math.sin(obj.grasp_angle))  # (drow, dcol)
    rectangles = []
    for offset in _positions_along_axis(obj, spacing_px):
        nearest_to_centre = max(abs(offset) - jaw_px / 2, 0.0)
        opening = _chord_width(obj, nearest_to_centre) + clearance_px
        rectangles.append(GraspRectangle(
            row=obj.row + offset * long_axis[0], col=obj.col + offset * long_axis[1],
            angle=obj.grasp_angle, width=opening, height=opening / 2))
    if obj.thickness > ROUND_OBJECT_RATIO * obj.length:
        for turn in _round_object_turns(obj.shape):
            opening = 2 * _extent_along(obj.shape, half_length, half_thickness, turn) + clearance_px
            rectangles.append(GraspRectangle(
                row=obj.row, col=obj.col, angle=(obj.grasp_angle + turn) % math.pi,
                width=opening, height=opening / 2))
    return rectangles


def generate_grasp_scene(seed: int, height: int = 320, width: int = 320,
                         max_objects: int = 4) -> GraspScene:
    """A random scene with 1 to ``max_objects`` objects and its grasp rectangles.

    The same seed gives the same scene. Objects lie wholly inside the image (with their grasp
    rectangles' finger tips) and never overlap; sizes scale with ``min(height, width) / 320``.
    """
    for name, value, minimum in (("seed", seed, 0), ("height", height, MIN_SCENE_SIZE_PX),
                                 ("width", width, MIN_SCENE_SIZE_PX),
                                 ("max_objects", max_objects, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, max_objects + 1))
    scale = min(height, width) / REFERENCE_SIZE_PX
    placed = _place_objects(rng, height, width, count, scale)
    if rng.random() < DEMO_STYLE_PROBABILITY:
        palette = OBJECT_PALETTE_BGR
        objects = [replace(obj, colour_bgr=palette[rng.integers(len(palette))])
                   for obj, _ in placed]
        image, _ = render_tabletop_scene(int(rng.integers(2**31)), height, width, objects=objects)
    else:
        image, objects = _render_varied_scene(rng, placed)
    rectangles = []
    for index, obj in enumerate(objects):
        candidates = object_grasp_rectangles(obj)
        reach = _reach(obj, candidates)
        nearby = [coverage for other, (neighbour, coverage) in enumerate(placed)
                  if other != index and math.hypot(neighbour.row - obj.row, neighbour.col - obj.col)
                  <= reach + neighbour.bounding_radius + 1.0]
        rectangles.extend(_clear_of(candidates, nearby))
    return GraspScene(image=image, objects=tuple(objects), rectangles=tuple(rectangles))


def luminance(bgr: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of BGR values (last axis), in the input's units."""
    return np.asarray(bgr, dtype=np.float32) @ LUMINANCE_WEIGHTS_BGR


# --- grasp geometry ---------------------------------------------------------------------------

def _positions_along_axis(obj: SceneObject, spacing_px: float) -> list[float]:
    """Offsets from the centre along the long axis, every spacing_px, out to the last valid one
    (included even off the spacing grid, so the labelled segment has its full length)."""
    half_length = obj.length / 2
    reach = half_length - obj.thickness / 2
    if obj.shape == "ellipse":
        reach = min(reach, half_length * math.sqrt(1.0 - ELLIPSE_MIN_WIDTH_FRACTION ** 2))
    steps = [spacing_px * k for k in range(1, int(reach / spacing_px + 1e-9) + 1)]
    if reach - (steps[-1] if steps else 0.0) > 0.5:
        steps.append(reach)
    return [0.0] + [sign * step for step in steps for sign in (1.0, -1.0)]


def _chord_width(obj: SceneObject, offset: float) -> float:
    """Width of the object across its long axis at ``offset`` (>= 0) from the centre, within
    the part where grasps are placed (the flat sides of a box or capsule)."""
    if obj.shape == "ellipse":
        fraction = min(offset / (obj.length / 2), 1.0)
        return obj.thickness * math.sqrt(1.0 - fraction ** 2)
    return obj.thickness


def _round_object_turns(shape: str) -> list[float]:
    """Angles, from the grasp across the long axis, of the extra grasps of a near-round object."""
    if shape == "box":
        return [math.pi / 2]
    step = math.pi / ROUND_OBJECT_ANGLE_STEPS
    return [step * k for k in range(1, ROUND_OBJECT_ANGLE_STEPS)]


def _extent_along(shape: str, half_length: float, half_thickness: float, turn: float) -> float:
    """Half the object's extent along a direction ``turn`` away from the across axis: where
    closing parallel jaws stop (support function of the convex outline)."""
    across, along = abs(math.cos(turn)), abs(math.sin(turn))
    if shape == "box":
        return half_thickness * across + half_length * along
    if shape == "ellipse":
        return math.hypot(half_thickness * across, half_length * along)
    return (half_length - half_thickness) * along + half_thickness


def _reach(obj: SceneObject, rectangles: Sequence[GraspRectangle]) -> float:
    """Distance from the object's centre beyond which none of its rectangles reaches."""
    return max(math.hypot(r.row - obj.row, r.col - obj.col) + math.hypot(r.width, r.height) / 2
               for r in rectangles)


def _clear_of(rectangles: list[GraspRectangle], obstacles: Sequence[np.ndarray]
              ) -> list[GraspRectangle]:
    """The rectangles that keep off every obstacle (coverage maps of other objects).

    Each rectangle is checked at a 9 x 5 grid of points against the distance to the nearest
    obstacle pixel; a point's distance must exceed half a grid cell's diagonal (plus a pixel),
    so no part of the rectangle between the points can reach an obstacle either.
    """
    if not obstacles or not rectangles:
        return rectangles
    blocked = np.maximum.reduce(obstacles) > 0
    free = np.where(blocked, 0, 255).astype(np.uint8)
    distance = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    geometry = np.array([(r.row, r.col, r.angle, r.width, r.height) for r in rectangles])
    rows, cols, angles, widths, heights = geometry.T
    along = np.linspace(-0.5, 0.5, 9)[None, :, None] * widths[:, None, None]
    across = np.linspace(-0.5, 0.5, 5)[None, None, :] * heights[:, None, None]
    sin, cos = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    sample_rows = rows[:, None, None] - along * sin + across * cos
    sample_cols = cols[:, None, None] + along * cos + across * sin
    height, width = distance.shape
    sample_rows = np.clip(np.rint(sample_rows), 0, height - 1).astype(np.intp)
    sample_cols = np.clip(np.rint(sample_cols), 0, width - 1).astype(np.intp)
    reach = np.hypot(widths / 16, heights / 8) + 1.0
    nearest = distance[sample_rows, sample_cols].reshape(len(rectangles), -1).min(axis=1)
    return [rectangle for rectangle, keep in zip(rectangles, nearest > reach) if keep]


# --- placement --------------------------------------------------------------------------------

def _place_objects(rng: np.random.Generator, height: int, width: int, count: int,
                   scale: float) -> list[tuple[SceneObject, np.ndarray]]:
    """Up to ``count`` non-overlapping random objects (fewer when the image is full), each with
    its coverage map. The first always fits: sizes scale with the image."""
    occupied = np.zeros((height, width), dtype=bool)
    placed: list[tuple[SceneObject, np.ndarray]] = []
    for _ in range(count * _PLACEMENT_ATTEMPTS_PER_OBJECT):
        if len(placed) == count:
            break
        candidate = _random_object(rng, height, width, scale)
        coverage = object_coverage(candidate, height, width)
        footprint = coverage > 0
        if (footprint & occupied).any():
            continue
        placed.append((candidate, coverage))
        occupied |= footprint
    return placed


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


# --- rendering --------------------------------------------------------------------------------

def _render_varied_scene(rng: np.random.Generator, placed: list[tuple[SceneObject, np.ndarray]]
                         ) -> tuple[np.ndarray, list[SceneObject]]:
    """Table, shadows, objects (colours chosen against the table under them), light, camera."""
    height, width = placed[0][1].shape
    image = _render_table(rng, height, width)
    regions = [_bounding_slices(coverage) for _, coverage in placed]
    objects = [replace(obj, colour_bgr=_contrasting_colour(rng, image[region]))
               for (obj, _), region in zip(placed, regions)]
    if rng.random() < 0.75:
        _cast_soft_shadow(rng, image, [coverage for _, coverage in placed])
    for obj, (_, coverage), region in zip(objects, placed, regions):
        _paint_object(rng, image, obj, coverage, region)
    _apply_lighting(rng, image)
    return _camera(rng, image), objects


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(height, dtype=np.float32)[:, None],
            np.arange(width, dtype=np.float32)[None, :])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Unit-variance noise varying over about ``cells`` cells across the image, (H, W) float32."""
    cells_down = max(2, round(cells * height / max(height, width)))
    cells_across = max(2, round(cells * width / max(height, width)))
    coarse = rng.standard_normal((cells_down, cells_across), dtype=np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / max(float(field.std()), 1e-6)


def _texture_field(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """A pattern in about [-1, 1], (H, W) float32."""
    if kind == "plain":
        return np.zeros((height, width), dtype=np.float32)
    if kind in ("noise", "blotches"):
        cells = int(rng.integers(24, 80)) if kind == "noise" else int(rng.integers(3, 12))
        field = _smooth_noise(rng, height, width, cells)
        return np.tanh(field * 2.0) if kind == "blotches" else np.clip(field / 2, -1, 1)
    rows, cols = _grid(height, width)
    direction = rng.uniform(0.0, math.pi)
    along = cols * math.cos(direction) + rows * math.sin(direction)
    if kind == "checker":
        across = rows * math.cos(direction) - cols * math.sin(direction)
        square = rng.uniform(8.0, 60.0)
        return np.sign(np.sin(along * (math.pi / square)) * np.sin(across * (math.pi / square)))
    period = rng.uniform(6.0, 60.0)
    if kind == "wood":
        along = along + _smooth_noise(rng, height, width, int(rng.integers(2, 6))) * period
    return np.sin(along * (2 * math.pi / period) + rng.uniform(0.0, 2 * math.pi))


def _render_table(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A table of any brightness and tint with one texture and fine grain, (H, W, 3) float32."""
    table_luminance = rng.uniform(10.0, 245.0)
    tint = rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
    tint -= luminance(tint)
    base = np.clip(table_luminance + rng.uniform(0.0, 70.0) * tint, 0.0, 255.0)
    kind = _TABLE_TEXTURES[rng.integers(len(_TABLE_TEXTURES))]
    pattern = _texture_field(rng, kind, height, width)
    pattern_colour = rng.uniform(4.0, 30.0) * rng.uniform(0.7, 1.3, size=3).astype(np.float32)
    grain = _smooth_noise(rng, height, width, max(height, width) // 2) * rng.uniform(1.0, 6.0)
    table = base.astype(np.float32) + pattern[..., None] * pattern_colour + grain[..., None]
    return table.astype(np.float32)


def _bounding_slices(coverage: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero(coverage.any(axis=1))
    cols = np.flatnonzero(coverage.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _contrasting_colour(rng: np.random.Generator, table: np.ndarray) -> tuple[int, int, int]:
    """A random BGR colour whose luminance differs from the table's mean there by at least
    MIN_LUMINANCE_CONTRAST; a grey far from it when random tries keep failing."""
    table_luminance = float(luminance(table.reshape(-1, 3).mean(axis=0)))
    for _ in range(_COLOUR_ATTEMPTS):
        colour = rng.integers(0, 256, size=3)
        if abs(float(luminance(colour)) - table_luminance) >= MIN_LUMINANCE_CONTRAST:
            return (int(colour[0]), int(colour[1]), int(colour[2]))
    grey = int(table_luminance - 100 if table_luminance > 127.5 else table_luminance + 100)
    return (grey, grey, grey)


def _cast_soft_shadow(rng: np.random.Generator, image: np.ndarray,
                      coverages: Sequence[np.ndarray]) -> None:
    """Darken the table where the objects' outline, shifted away from the light and blurred,
    falls (objects are painted over it afterwards)."""
    height, width = image.shape[:2]
    direction = rng.uniform(0.0, 2 * math.pi)
    distance = rng.uniform(2.0, 9.0)
    shift = np.float32([[1, 0, distance * math.cos(direction)],
                        [0, 1, distance * math.sin(direction)]])
    union = np.maximum.reduce(coverages)
    shadow = cv2.warpAffine(union, shift, (width, height))
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(2.0, 6.0))
    image *= (1.0 - rng.uniform(0.1, 0.45) * shadow)[..., None]


def _paint_object(rng: np.random.Generator, image: np.ndarray, obj: SceneObject,
                  coverage: np.ndarray, region: tuple[slice, slice]) -> None:
    """Blend the object in: its colour under a shading gradient, sometimes with a texture."""
    rows, cols = _grid(image.shape[0], image.shape[1])
    rows, cols = rows[region[0]] - obj.row, cols[:, region[1]] - obj.col
    direction = rng.uniform(0.0, 2 * math.pi)
    towards_light = (cols * math.cos(direction) + rows * math.sin(direction)) / obj.bounding_radius
    shade = 1.0 + rng.uniform(0.0, 0.3) * towards_light
    paint = np.asarray(obj.colour_bgr, dtype=np.float32) * shade[..., None]
    if rng.random() < 0.35:
        grasp_axis = cols * math.cos(obj.grasp_angle) - rows * math.sin(obj.grasp_angle)
        period = rng.uniform(4.0, 20.0)
        paint = paint + (rng.uniform(6.0, 25.0) * np.sin(grasp_axis * (2 * math.pi / period)))[
            ..., None]
    alpha = coverage[region][..., None]
    target = image[region]
    target += alpha * (paint - target)


def _apply_lighting(rng: np.random.Generator, image: np.ndarray) -> None:
    """Uneven light: a linear gradient, vignetting and a colour cast, multiplied in place."""
    height, width = image.shape[:2]
    rows, cols = _grid(height, width)
    rows, cols = (rows - height / 2) / max(height, width), (cols - width / 2) / max(height, width)
    direction = rng.uniform(0.0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.0, 0.5) * (cols * math.cos(direction) + rows * math.sin(direction))
    light = light - rng.uniform(0.0, 0.6) * (rows * rows + cols * cols)
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, size=3).astype(np.float32)
    image *= light[..., None] * gain


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Optional defocus blur, then sensor noise, then 8-bit quantisation.

    The noise is uniform (of standard deviation 0.5 to 5 grey levels): a quarter of the cost of
    Gaussian noise here, and no different to a network at this strength.
    """
    if rng.random() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.3))
    spread = np.float32(rng.uniform(0.5, 5.0) * math.sqrt(12.0))
    noise = rng.random(image.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= spread
    image += noise
    np.clip(image, 0.0, 255.0, out=image)
    image += np.float32(0.5)
    return image.astype(np.uint8)
