"""Depth messages to metres, and hole filling, on real NumPy/OpenCV arrays."""

from __future__ import annotations

import array
import time

import cv2
import numpy as np
import pytest

from sgdn_ros.core.depth import DEPTH_ENCODINGS, DepthImageError, depth_to_metres, fill_depth_holes


def test_the_depth_encodings_are_millimetres_and_metres():
    assert DEPTH_ENCODINGS == ("16UC1", "32FC1")


def test_16uc1_millimetres_become_metres_and_zeros_become_holes():
    millimetres = np.array([[600, 0, 1234], [65535, 1, 560]], dtype="<u2")
    metres = depth_to_metres(millimetres.tobytes(), 2, 3, 6, "16UC1")
    assert metres.dtype == np.float32 and metres.shape == (2, 3)
    expected = np.array([[0.6, np.nan, 1.234], [65.535, 0.001, 0.56]], dtype=np.float32)
    np.testing.assert_allclose(metres, expected, rtol=1e-6, equal_nan=True)


def test_32fc1_metres_with_every_kind_of_hole():
    values = np.array([[0.6, 0.0, np.nan], [np.inf, -0.5, 2.5]], dtype="<f4")
    metres = depth_to_metres(values.tobytes(), 2, 3, 12, "32FC1")
    expected = np.array([[0.6, np.nan, np.nan], [np.nan, np.nan, 2.5]], dtype=np.float32)
    np.testing.assert_array_equal(metres, expected)


def test_depth_scale_overrides_the_unit_of_the_encoding():
    tenths_of_millimetres = np.array([[6000, 0]], dtype="<u2")
    metres = depth_to_metres(tenths_of_millimetres.tobytes(), 1, 2, 4, "16UC1",
                             depth_scale=0.0001)
    np.testing.assert_allclose(metres, [[0.6, np.nan]], rtol=1e-6)
    centimetres = np.array([[60.0]], dtype="<f4")
    np.testing.assert_allclose(
        depth_to_metres(centimetres.tobytes(), 1, 1, 4, "32FC1", depth_scale=0.01), [[0.6]],
        rtol=1e-6)


@pytest.mark.parametrize("encoding, dtype", [("16UC1", ">u2"), ("32FC1", ">f4")])
def test_big_endian_data_reads_the_same(encoding, dtype):
    raw = np.array([[600, 0], [560, 1000]], dtype=dtype)
    if encoding == "32FC1":
        raw = (raw / 1000).astype(dtype)
    metres = depth_to_metres(raw.tobytes(), 2, 2, 2 * raw.itemsize, encoding,
                             is_bigendian=True)
    np.testing.assert_allclose(metres, [[0.6, np.nan], [0.56, 1.0]], rtol=1e-6)


def test_padded_rows_are_skipped():
    millimetres = np.arange(1, 13, dtype="<u2").reshape(3, 4)
    padded = np.full((3, 6), 0xFFFF, dtype="<u2")  # 4 bytes of padding per row
    padded[:, :4] = millimetres
    metres = depth_to_metres(padded.tobytes(), 3, 4, 12, "16UC1")
    np.testing.assert_allclose(metres, millimetres / 1000, rtol=1e-6)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda raw: array.array("B", raw),
                                  lambda raw: np.frombuffer(raw, np.uint8)])
def test_every_byte_buffer_of_a_message_is_accepted(wrap):
    raw = np.array([[560, 600]], dtype="<u2").tobytes()
    np.testing.assert_allclose(depth_to_metres(wrap(raw), 1, 2, 4, "16UC1"), [[0.56, 0.6]],
                               rtol=1e-6)


def test_the_message_buffer_is_not_modified():
    raw = bytearray(np.array([[0, 600]], dtype="<u2").tobytes())
    before = bytes(raw)
    depth_to_metres(raw, 1, 2, 4, "16UC1")
    assert bytes(raw) == before


