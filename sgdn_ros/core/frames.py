"""Turn sensor_msgs images into BGR arrays (and back) without importing ROS.

Messages are duck-typed: anything with the fields of ``sensor_msgs/Image`` or
``sensor_msgs/CompressedImage`` works, so this module is testable with plain containers.
Raw images are returned as views over the message buffer wherever the layout allows: the
preprocessor copies only the network's crop, so copying whole frames here would be wasted work.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class ImageConversionError(ValueError):
    """An image message that cannot be turned into a BGR array."""


@dataclass(frozen=True)
class PixelLayout:
    """How one raw encoding stores a pixel, and which of its channels are B, G, R."""

    channels: int
    bytes_per_channel: int
    bgr_channels: slice


_BGR_ORDER = slice(0, 3)
_REVERSED_TO_BGR = slice(2, None, -1)
_GRAY = slice(0, 1)

_LAYOUTS = {
    "bgr8": PixelLayout(3, 1, _BGR_ORDER),
    "rgb8": PixelLayout(3, 1, _REVERSED_TO_BGR),
    "bgra8": PixelLayout(4, 1, _BGR_ORDER),
    "rgba8": PixelLayout(4, 1, _REVERSED_TO_BGR),
    "mono8": PixelLayout(1, 1, _GRAY),
    "bgr16": PixelLayout(3, 2, _BGR_ORDER),
    "rgb16": PixelLayout(3, 2, _REVERSED_TO_BGR),
    "bgra16": PixelLayout(4, 2, _BGR_ORDER),
    "rgba16": PixelLayout(4, 2, _REVERSED_TO_BGR),
    "mono16": PixelLayout(1, 2, _GRAY),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)


@dataclass(frozen=True)
class RawImage:
    """A raw camera frame with its bytes as received, checked when it is made.

    Both pre-processing paths start here: the CPU path views it as BGR (``raw_image_to_bgr``),
    the GPU path uploads ``data`` as it is and converts on the device. Making one raises
    ``ImageConversionError`` saying what is wrong (encoding, size, step, data) and where to
    fix it; ``data`` becomes a flat uint8 view of the buffer, no copy.
    """

    data: np.ndarray  # flat uint8, at least height x step bytes
    height: int
    width: int
    step: int
    encoding: str
    is_bigendian: bool = False

    def __post_init__(self) -> None:
        raw = byte_view(self.data)
        problem = raw_image_problem(self.height, self.width, self.step, self.encoding, raw.size)
        if problem is not None:
            raise ImageConversionError(problem)
        object.__setattr__(self, "data", raw)

    @property
    def layout(self) -> PixelLayout:
        return pixel_layout(self.encoding)


def pixel_layout(encoding: str) -> PixelLayout:
    """How ``encoding`` stores a pixel; ``ImageConversionError`` for one the node cannot read."""
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageConversionError(_unsupported_encoding(encoding))
    return layout


def raw_image_problem(height: int, width: int, step: int, encoding: str,
                      size: int) -> str | None:
    """What is wrong with a raw frame (encoding, size, step, or ``size`` bytes of data too few
    for them), saying where to fix it; None for a frame ``RawImage`` accepts. Reads no pixel:
    cheap enough for a subscription callback to refuse a bad frame before it queues."""
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        return _unsupported_encoding(encoding)
    if height <= 0 or width <= 0:
        return (f"image message has no pixels (height {height}, width {width}); the publisher "
                "sent an empty frame, check the camera driver")
    bytes_per_pixel = layout.channels * layout.bytes_per_channel
    if step < width * bytes_per_pixel:
        return (f"image message step {step} is smaller than width x bytes per pixel = {width} x "
                f"{bytes_per_pixel} = {width * bytes_per_pixel} for {encoding!r}; the publisher "
                "filled step or encoding wrongly, step must be the number of bytes per row")
    if size < height * step:
        return (f"image message data is truncated: {size} bytes, but height x step = "
                f"{height} x {step} = {height * step}; the publisher sent an incomplete frame, "
                "check its height, step and data fields")
    return None


def compressed_image_problem(image_format: str, size: int) -> str | None:
    """What makes a compressed image of ``size`` bytes in ``image_format`` unusable before
    decoding it (a depth image, no data), or None; the decoder finds the rest."""
    if "compresseddepth" in image_format.lower():
        return (f"compressed image format {image_format!r} is a compressed depth image, not a "
                "colour image; subscribe to the colour camera's compressed topic instead")
    if size == 0:
        return (f"compressed image message (format {image_format!r}) has no data; the publisher "
                "sent an empty frame, check the camera driver")
    return None


def raw_image_from_message(message) -> RawImage:
    """A ``sensor_msgs/Image`` as a checked ``RawImage`` viewing its data without copying."""
    return RawImage(message.data, int(message.height), int(message.width), int(message.step),
                    message.encoding, bool(message.is_bigendian))


def bgr_as_raw_image(bgr: np.ndarray) -> RawImage:
    """A contiguous BGR array (e.g. a decoded compressed image) as a bgr8 ``RawImage``."""
    problem = bgr_image_problem(bgr)
    if problem is not None:
        raise ImageConversionError(f"{problem}; decode or convert the image to bgr8 first")
    contiguous = np.ascontiguousarray(bgr)
    height, width = contiguous.shape[:2]
    return RawImage(contiguous.reshape(-1), height, width, width * 3, "bgr8")


def raw_image_to_bgr(image: RawImage) -> np.ndarray:
    """Return an (H, W, 3) uint8 BGR view of a raw frame.

    The result may share memory with the frame's data and may have negative or zero strides
    (rgb8 is a reversed view, mono is broadcast); call ``np.ascontiguousarray`` if you need a
    plain array. 16-bit encodings keep their most significant byte (value >> 8).
    """
    bgr = raw_image_samples(image)[..., image.layout.bgr_channels]
    if image.layout.channels == 1:
        return np.broadcast_to(bgr, (image.height, image.width, 3))
    return bgr


def raw_image_samples(image: RawImage) -> np.ndarray:
    """An (H, W, channels) uint8 view of a raw frame's samples in the encoding's own channel
    order (``layout.bgr_channels`` picks B, G, R), no copy: the preprocessor reads the crop
    from it. 16-bit encodings keep their most significant byte (value >> 8)."""
    layout = image.layout
    height, width, step = image.height, image.width, image.step
    bytes_per_pixel = layout.channels * layout.bytes_per_channel
    rows = image.data[: height * step].reshape(height, step)[:, : width * bytes_per_pixel]
    samples = rows.reshape(height, width, layout.channels, layout.bytes_per_channel)
    # value >> 8 of a 16-bit sample is its most significant byte, so select that byte:
    # the same result as shifting, with no arithmetic and no copy.
    significant_byte = 0 if image.is_bigendian or layout.bytes_per_channel == 1 else 1
    return samples[..., significant_byte]


def image_message_to_bgr(message) -> np.ndarray:
    """``raw_image_to_bgr`` of a ``sensor_msgs/Image`` (checked by ``raw_image_from_message``)."""
    return raw_image_to_bgr(raw_image_from_message(message))


def compressed_message_to_bgr(message) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) into an (H, W, 3) uint8 BGR array.

    OpenCV decodes colour as BGR whatever the original encoding named in ``format`` was, and
    grey or alpha images are converted to three channels, so ``format`` needs no parsing.
    """
    image_format = str(message.format)
    raw = byte_view(message.data)
    problem = compressed_image_problem(image_format, raw.size)
    if problem is not None:
        raise ImageConversionError(problem)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(
            f"could not decode the {raw.size} bytes of a compressed image (format "
            f"{image_format!r}) as JPEG/PNG; subscribe to a 'compressed' image_transport topic "
            "or to the raw image topic"
        )
    return bgr


