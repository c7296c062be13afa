"""Drawing: grippers land where the grasp says, in the right colours, on a copy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.drawing import (
    BEST_COLOUR_BGR,
    OTHER_COLOUR_BGR,
    DrawingError,
    draw_grasps,
    render_heatmap,
)


def grasp(row: float, col: float, angle: float, width: float, confidence: float = 0.9,
          crop_offset: int = 0) -> Grasp:
    """A grasp whose crop position is its image position minus crop_offset."""
    return Grasp(row=row, col=col, angle=angle, width_px=width, width_m=math.nan,
                 confidence=confidence, angle_class=0, crop_row=int(row) - crop_offset,
                 crop_col=int(col) - crop_offset, crop_width_px=width)


def is_colour(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= 40))


def is_greenish(pixel: np.ndarray) -> bool:
    """Green at least partly covered by an anti-aliased line."""
    blue, green, red = pixel.astype(int)
    return green > 50 and blue < 40 and red < 40


def black(height: int = 100, width: int = 120) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def test_horizontal_grasp_draws_jaw_along_columns_and_plates_along_rows():
    drawn = draw_grasps(black(), [grasp(50, 60, 0.0, 40)])
    for col in (44, 48, 52, 68, 72, 76):
        assert is_colour(drawn[50, col], BEST_COLOUR_BGR), col
    for row in (46, 54):
        assert is_colour(drawn[row, 40], BEST_COLOUR_BGR)
        assert is_colour(drawn[row, 80], BEST_COLOUR_BGR)
    for row in (40, 44, 56, 60):
        assert not drawn[row, 60].any()
    assert not drawn[50, 90:].any() and not drawn[50, :30].any()


def test_vertical_grasp_draws_jaw_along_rows():
    drawn = draw_grasps(black(), [grasp(50, 60, math.pi / 2, 40)])
    for row in (34, 38, 42, 58, 62, 66):
        assert is_colour(drawn[row, 60], BEST_COLOUR_BGR), row
    for col in (52, 56, 64, 68):
        assert is_colour(drawn[30, col], BEST_COLOUR_BGR)
        assert is_colour(drawn[70, col], BEST_COLOUR_BGR)
    for col in (44, 48, 74, 78):
        assert not drawn[50, col].any()


def test_angle_is_counter_clockwise_on_screen_with_rows_pointing_down():
    drawn = draw_grasps(black(), [grasp(50, 60, math.pi / 4, 60)])
    for step in (8, 12, 16):
        assert is_greenish(drawn[50 - step, 60 + step])
        assert is_greenish(drawn[50 + step, 60 - step])
        assert not drawn[50 + step, 60 + step].any()


def test_input_is_left_alone_and_output_is_a_same_shaped_copy():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)
    original = image.copy()
    drawn = draw_grasps(image, [grasp(40, 50, 1.0, 30), grasp(20, 20, 2.0, 20, 0.6)])
    np.testing.assert_array_equal(image, original)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.shares_memory(drawn, image)
    assert (drawn != image).any()
    np.testing.assert_array_equal(draw_grasps(image, []), image)


def test_best_grasp_is_green_with_confidence_text_and_others_amber():
    weaker, best = grasp(20, 25, 0.0, 30, 0.55), grasp(70, 70, 0.0, 30, 0.97)
    drawn = draw_grasps(black(), [weaker, best])
    assert is_colour(drawn[70, 60], BEST_COLOUR_BGR)
    assert is_colour(drawn[20, 15], OTHER_COLOUR_BGR)
    text_area = drawn[45:62, 78:120]
    assert (np.abs(text_area.astype(int) - BEST_COLOUR_BGR).sum(axis=2) < 60).sum() > 10
    assert not drawn[0:10, 44:80].any()


def test_on_crop_draws_at_the_network_input_position():
    shifted = grasp(80, 100, 0.0, 20, crop_offset=50)
    on_image = draw_grasps(black(), [shifted])
    on_crop = draw_grasps(black(), [shifted], on_crop=True)
    assert is_colour(on_image[80, 94], BEST_COLOUR_BGR) and not on_image[30, 44].any()
    assert is_colour(on_crop[30, 44], BEST_COLOUR_BGR) and not on_crop[80, 94].any()


def test_grasps_partly_outside_the_image_are_clipped():
    drawn = draw_grasps(black(), [grasp(2, 3, 0.3, 300), grasp(-500, 900, 1.0, 10, 0.1)])
    assert drawn.shape == (100, 120, 3) and drawn.any()


@pytest.mark.parametrize("image", [
    np.zeros((10, 10), np.uint8),
    np.zeros((10, 10, 3), np.float32),
    np.zeros((10, 10, 4), np.uint8),
])
def test_non_bgr_images_are_rejected(image):
    with pytest.raises(DrawingError, match=r"image_bgr: expected an \(H, W, 3\) uint8 BGR image"):
        draw_grasps(image, [])


def test_non_finite_grasp_is_rejected():
    with pytest.raises(DrawingError, match="non-finite position, width or angle"):
        draw_grasps(black(), [grasp(10, 10, 0.0, math.nan)])


def test_heatmap_is_red_where_confident_and_blue_where_not_with_grasps_on_top():
    crop = np.full((64, 80, 3), 128, np.uint8)
    confidence = np.zeros((64, 80), np.float32)
    confidence[:, :40] = 1.0
    target = grasp(500, 500, math.pi / 2, 20, crop_offset=470)
    heat = render_heatmap(crop, confidence, [target], alpha=0.6)
    assert heat.shape == crop.shape and heat.dtype == np.uint8
    blue, _, red = heat[10, 10].astype(int)
    assert red > blue + 60
    blue, _, red = heat[10, 70].astype(int)
    assert blue > red + 60
    assert is_colour(heat[24, 30], BEST_COLOUR_BGR)
    np.testing.assert_array_equal(crop, 128)


def test_heatmap_alpha_zero_shows_only_the_crop():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    confidence = rng.random((32, 48)).astype(np.float32)
    np.testing.assert_array_equal(render_heatmap(crop, confidence, [], alpha=0.0), crop)


def test_heatmap_rejects_mismatched_confidence_and_bad_alpha():
    crop = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(DrawingError, match="confidence must be an \\(H, W\\) array the size"):
        render_heatmap(crop, np.zeros((1, 1, 32, 48), np.float32), [])
    with pytest.raises(DrawingError, match="alpha .* must be in \\[0, 1\\]"):
        render_heatmap(crop, np.zeros((32, 48), np.float32), [], alpha=1.5)