@pytest.mark.parametrize("arguments, message", [
    ((b"\0" * 12, 2, 2, 6, "rgb8"),
     "depth image encoding 'rgb8' is not a depth encoding; publish 16UC1 (millimetres) or "
     "32FC1 (metres)"),
    ((b"\0" * 12, 2, 2, 3, "16UC1"), "step 3 is smaller than width x bytes per pixel = 2 x 2"),
    ((b"\0" * 10, 2, 2, 8, "32FC1"), "truncated: 10 bytes, but height x step = 2 x 8 = 16"),
    ((b"", 0, 2, 4, "16UC1"), "no pixels (height 0, width 2)"),
    ((b"\0" * 4, 1, 0, 4, "16UC1"), "no pixels (height 1, width 0)"),
    ((np.zeros(4, np.uint16), 1, 2, 4, "16UC1"), "data is a uint16 array"),
    (([0, 0, 0, 0], 1, 2, 4, "16UC1"), "data of type list is not a byte buffer"),
])
def test_malformed_messages_say_what_is_wrong(arguments, message):
    with pytest.raises(DepthImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        depth_to_metres(*arguments)


@pytest.mark.parametrize("scale", [-0.001, float("nan"), float("inf"), True])
def test_a_bad_depth_scale_is_refused(scale):
    with pytest.raises(DepthImageError, match="depth_scale must be finite and >= 0"):
        depth_to_metres(b"\0\0", 1, 1, 2, "16UC1", depth_scale=scale)


def smooth_surface(height: int = 480, width: int = 640) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    tilt = 0.6 + 0.0002 * (cols - width / 2) + 0.0001 * (rows - height / 2)
    waves = 0.02 * np.sin(cols / 80) * np.cos(rows / 60)
    return (tilt + waves).astype(np.float32)


def blob_holes(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    """Round holes of 2 to 11 px radius, as a depth camera leaves on edges and shiny spots."""
    generator = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    while mask.mean() < fraction:
        centre = (int(generator.integers(0, shape[1])), int(generator.integers(0, shape[0])))
        cv2.circle(mask, centre, int(generator.integers(2, 12)), 1, -1)
    return mask.astype(bool)


def test_filled_holes_follow_a_smooth_surface_and_valid_pixels_are_unchanged():
    truth = smooth_surface()
    holes = blob_holes(truth.shape, 0.05)
    corner = np.zeros_like(holes)
    corner[:6, :40] = True  # reached from two sides only: extrapolated, so less exact
    depth = truth.copy()
    depth[holes | corner] = np.nan
    filled = fill_depth_holes(depth)
    assert filled.dtype == np.float32 and not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~(holes | corner)], truth[~(holes | corner)])
    error = np.abs(filled - truth)
    assert error[holes & ~corner].max() < 0.0015
    assert error[holes].mean() < 0.0005
    assert error[corner].max() < 0.003
    assert np.isnan(depth[holes]).all()  # the input is left alone


def test_hole_filling_is_fast_for_a_640x480_frame():
    depth = smooth_surface()
    depth[blob_holes(depth.shape, 0.05)] = np.nan
    fill_depth_holes(depth)
    durations = []
    for _ in range(10):
        started = time.perf_counter()
        fill_depth_holes(depth)
        durations.append(time.perf_counter() - started)
    assert sorted(durations)[len(durations) // 2] < 0.02  # ~2-3 ms here; generous for CI


def test_a_hole_over_a_step_takes_values_from_both_sides():
    depth = np.full((40, 60), 0.6, np.float32)
    depth[:, 30:] = 0.5
    depth[15:25, 25:35] = np.nan
    filled = fill_depth_holes(depth)
    assert ((filled[15:25, 25:35] >= 0.5) & (filled[15:25, 25:35] <= 0.6)).all()


@pytest.mark.parametrize("shape", [(1, 7), (7, 1), (3, 5)])
def test_tiny_images_are_filled(shape):
    depth = np.full(shape, 0.5, np.float32)
    depth.flat[0] = np.nan
    np.testing.assert_allclose(fill_depth_holes(depth), np.full(shape, 0.5), rtol=1e-6)


def test_images_without_holes_or_without_depth_are_copied():
    complete = smooth_surface(20, 30)
    copied = fill_depth_holes(complete)
    assert copied is not complete
    np.testing.assert_array_equal(copied, complete)
    empty = np.full((4, 4), np.nan, np.float32)
    assert np.isnan(fill_depth_holes(empty)).all()


@pytest.mark.parametrize("bad", [np.zeros(5, np.float32), np.zeros((0, 4), np.float32), [[1.0]]])
def test_filling_needs_a_two_dimensional_image(bad):
    with pytest.raises(DepthImageError, match=r"expected a non-empty \(H, W\) depth image"):
        fill_depth_holes(bad)
