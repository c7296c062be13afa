"""The published SGDN preprocessing: a centre crop of the BGR image, as normalised planes.

The author's TensorRT sample feeds the network the centre ``320x320`` crop of the camera image as
B, G, R planes normalised as ``(pixel - mean[c]) / 255``. Matching it exactly matters: the
published weights were trained on this input. Images smaller than the network input are handled
by an explicit policy instead of failing somewhere inside the backend.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from os import PathLike

import cv2
import numpy as np

from sgdn_ros.core import compiled_stages
from sgdn_ros.core.compiled_stages import contiguous_float32
from sgdn_ros.core.frames import RawImage, bgr_image_problem, raw_image_samples
from sgdn_ros.core.geometry import CropGeometry

PUBLISHED_MEAN_BGR: tuple[float, float, float] = (102.9801, 115.9465, 122.7717)
PUBLISHED_SCALE: float = 1.0 / 255.0
SMALL_IMAGE_POLICIES = ("pad", "resize", "reject")


class PreprocessingError(ValueError):
    """An image or setting the preprocessing cannot work with."""


@dataclass(frozen=True)
class PreprocessConfig:
    """What the network expects as input, and what to do with images smaller than that."""

    input_height: int = 320
    input_width: int = 320
    mean_bgr: tuple[float, float, float] = PUBLISHED_MEAN_BGR
    scale: float = PUBLISHED_SCALE
    small_image_policy: str = "pad"

    def __post_init__(self) -> None:
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if not _is_integer(value) or value <= 0:
                raise PreprocessingError(f"{name} must be a positive integer, got {value!r}")
        means = tuple(np.ravel(self.mean_bgr).tolist())
        if len(means) != 3 or not all(_is_finite_number(m) for m in means):
            raise PreprocessingError(
                f"mean_bgr must be three finite numbers (B, G, R), got {self.mean_bgr!r}"
            )
        if not _is_finite_number(self.scale) or self.scale <= 0:
            raise PreprocessingError(
                f"scale must be a finite number > 0 (the published value is 1/255), "
                f"got {self.scale!r}"
            )
        if self.small_image_policy not in SMALL_IMAGE_POLICIES:
            raise PreprocessingError(
                f"small_image_policy must be one of {', '.join(SMALL_IMAGE_POLICIES)}, "
                f"got {self.small_image_policy!r}"
            )
        object.__setattr__(self, "mean_bgr", tuple(float(m) for m in means))


def crop_geometry(image_height: int, image_width: int, config: PreprocessConfig) -> CropGeometry:
    """Place the network input in an image of the given size, following the small-image policy."""
    if image_height <= 0 or image_width <= 0:
        raise PreprocessingError(
            f"image is {image_width}x{image_height} (width x height) and has no pixels; "
            "pass a non-empty image"
        )
    scale = 1.0
    if image_height < config.input_height or image_width < config.input_width:
        if config.small_image_policy == "reject":
            raise PreprocessingError(
                f"image is {image_width}x{image_height} but the model input is "
                f"{config.input_width}x{config.input_height} (width x height); set "
                "small_image_policy to 'pad' or 'resize', or use a larger camera resolution"
            )
        if config.small_image_policy == "resize":
            scale = max(config.input_height / image_height, config.input_width / image_width)
    scaled_height, scaled_width = _scaled_size(image_height, image_width, scale)
    return CropGeometry(
        top=int((scaled_height - config.input_height) / 2),
        left=int((scaled_width - config.input_width) / 2),
        scale=scale,
        image_height=image_height,
        image_width=image_width,
    )


def crop_bgr(bgr: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, CropGeometry]:
    """Return the network's crop as a C-contiguous uint8 BGR image, and where it lies.

    Padding is the mean colour, rounded, so it is what the network sees as (nearly) zero input.
    Used for the debug heatmap and the txt export, not for inference.
    """
    require_bgr_image(bgr)
    window, target, geometry = locate_input(bgr, config)
    crop = np.empty((config.input_height, config.input_width, 3), dtype=np.uint8)
    if window.shape[:2] != crop.shape[:2]:
        crop[...] = np.round(config.mean_bgr).astype(np.uint8)
    crop[target] = window
    return crop, geometry


class Preprocessor:
    """Turns camera frames into the network's normalised input tensor.

    One read of the crop, never of the whole frame: OpenCV splits the crop's channels (views
    of raw messages in any supported encoding: no conversion to BGR first, no copy but a 16-bit
    frame's crop) and a 256-entry table per channel writes each plane. The tables hold
    ``(pixel - mean) * scale`` computed in float32 as the NumPy preprocessing it replaced
    (``sgdn_ros.core.reference_stages.reference_planes``), so the planes are the same bit for
    bit, and the GPU kernels' too.
    """

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        values = np.arange(256, dtype=np.float32)
        self._tables = np.stack([(values - np.float32(mean)) * np.float32(config.scale)
                                 for mean in config.mean_bgr])

    def __call__(self, image: RawImage | np.ndarray) -> tuple[np.ndarray, CropGeometry]:
        """Return a fresh (1, 3, H, W) float32 tensor of B, G, R planes, and the crop geometry.

        ``image`` is a raw frame or an (H, W, 3) uint8 BGR array (any strides); padding is 0.0.
        """
        planes = np.empty((1, 3, self.config.input_height, self.config.input_width),
                          dtype=np.float32)
        return planes, self.write(image, planes[0])

    def write(self, image: RawImage | np.ndarray, planes: np.ndarray) -> CropGeometry:
        """Fill ``planes``, a (3, H, W) float32 slot (e.g. one frame of a batch), and return
        the crop geometry."""
        return write_through_tables(image, self.config, self._tables, planes)[1]


def write_through_tables(image: RawImage | np.ndarray, config: PreprocessConfig,
                         tables: np.ndarray, planes: np.ndarray
                         ) -> tuple[tuple[slice, slice], CropGeometry]:
    """Write the crop of ``image`` into ``planes`` (3, H, W) float32, plane c holding
    ``tables[c][pixel]`` of the crop's channel c (B, G, R; ``tables`` (3, 256) float32); 0.0
    where the crop leaves the image. Returns the (rows, cols) of the planes the image fills,
    and the geometry. Shared by the colour models and the colour planes of RGB-D models.

    One compiled pass where the package was built with it (``compiled_stages``), else
    OpenCV's split and one lookup per plane: the same planes."""
    window, channels, target, geometry = colour_window(image, config)
    if window.shape[:2] != planes.shape[1:]:
        planes.fill(0.0)
    compiled = compiled_stages.COMPILED_STAGES
    if compiled is not None and contiguous_float32(planes, tables):
        compiled.planes_through_tables(window, channels, tables, planes, target)
        return target, geometry
    samples = cv2.split(window) if window.ndim == 3 else [window]
    for plane, channel, table in zip(planes, channels, tables):
        cv2.LUT(samples[channel], table, dst=plane[target])
    return target, geometry


