"""Tests for sgdn_ros.core.preprocessing: crop placement, plane layout, normalisation and
policies."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest

from sgdn_ros.core.frames import image_message_to_bgr
from sgdn_ros.core.preprocessing import (
    PUBLISHED_MEAN_BGR,
    PUBLISHED_SCALE,
    SMALL_IMAGE_POLICIES,
    CropGeometry,
    PreprocessConfig,
    PreprocessingError,
    Preprocessor,
    crop_bgr,
    crop_geometry,
    read_sample_txt,
    write_sample_txt,
)

PUBLISHED = PreprocessConfig()


def coordinate_image(height: int, width: int) -> np.ndarray:
    """A BGR image whose pixels spell their own (row, col), for images up to 4096x4096."""
    rows, cols = np.mgrid[0:height, 0:width]
    high_bits = (rows >> 8) | ((cols >> 8) << 4)
    return np.stack([rows & 255, cols & 255, high_bits], axis=2).astype(np.uint8)


def decode_coordinates(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = bgr.astype(np.int64)
    rows = values[..., 0] | ((values[..., 2] & 15) << 8)
    cols = values[..., 1] | ((values[..., 2] >> 4) << 8)
    return rows, cols


def planes_to_bgr(planes: np.ndarray, config: PreprocessConfig = PUBLISHED) -> np.ndarray:
    """Undo the normalisation of a (1, 3, H, W) tensor, back to an (H, W, 3) uint8 image."""
    pixels = planes[0] / config.scale + np.asarray(config.mean_bgr).reshape(3, 1, 1)
    return np.round(pixels).astype(np.uint8).transpose(1, 2, 0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def test_published_constants() -> None:
    assert PUBLISHED_MEAN_BGR == (102.9801, 115.9465, 122.7717)
    assert pytest.approx(1 / 255) == PUBLISHED_SCALE
    assert (PUBLISHED.input_height, PUBLISHED.input_width) == (320, 320)
    assert PUBLISHED.small_image_policy == "pad"
    assert SMALL_IMAGE_POLICIES == ("pad", "resize", "reject")


@pytest.mark.parametrize("height, width, top, left", [
    (480, 640, 80, 160),
    (481, 641, 80, 160),
    (483, 645, 81, 162),
    (320, 320, 0, 0),
    (321, 1920, 0, 800),
    (200, 640, -60, 160),
    (151, 199, -84, -60),  # int() truncates toward zero: -84.5 -> -84, not floor's -85
])
def test_crop_origin_follows_the_published_formula(height: int, width: int, top: int,
                                                   left: int) -> None:
    geometry = crop_geometry(height, width, PUBLISHED)
    assert (geometry.top, geometry.left) == (top, left)
    assert geometry.scale == 1.0
    assert (geometry.image_height, geometry.image_width) == (height, width)


@pytest.mark.parametrize("height, width", [(480, 640), (481, 641), (320, 320), (333, 1001)])
def test_planes_hold_exactly_the_centre_crop_in_b_g_r_order(height: int, width: int) -> None:
    image = coordinate_image(height, width)
    planes, geometry = Preprocessor(PUBLISHED)(image)
    assert planes.shape == (1, 3, 320, 320)
    assert planes.dtype == np.float32 and planes.flags.c_contiguous
    rows, cols = decode_coordinates(planes_to_bgr(planes))
    expected_rows, expected_cols = np.mgrid[0:320, 0:320]
    np.testing.assert_array_equal(rows, expected_rows + geometry.top)
    np.testing.assert_array_equal(cols, expected_cols + geometry.left)
    # Plane 0 is blue: its value at (0, 0) is the blue of the crop's first pixel.
    crop_origin_blue = image[geometry.top, geometry.left, 0]
    assert planes[0, 0, 0, 0] == pytest.approx((crop_origin_blue - 102.9801) / 255, abs=1e-6)


def test_normalisation_matches_a_hand_computation() -> None:
    image = np.empty((480, 640, 3), dtype=np.uint8)
    image[...] = (10, 200, 255)
    planes, _ = Preprocessor(PUBLISHED)(image)
    # (10 - 102.9801) / 255, (200 - 115.9465) / 255, (255 - 122.7717) / 255
    for channel, expected in enumerate([-0.3646278431, 0.3296215686, 0.5185423529]):
        np.testing.assert_allclose(planes[0, channel], expected, atol=1e-6)


def test_mean_and_scale_come_from_the_config(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (330, 340, 3), dtype=np.uint8)
    config = PreprocessConfig(mean_bgr=(1.0, 2.0, 3.0), scale=0.5)
    planes, geometry = Preprocessor(config)(image)
    crop = image[geometry.top:geometry.top + 320, geometry.left:geometry.left + 320]
    expected = (crop.transpose(2, 0, 1) - np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)) * 0.5
    np.testing.assert_allclose(planes[0], expected, atol=1e-6)


def test_non_square_input_size() -> None:
    config = PreprocessConfig(input_height=64, input_width=96)
    image = coordinate_image(100, 101)
    planes, geometry = Preprocessor(config)(image)
    assert planes.shape == (1, 3, 64, 96)
    assert (geometry.top, geometry.left) == (18, 2)
    rows, cols = decode_coordinates(planes_to_bgr(planes, config))
    assert (rows[0, 0], cols[0, 0], rows[-1, -1], cols[-1, -1]) == (18, 2, 81, 97)


def test_pad_policy_fills_outside_the_image_with_zeros() -> None:
    image = coordinate_image(150, 200)
    planes, geometry = Preprocessor(PUBLISHED)(image)
    assert (geometry.top, geometry.left, geometry.scale) == (-85, -60, 1.0)
    inside = (slice(None), slice(85, 235), slice(60, 260))
    outside = np.ones((320, 320), dtype=bool)
    outside[inside[1:]] = False
    assert np.all(planes[0][:, outside] == 0.0)
    rows, cols = decode_coordinates(planes_to_bgr(planes[:, inside[0], inside[1], inside[2]]))
    np.testing.assert_array_equal(rows, np.mgrid[0:150, 0:200][0])
    np.testing.assert_array_equal(cols, np.mgrid[0:150, 0:200][1])


def test_pad_policy_on_one_axis_only() -> None:
    image = coordinate_image(200, 641)
    planes, geometry = Preprocessor(PUBLISHED)(image)
    assert (geometry.top, geometry.left) == (-60, 160)
    assert np.all(planes[0, :, :60] == 0.0) and np.all(planes[0, :, 260:] == 0.0)
    rows, cols = decode_coordinates(planes_to_bgr(planes[:, :, 60:260]))
    assert (rows[0, 0], cols[0, 0], rows[-1, -1], cols[-1, -1]) == (0, 160, 199, 479)


def test_crop_bgr_pads_with_the_rounded_mean_colour() -> None:
    image = coordinate_image(150, 200)
    crop, geometry = crop_bgr(image, PUBLISHED)
    assert crop.shape == (320, 320, 3) and crop.dtype == np.uint8 and crop.flags.c_contiguous
    np.testing.assert_array_equal(crop[0, 0], (103, 116, 123))
    np.testing.assert_array_equal(crop[319, 319], (103, 116, 123))
    np.testing.assert_array_equal(crop[85:235, 60:260], image)
    assert geometry == crop_geometry(150, 200, PUBLISHED)


def test_crop_bgr_matches_the_planes(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (481, 641, 3), dtype=np.uint8)
    crop, crop_location = crop_bgr(image, PUBLISHED)
    planes, planes_geometry = Preprocessor(PUBLISHED)(image)
    assert crop_location == planes_geometry
    np.testing.assert_array_equal(planes_to_bgr(planes), crop)
    assert not np.shares_memory(crop, image)


def test_resize_policy_scales_up_uniformly_and_maps_the_centre_back() -> None:
    config = PreprocessConfig(small_image_policy="resize")
    geometry = crop_geometry(100, 120, config)
    assert geometry.scale == pytest.approx(3.2)  # max(320 / 100, 320 / 120)
    assert (geometry.top, geometry.left) == (0, 32)  # resized to 320 x 384
    centre = geometry.to_image(159.5, 159.5)
    assert centre == pytest.approx((49.5, 59.5))  # ((100 - 1) / 2, (120 - 1) / 2)


def test_resize_policy_geometry_points_at_the_pixels_that_were_resampled() -> None:
    """On a linear ramp, each crop pixel's value tells where in the original it came from.

    The tolerance allows rounding to uint8 plus OpenCV's fixed-point weights; mapping pixel
    corners instead of centres would be off by 0.34 px here, i.e. 0.69 in value on average.
    """
    rows, cols = np.mgrid[0:100, 0:120]
    ramp = np.stack([rows * 2, cols * 2, np.zeros_like(rows)], axis=2).astype(np.uint8)
    crop, geometry = crop_bgr(ramp, PreprocessConfig(small_image_policy="resize"))
    crop_rows, crop_cols = np.mgrid[0:320, 0:320]
    image_rows, image_cols = geometry.to_image(crop_rows, crop_cols)
    interior = (image_rows > 1) & (image_rows < 98) & (image_cols > 1) & (image_cols < 118)
    for channel, coordinate in ((0, image_rows), (1, image_cols)):
        error = crop[..., channel][interior] - 2 * coordinate[interior]
        assert np.abs(error).max() <= 0.75
        assert abs(error.mean()) < 0.25


def test_resize_policy_fills_the_whole_input() -> None:
    image = np.full((150, 200, 3), 77, dtype=np.uint8)
    planes, geometry = Preprocessor(PreprocessConfig(small_image_policy="resize"))(image)
    assert geometry.scale == pytest.approx(320 / 150)
    np.testing.assert_allclose(planes[0, 0], (77 - 102.9801) / 255, atol=1e-6)


def test_reject_policy_names_the_sizes_and_the_alternatives() -> None:
    config = PreprocessConfig(small_image_policy="reject")
    with pytest.raises(PreprocessingError) as caught:
        Preprocessor(config)(np.zeros((150, 200, 3), dtype=np.uint8))
    message = str(caught.value)
    assert "image is 200x150 but the model input is 320x320" in message
    assert "'pad'" in message and "'resize'" in message


@pytest.mark.parametrize("policy", SMALL_IMAGE_POLICIES)
def test_large_enough_images_ignore_the_policy(policy: str, rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (320, 641, 3), dtype=np.uint8)
    config = PreprocessConfig(small_image_policy=policy)
    planes, geometry = Preprocessor(config)(image)
    published_planes, published_geometry = Preprocessor(PUBLISHED)(image)
    assert geometry == published_geometry
    np.testing.assert_array_equal(planes, published_planes)


def test_geometry_maps_the_published_sample_result_to_the_original_image() -> None:
    """The author's sample: crop (233, 187) is (313, 347) in the 480x640 original."""
    geometry = crop_geometry(480, 640, PUBLISHED)
    assert geometry.to_image(233, 187) == (313, 347)


