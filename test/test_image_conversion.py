"""Tests for sgdn_ros.core.frames with real buffers laid out as ROS publishers lay them."""

from __future__ import annotations

import array
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from sgdn_ros.core.frames import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    RawImage,
    bgr_as_raw_image,
    bgr_to_image_fields,
    compressed_message_to_bgr,
    image_message_to_bgr,
    raw_image_from_message,
    raw_image_to_bgr,
)

HEIGHT, WIDTH = 7, 11


@dataclass
class ImageMessage:
    """The fields of sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: object


@dataclass
class CompressedImageMessage:
    """The fields of sensor_msgs/CompressedImage."""

    format: str
    data: object


def raw_message(pixels: np.ndarray, encoding: str, big_endian: bool = False,
                row_padding: int = 0, padding_value: int = 0xAB) -> ImageMessage:
    """Serialise (H, W, C) pixels row by row, with optional padding bytes after each row."""
    height, width = pixels.shape[:2]
    dtype = np.dtype(pixels.dtype).newbyteorder(">" if big_endian else "<")
    rows = pixels.reshape(height, -1).astype(dtype).view(np.uint8)
    padding = np.full((height, row_padding), padding_value, dtype=np.uint8)
    padded = np.concatenate([rows, padding], axis=1)
    return ImageMessage(height, width, encoding, int(big_endian), padded.shape[1],
                        array.array("B", padded.tobytes()))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def bgr(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def channel_letters(encoding: str) -> str:
    """'rgba16' -> 'rgba', 'mono8' -> 'mono'."""
    return encoding.rstrip("0123456789")


def in_encoding_order(bgr: np.ndarray, encoding: str, alpha: np.ndarray) -> np.ndarray:
    """Rearrange BGR pixels into the channel order an encoding stores."""
    colour = bgr[..., ::-1] if encoding.startswith("rgb") else bgr
    if channel_letters(encoding) in ("bgra", "rgba"):
        return np.concatenate([colour, alpha[..., None]], axis=2)
    return colour


def test_supported_encodings_cover_colour_and_mono_in_8_and_16_bits() -> None:
    expected = {"bgr8", "rgb8", "bgra8", "rgba8", "mono8",
                "bgr16", "rgb16", "bgra16", "rgba16", "mono16"}
    assert expected <= set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8"])
def test_8_bit_colour_encodings_give_bgr(encoding: str, bgr: np.ndarray,
                                         rng: np.random.Generator) -> None:
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    message = raw_message(in_encoding_order(bgr, encoding, alpha), encoding)
    result = image_message_to_bgr(message)
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, bgr)


def test_mono8_gives_grey_in_all_three_channels(rng: np.random.Generator) -> None:
    grey = rng.integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)
    result = image_message_to_bgr(raw_message(grey, "mono8"))
    assert result.shape == (HEIGHT, WIDTH, 3)
    for channel in range(3):
        np.testing.assert_array_equal(result[..., channel], grey[..., 0])


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("encoding", ["bgr16", "rgb16", "bgra16", "rgba16"])
def test_16_bit_colour_encodings_keep_the_high_byte(encoding: str, big_endian: bool,
                                                    rng: np.random.Generator) -> None:
    bgr16 = rng.integers(0, 65536, (HEIGHT, WIDTH, 3), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    message = raw_message(in_encoding_order(bgr16, encoding, alpha), encoding, big_endian)
    result = image_message_to_bgr(message)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, (bgr16 >> 8).astype(np.uint8))


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_honours_byte_order(big_endian: bool, rng: np.random.Generator) -> None:
    grey16 = rng.integers(0, 65536, (HEIGHT, WIDTH, 1), dtype=np.uint16)
    result = image_message_to_bgr(raw_message(grey16, "mono16", big_endian))
    expected = np.repeat((grey16 >> 8).astype(np.uint8), 3, axis=2)
    np.testing.assert_array_equal(result, expected)


def test_16_bit_byte_order_matters() -> None:
    """0x1234 read with the wrong byte order would give 0x34, not 0x12."""
    pixels = np.full((2, 3, 1), 0x1234, dtype=np.uint16)
    little = image_message_to_bgr(raw_message(pixels, "mono16", big_endian=False))
    big = image_message_to_bgr(raw_message(pixels, "mono16", big_endian=True))
    assert np.all(little == 0x12) and np.all(big == 0x12)


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8", "rgb16"])
def test_row_padding_is_skipped(encoding: str, rng: np.random.Generator) -> None:
    channels = 1 if encoding.startswith("mono") else len(channel_letters(encoding))
    dtype = np.uint16 if encoding.endswith("16") else np.uint8
    below_padding_value = 0xFF if dtype == np.uint8 else 0xFF00
    pixels = rng.integers(0, below_padding_value, (HEIGHT, WIDTH, channels)).astype(dtype)
    plain = image_message_to_bgr(raw_message(pixels, encoding))
    padded_message = raw_message(pixels, encoding, row_padding=5, padding_value=0xFF)
    assert padded_message.step > WIDTH * channels * dtype().itemsize
    padded = image_message_to_bgr(padded_message)
    np.testing.assert_array_equal(padded, plain)
    assert not np.any(padded == 0xFF)


def test_bgr8_is_a_zero_copy_view_of_the_message_data(bgr: np.ndarray) -> None:
    data = bytearray(bgr.tobytes())
    message = ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3, data)
    result = image_message_to_bgr(message)
    assert np.shares_memory(result, np.frombuffer(data, dtype=np.uint8))
    data[0] = (int(bgr[0, 0, 0]) + 1) % 256
    assert result[0, 0, 0] == data[0]


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "rgba8", "mono8"])
def test_other_8_bit_encodings_are_views_too(encoding: str, bgr: np.ndarray,
                                             rng: np.random.Generator) -> None:
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    source = bgr[..., :1] if encoding == "mono8" else in_encoding_order(bgr, encoding, alpha)
    message = raw_message(source, encoding)
    result = image_message_to_bgr(message)
    assert np.shares_memory(result, np.frombuffer(message.data, dtype=np.uint8))


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview,
                                       lambda raw: array.array("B", raw),
                                       lambda raw: np.frombuffer(raw, dtype=np.uint8)])
def test_every_data_container_gives_the_same_image(container, bgr: np.ndarray) -> None:
    message = ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3, container(bgr.tobytes()))
    np.testing.assert_array_equal(image_message_to_bgr(message), bgr)


def test_data_longer_than_height_times_step_is_accepted(bgr: np.ndarray) -> None:
    data = bgr.tobytes() + bytes(100)
    message = ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3, data)
    np.testing.assert_array_equal(image_message_to_bgr(message), bgr)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "bayer_rggb8", "BGR8"])
def test_unsupported_encoding_names_the_supported_ones(encoding: str) -> None:
    message = ImageMessage(2, 2, encoding, 0, 8, bytes(16))
    with pytest.raises(ImageConversionError) as caught:
        image_message_to_bgr(message)
    text = str(caught.value)
    assert repr(encoding) in text
    assert "bgr8" in text and "mono16" in text
    assert "Depth images" in text


@pytest.mark.parametrize("height, width", [(0, 4), (4, 0)])
def test_empty_image_is_rejected(height: int, width: int) -> None:
    message = ImageMessage(height, width, "bgr8", 0, width * 3, b"")
    with pytest.raises(ImageConversionError, match="no pixels"):
        image_message_to_bgr(message)


def test_step_smaller_than_a_row_is_rejected() -> None:
    message = ImageMessage(2, 4, "rgba8", 0, 12, bytes(32))
    with pytest.raises(ImageConversionError, match=r"step 12 is smaller than .* = 16"):
        image_message_to_bgr(message)


def test_truncated_data_is_rejected(bgr: np.ndarray) -> None:
    data = bgr.tobytes()[:-1]
    message = ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3, data)
    with pytest.raises(ImageConversionError, match="truncated"):
        image_message_to_bgr(message)


def test_data_that_is_not_bytes_is_rejected() -> None:
    wrong_type = ImageMessage(1, 1, "bgr8", 0, 3, np.zeros(3, dtype=np.float32))
    with pytest.raises(ImageConversionError, match="uint8"):
        image_message_to_bgr(wrong_type)
    no_buffer = ImageMessage(1, 1, "bgr8", 0, 3, "abc")
    with pytest.raises(ImageConversionError, match="not a byte buffer"):
        image_message_to_bgr(no_buffer)


def smooth_bgr(height: int = 48, width: int = 64) -> np.ndarray:
    """A gradient image: JPEG keeps it close, unlike random noise."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 4, cols * 3, (rows + cols) * 2], axis=2).astype(np.uint8)


