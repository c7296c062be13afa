"""The varied look of generated training scenes: tables, object colours, shadows, light, camera.

A network trained on one look learns that look, so the scenes vary widely: tables from black to
white, plain or with grain, stripes, wood, checkers or blotches; objects of any colour (light on
dark as well as dark on light, always differing in luminance from the table under them), some
textured, shaded, with soft shadows; uneven lighting and vignetting, blur and sensor noise.
Where the objects go is decided before (``grasp_scenes``); this module only draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from sgdn_ros.training.scene_objects import SceneObject
from sgdn_ros.training.tabletop import (
    along_direction,
    darken_under_shadow,
    paint_over,
    pixel_grid,
)

MIN_LUMINANCE_CONTRAST = 35.0    # |luminance(object) - luminance(table under it)|, 0..255
LUMINANCE_WEIGHTS_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)

_COLOUR_ATTEMPTS = 12
_TABLE_TEXTURES = ("plain", "noise", "stripes", "wood", "checker", "blotches")


def luminance(bgr: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of BGR values (last axis), in the input's units."""
    return np.asarray(bgr, dtype=np.float32) @ LUMINANCE_WEIGHTS_BGR


def render_varied_scene(rng: np.random.Generator, placed: list[tuple[SceneObject, np.ndarray]]
                        ) -> tuple[np.ndarray, list[SceneObject]]:
    """Table, shadows, objects (colours chosen against the table under them), light, camera.

    ``placed`` holds each object with its coverage map; the objects come back with the colours
    they were painted in, the image as (H, W, 3) uint8 BGR.
    """
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
    rows, cols = pixel_grid(height, width)
    direction = rng.uniform(0.0, math.pi)
    along = along_direction(rows, cols, direction)
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
    shadow = cv2.warpAffine(np.maximum.reduce(coverages), shift, (width, height))
    blur_sigma = rng.uniform(2.0, 6.0)
    strength = rng.uniform(0.1, 0.45)
    darken_under_shadow(image, shadow, blur_sigma, strength)


def _paint_object(rng: np.random.Generator, image: np.ndarray, obj: SceneObject,
                  coverage: np.ndarray, region: tuple[slice, slice]) -> None:
    """Blend the object in: its colour under a shading gradient, sometimes with a texture."""
    rows, cols = pixel_grid(image.shape[0], image.shape[1])
    rows, cols = rows[region[0]] - obj.row, cols[:, region[1]] - obj.col
    direction = rng.uniform(0.0, 2 * math.pi)
    towards_light = along_direction(rows, cols, direction) / obj.bounding_radius
    shade = 1.0 + rng.uniform(0.0, 0.3) * towards_light
    paint = np.asarray(obj.colour_bgr, dtype=np.float32) * shade[..., None]
    if rng.random() < 0.35:
        grasp_axis = cols * math.cos(obj.grasp_angle) - rows * math.sin(obj.grasp_angle)
        period = rng.uniform(4.0, 20.0)
        paint = paint + (rng.uniform(6.0, 25.0) * np.sin(grasp_axis * (2 * math.pi / period)))[
            ..., None]
    paint_over(image[region], coverage[region], paint)


def _apply_lighting(rng: np.random.Generator, image: np.ndarray) -> None:
    """Uneven light: a linear gradient, vignetting and a colour cast, multiplied in place."""
    height, width = image.shape[:2]
    rows, cols = pixel_grid(height, width)
    rows, cols = (rows - height / 2) / max(height, width), (cols - width / 2) / max(height, width)
    direction = rng.uniform(0.0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.0, 0.5) * along_direction(rows, cols, direction)
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