@pytest.mark.parametrize("scale", [1.0, 3.2, 0.75])
def test_to_image_round_trips_with_its_inverse(scale: float, rng: np.random.Generator) -> None:
    geometry = CropGeometry(top=-7, left=13, scale=scale, image_height=100, image_width=120)
    crop_points = rng.uniform(0, 320, (50, 2))
    for crop_row, crop_col in crop_points:
        row, col = geometry.to_image(crop_row, crop_col)
        back = ((row + 0.5) * scale - 0.5 - geometry.top, (col + 0.5) * scale - 0.5 - geometry.left)
        assert back == pytest.approx((crop_row, crop_col))
    assert geometry.length_to_image(32.0) == pytest.approx(32.0 / scale)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "rgba8", "mono8", "rgb16"])
def test_views_from_image_conversion_give_the_planes_of_a_contiguous_copy(
        encoding: str, rng: np.random.Generator) -> None:
    channels = {"rgb": 3, "bgra": 4, "rgba": 4, "mono": 1}[encoding.rstrip("0123456789")]
    bytes_per_pixel = channels * (2 if encoding.endswith("16") else 1)
    height, width, padding = 481, 643, 7
    step = width * bytes_per_pixel + padding
    data = array.array("B", rng.integers(0, 256, height * step, dtype=np.uint8).tobytes())
    message = SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=0,
                              step=step, data=data)
    view = image_message_to_bgr(message)
    preprocess = Preprocessor(PUBLISHED)
    view_planes, _ = preprocess(view)
    copy_planes, _ = preprocess(np.ascontiguousarray(view))
    np.testing.assert_array_equal(view_planes, copy_planes)
    view_crop, _ = crop_bgr(view, PUBLISHED)
    assert view_crop.flags.c_contiguous
    np.testing.assert_array_equal(view_crop, np.ascontiguousarray(view)[80:400, 161:481])