def encoded(image: np.ndarray, extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("image_format", ["png", "bgr8; png compressed bgr8"])
def test_png_round_trip_is_exact(image_format: str, bgr: np.ndarray) -> None:
    message = CompressedImageMessage(image_format, encoded(bgr, ".png"))
    np.testing.assert_array_equal(compressed_message_to_bgr(message), bgr)


@pytest.mark.parametrize("image_format",
                         ["jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8"])
def test_jpeg_round_trip_is_close(image_format: str) -> None:
    image = smooth_bgr()
    message = CompressedImageMessage(image_format, array.array("B", encoded(image, ".jpg")))
    result = compressed_message_to_bgr(message)
    assert result.shape == image.shape and result.dtype == np.uint8
    difference = np.abs(result.astype(np.int16) - image.astype(np.int16))
    assert difference.mean() < 3.0


def test_grey_png_becomes_three_equal_channels(rng: np.random.Generator) -> None:
    grey = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    result = compressed_message_to_bgr(CompressedImageMessage("png", encoded(grey, ".png")))
    assert result.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(result, np.repeat(grey[..., None], 3, axis=2))


def test_png_with_alpha_drops_the_alpha(bgr: np.ndarray, rng: np.random.Generator) -> None:
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)
    bgra = np.concatenate([bgr, alpha], axis=2)
    result = compressed_message_to_bgr(CompressedImageMessage("png", encoded(bgra, ".png")))
    np.testing.assert_array_equal(result, bgr)