def bgr_to_image_fields(bgr: np.ndarray) -> tuple[int, int, str, int, int, bytes]:
    """Return (height, width, encoding, is_bigendian, step, data) of a bgr8 ``sensor_msgs/Image``.

    ``data`` is one ``bytes`` object because filling a message's data field element by element
    from a NumPy array is very slow in rclpy.
    """
    problem = bgr_image_problem(bgr)
    if problem is not None:
        raise ImageConversionError(
            f"{problem} to publish; convert it with cv2.cvtColor / astype(np.uint8) first"
        )
    height, width = bgr.shape[:2]
    if height == 0 or width == 0:
        raise ImageConversionError(
            f"cannot publish an empty image ({height}x{width}); pass an image with pixels"
        )
    return height, width, "bgr8", 0, width * 3, bgr.tobytes()


def bgr_image_problem(array: object) -> str | None:
    """What keeps `array` from being an (H, W, 3) uint8 BGR image, or None when it is one;
    each caller adds its own advice to the message."""
    if (isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 3
            and array.shape[2] == 3):
        return None
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", type(array).__name__)
    return f"expected an (H, W, 3) uint8 BGR image, got shape {shape} dtype {dtype}"


def _unsupported_encoding(encoding: str) -> str:
    return (f"unsupported image encoding {encoding!r}; supported: "
            f"{', '.join(SUPPORTED_ENCODINGS)}. Depth images (e.g. '32FC1', '16UC1') are not "
            "colour images: subscribe to the camera's colour topic, or convert other encodings "
            "(Bayer, YUV) with image_proc")


def byte_view(data, subject: str = "image message",
              error: type[ValueError] = ImageConversionError) -> np.ndarray:
    """View message data (bytes, bytearray, array.array, memoryview, uint8 array) as flat uint8
    without copying; ``error`` (naming ``subject``) for anything else."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise error(f"{subject} data is a {data.dtype} array; it must hold uint8 bytes")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError as cause:
        raise error(
            f"{subject} data of type {type(data).__name__} is not a byte buffer; pass "
            "bytes, bytearray, array.array('B'), memoryview or a uint8 NumPy array"
        ) from cause