def test_views_are_accepted_by_the_resize_policy(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    config = PreprocessConfig(small_image_policy="resize")
    reversed_planes, _ = Preprocessor(config)(image[:, ::-1])
    copy_planes, _ = Preprocessor(config)(np.ascontiguousarray(image[:, ::-1]))
    np.testing.assert_array_equal(reversed_planes, copy_planes)


def test_each_call_returns_a_new_tensor_and_leaves_the_image_alone(
        rng: np.random.Generator) -> None:
    first_image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    untouched = first_image.copy()
    preprocess = Preprocessor(PUBLISHED)
    first, _ = preprocess(first_image)
    first_values = first.copy()
    second, _ = preprocess(np.zeros((480, 640, 3), dtype=np.uint8))
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, first_values)
    np.testing.assert_array_equal(first_image, untouched)


@pytest.mark.parametrize("image", [
    np.zeros((480, 640), dtype=np.uint8),
    np.zeros((480, 640, 4), dtype=np.uint8),
    np.zeros((480, 640, 3), dtype=np.float32),
    [[[0, 0, 0]]],
])
def test_images_that_are_not_bgr_uint8_are_rejected(image) -> None:
    with pytest.raises(PreprocessingError, match=r"expected an \(H, W, 3\) uint8 BGR image"):
        Preprocessor(PUBLISHED)(image)