def test_empty_compressed_data_is_rejected() -> None:
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_message_to_bgr(CompressedImageMessage("jpeg", b""))


def test_undecodable_compressed_data_is_rejected(rng: np.random.Generator) -> None:
    garbage = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    with pytest.raises(ImageConversionError, match="could not decode the 500 bytes .* JPEG/PNG"):
        compressed_message_to_bgr(CompressedImageMessage("jpeg", garbage))


def test_compressed_depth_is_rejected(rng: np.random.Generator) -> None:
    depth = rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    message = CompressedImageMessage("16UC1; compressedDepth png", encoded(depth, ".png"))
    with pytest.raises(ImageConversionError, match="depth image, not a colour image"):
        compressed_message_to_bgr(message)


def test_image_fields_round_trip_through_a_message(bgr: np.ndarray) -> None:
    height, width, encoding, is_bigendian, step, data = bgr_to_image_fields(bgr)
    assert (height, width, encoding, is_bigendian, step) == (HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3)
    assert isinstance(data, bytes) and len(data) == height * step
    message = ImageMessage(height, width, encoding, is_bigendian, step, data)
    np.testing.assert_array_equal(image_message_to_bgr(message), bgr)


def test_image_fields_of_a_strided_view_are_packed_rows(bgr: np.ndarray) -> None:
    """A reversed, cropped view must still be published as plain packed bgr8 rows."""
    view = bgr[1:-1, 2:-2, ::-1]
    height, width, _, _, step, data = bgr_to_image_fields(view)
    assert step == width * 3
    unpacked = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    np.testing.assert_array_equal(unpacked, view)