def colour_window(image: RawImage | np.ndarray, config: PreprocessConfig
                  ) -> tuple[np.ndarray, tuple[int, int, int], tuple[slice, slice], CropGeometry]:
    """The crop of a frame as OpenCV reads it without copying: an (h, w, C) or (h, w) uint8
    view with positive strides and contiguous pixels, the indices of its B, G, R channels,
    the (rows, cols) of the network input it fills, and the geometry. A raw frame is read in
    its own channel order (rgb, alpha, mono: no reordered or broadcast view); only a 16-bit
    frame's crop, whose significant bytes are not adjacent, is copied."""
    if isinstance(image, RawImage):
        samples, layout = raw_image_samples(image), image.layout
        order = tuple(range(layout.channels))[layout.bgr_channels]
        channels = order * 3 if len(order) == 1 else order
    else:
        require_bgr_image(image)
        samples, channels = image, (0, 1, 2)
    window, target, geometry = locate_input(samples, config)
    if window.ndim == 3 and window.shape[2] == 1:
        window = window[..., 0]
    if not _opencv_layout(window):
        window = np.ascontiguousarray(window)
    return window, channels, target, geometry


def image_size(image: RawImage | np.ndarray) -> tuple[int, int]:
    """(height, width) of a raw frame or an image array."""
    if isinstance(image, RawImage):
        return image.height, image.width
    return image.shape[0], image.shape[1]