def test_empty_image_is_rejected() -> None:
    with pytest.raises(PreprocessingError, match="has no pixels"):
        crop_bgr(np.zeros((0, 640, 3), dtype=np.uint8), PUBLISHED)


@pytest.mark.parametrize("settings, field", [
    ({"input_height": 0}, "input_height"),
    ({"input_width": -320}, "input_width"),
    ({"input_width": 320.0}, "input_width"),
    ({"input_height": True}, "input_height"),
    ({"mean_bgr": (1.0, 2.0)}, "mean_bgr"),
    ({"mean_bgr": (1.0, float("nan"), 3.0)}, "mean_bgr"),
    ({"scale": 0.0}, "scale"),
    ({"scale": float("inf")}, "scale"),
    ({"small_image_policy": "crop"}, "small_image_policy"),
])
def test_invalid_config_names_the_field(settings: dict, field: str) -> None:
    with pytest.raises(PreprocessingError, match=field):
        PreprocessConfig(**settings)


def test_config_stores_the_mean_as_a_tuple_of_floats() -> None:
    config = PreprocessConfig(mean_bgr=[100, np.float32(110.5), 120])
    assert config.mean_bgr == (100.0, 110.5, 120.0)
    assert hash(config) == hash(PreprocessConfig(mean_bgr=(100.0, 110.5, 120.0)))


def test_sample_txt_layout(tmp_path, rng: np.random.Generator) -> None:
    crop = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)
    path = tmp_path / "sample.txt"
    write_sample_txt(crop, path)
    text = path.read_text(encoding="ascii")
    lines = text.split("\n")
    assert text.endswith("\n") and lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == 960
    assert lines[0] == " ".join(str(value) for value in crop[0, :, 0])
    assert lines[319] == " ".join(str(value) for value in crop[319, :, 0])
    assert lines[320] == " ".join(str(value) for value in crop[0, :, 1])
    assert lines[959] == " ".join(str(value) for value in crop[319, :, 2])
    np.testing.assert_array_equal(read_sample_txt(path), crop)


def test_sample_txt_round_trip_of_a_small_crop(tmp_path, rng: np.random.Generator) -> None:
    crop = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "small.txt"
    write_sample_txt(crop, str(path))
    restored = read_sample_txt(str(path), height=5, width=7)
    assert restored.dtype == np.uint8 and restored.flags.c_contiguous
    np.testing.assert_array_equal(restored, crop)


def test_reading_a_sample_txt_of_the_wrong_size_says_what_was_expected(tmp_path) -> None:
    path = tmp_path / "small.txt"
    write_sample_txt(np.zeros((5, 7, 3), dtype=np.uint8), path)
    with pytest.raises(PreprocessingError, match="holds 15 lines of 7 values, expected 960"):
        read_sample_txt(path)


@pytest.mark.parametrize("content, problem", [
    ("1 2\n3\n4 5\n", "equal-length lines"),
    ("1 2\n3 4\n5 256\n", "outside 0..255"),
])
def test_reading_a_malformed_sample_txt_is_rejected(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="ascii")
    with pytest.raises(PreprocessingError, match=problem):
        read_sample_txt(path, height=1, width=2)