@pytest.mark.parametrize("array_", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                    np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_image_fields_reject_arrays_that_are_not_bgr(array_: np.ndarray) -> None:
    with pytest.raises(ImageConversionError):
        bgr_to_image_fields(array_)


@pytest.mark.parametrize("container", [bytearray, lambda raw: array.array("B", raw),
                                       lambda raw: np.frombuffer(bytearray(raw), np.uint8)])
def test_raw_image_is_a_zero_copy_view_of_the_message_data(container, bgr: np.ndarray) -> None:
    message = raw_message(bgr[..., ::-1], "rgb8", big_endian=True, row_padding=3)
    message.data = container(bytes(message.data))
    raw = raw_image_from_message(message)
    assert isinstance(raw, RawImage)
    assert (raw.height, raw.width, raw.step, raw.encoding, raw.is_bigendian) == (
        HEIGHT, WIDTH, WIDTH * 3 + 3, "rgb8", True)
    assert raw.data.dtype == np.uint8 and raw.data.ndim == 1
    message_bytes = np.frombuffer(message.data, dtype=np.uint8)
    assert np.shares_memory(raw.data, message_bytes)
    assert raw.data.size == message_bytes.size
    np.testing.assert_array_equal(raw_image_to_bgr(raw), bgr)


def bad_messages() -> dict[str, ImageMessage]:
    """Messages each broken in one field, as publishers get them wrong."""
    good = bytes(HEIGHT * WIDTH * 3)
    return {
        "truncated": ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3, good[:-1]),
        "zero height": ImageMessage(0, WIDTH, "bgr8", 0, WIDTH * 3, b""),
        "zero width": ImageMessage(HEIGHT, 0, "bgr8", 0, 0, b""),
        "step too small": ImageMessage(HEIGHT, WIDTH, "bgr8", 0, WIDTH * 3 - 1, good),
        "unknown encoding": ImageMessage(HEIGHT, WIDTH, "yuv422", 0, WIDTH * 2, good),
    }


EXPECTED_PROBLEM = {
    "truncated": f"truncated: {HEIGHT * WIDTH * 3 - 1} bytes, but height x step",
    "zero height": "no pixels (height 0",
    "zero width": "no pixels (height 7, width 0)",
    "step too small": f"step {WIDTH * 3 - 1} is smaller than width x bytes per pixel",
    "unknown encoding": "unsupported image encoding 'yuv422'; supported: bgr8",
}


@pytest.mark.parametrize("problem", sorted(EXPECTED_PROBLEM))
def test_raw_image_rejects_what_image_message_to_bgr_rejects(problem: str) -> None:
    message = bad_messages()[problem]
    with pytest.raises(ImageConversionError) as from_raw:
        raw_image_from_message(message)
    with pytest.raises(ImageConversionError) as from_bgr:
        image_message_to_bgr(message)
    assert str(from_raw.value) == str(from_bgr.value)
    assert EXPECTED_PROBLEM[problem] in str(from_raw.value)


@pytest.mark.parametrize("view", ["contiguous", "reversed", "cropped"])
def test_bgr_as_raw_image_round_trips(view: str, bgr: np.ndarray) -> None:
    image = {"contiguous": bgr, "reversed": bgr[..., ::-1], "cropped": bgr[1:-2, 3:]}[view]
    raw = bgr_as_raw_image(image)
    height, width = image.shape[:2]
    assert (raw.height, raw.width, raw.step, raw.encoding, raw.is_bigendian) == (
        height, width, width * 3, "bgr8", False)
    assert raw.data.size == height * width * 3
    np.testing.assert_array_equal(raw_image_to_bgr(raw), image)
    # Only an array that is not already packed rows is copied.
    assert np.shares_memory(raw.data, bgr) == (view == "contiguous")


@pytest.mark.parametrize("image", [np.zeros((HEIGHT, WIDTH, 3), np.float32),
                                   np.zeros((HEIGHT, WIDTH), np.uint8),
                                   np.zeros((HEIGHT, WIDTH, 4), np.uint8)],
                         ids=["float32", "2-D", "4 channels"])
def test_bgr_as_raw_image_refuses_what_is_not_bgr8(image: np.ndarray) -> None:
    with pytest.raises(ImageConversionError) as raised:
        bgr_as_raw_image(image)
    message = str(raised.value)
    assert "expected an (H, W, 3) uint8 BGR image" in message
    assert f"shape {image.shape} dtype {image.dtype}" in message
    assert "convert the image to bgr8" in message