def planes_problem(planes: object, expected_shape: tuple[int, ...]) -> str | None:
    """What keeps ``planes`` from being the network input (float32, ``expected_shape``), or
    None; each consumer adds its own advice."""
    if isinstance(planes, np.ndarray) and planes.dtype == np.float32 \
            and planes.shape == tuple(expected_shape):
        return None
    return (f"planes must be a float32 array of shape {tuple(expected_shape)}, got "
            f"{getattr(planes, 'dtype', type(planes).__name__)} {getattr(planes, 'shape', '')}")


def write_sample_txt(crop: np.ndarray, path: str | PathLike[str]) -> None:
    """Write a crop in the published C++ sample's text format.

    One line per row, values separated by single spaces: all rows of B, then of G, then of R.
    """
    require_bgr_image(crop)
    height, width = crop.shape[:2]
    channel_rows = crop.transpose(2, 0, 1).reshape(3 * height, width)
    with open(path, "w", encoding="ascii", newline="\n") as file:
        np.savetxt(file, channel_rows, fmt="%d", delimiter=" ", newline="\n")


def read_sample_txt(path: str | PathLike[str], height: int = 320, width: int = 320) -> np.ndarray:
    """Read a crop written in the published sample's text format back as (H, W, 3) uint8 BGR."""
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise PreprocessingError(
            f"{path} is not a sample txt of whole numbers with equal-length lines: {error}"
        ) from error
    if values.shape != (3 * height, width):
        raise PreprocessingError(
            f"{path} holds {values.shape[0]} lines of {values.shape[1]} values, expected "
            f"{3 * height} lines (B, G, R planes of {height} rows) of {width}; pass the crop's "
            "height and width"
        )
    if values.min() < 0 or values.max() > 255:
        raise PreprocessingError(f"{path} has values outside 0..255; it is not a uint8 crop")
    planes = values.astype(np.uint8).reshape(3, height, width)
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def locate_input(
    image: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, tuple[slice, slice], CropGeometry]:
    """Find the part of the (possibly resized) image inside the network input.

    ``image`` is (H, W) or (H, W, C), already checked by the caller: colour and depth images of
    one size are cropped alike, so grasps map back to both the same way. Returns that image
    window as a view, the (rows, cols) of the input it fills, and the geometry.
    """
    geometry = crop_geometry(image.shape[0], image.shape[1], config)
    source = image
    if geometry.scale != 1.0:
        source = cv2.resize(np.ascontiguousarray(image), None, fx=geometry.scale,
                            fy=geometry.scale, interpolation=cv2.INTER_LINEAR)
    source_rows, target_rows = _overlap(geometry.top, source.shape[0], config.input_height)
    source_cols, target_cols = _overlap(geometry.left, source.shape[1], config.input_width)
    return source[source_rows, source_cols], (target_rows, target_cols), geometry


def _overlap(origin: int, source_length: int, target_length: int) -> tuple[slice, slice]:
    """Ranges, in source and in target, where a target window starting at ``origin`` meets it."""
    source_start = max(origin, 0)
    target_start = max(-origin, 0)
    length = min(source_length - source_start, target_length - target_start)
    return (slice(source_start, source_start + length),
            slice(target_start, target_start + length))


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Image size after ``cv2.resize(fx=scale, fy=scale)``, which rounds to the nearest pixel."""
    if scale == 1.0:
        return height, width
    return round(height * scale), round(width * scale)


def _opencv_layout(window: np.ndarray) -> bool:
    """Whether OpenCV can take ``window`` as it is: pixels and their channels adjacent, rows
    at a positive distance (a row-strided crop of a frame is fine)."""
    adjacent = (1,) if window.ndim == 2 else (window.shape[2], 1)
    return window.strides[0] > 0 and window.strides[1:] == adjacent


def require_bgr_image(array: np.ndarray) -> None:
    problem = bgr_image_problem(array)
    if problem is not None:
        raise PreprocessingError(
            f"{problem}; convert the image message with sgdn_ros.core.frames first")


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))
