"""Turn SGDN's logit maps into grasps in the original image.

The angle map holds K logits per pixel (K = 120 for the published ONNX: 49 MB per frame), so
the fast decoder picks grasp pixels on the able map alone and reads angle and width only there
(``decode_grasps_full``, the whole-map decoding, is the reference it must agree with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sgdn_ros.core import compiled_stages
from sgdn_ros.core.channel_maps import PixelSampler, channel_maps_fit, upsampled
from sgdn_ros.core.checks import require_int, require_number
from sgdn_ros.core.compiled_stages import contiguous_float32
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import DecodingError, PeakSearch, find_peaks, threshold_in

DECODE_MODES = ("max", "peaks")
WIDTH_UNITS: tuple[str, ...] = ("pixels", "metres")


@dataclass(frozen=True)
class DecodeConfig:
    """How grasp pixels are chosen and how the width logits are scaled.

    ``width_units`` is the model's (its metadata's ``width_units``; the detector sets it): a
    width map in pixels is read as sigmoid x ``max_width_px`` network-input pixels, one in
    metres (the author's depth and RGB-D models) as sigmoid x ``max_width_m``. Either width
    converts to the other through ``metres_per_pixel`` (image pixels), when it is known.
    """

    mode: str = "peaks"
    confidence_threshold: float = 0.5
    min_distance: int = 10
    max_grasps: int = 5
    max_width_px: float = 200.0
    max_width_m: float = 0.1
    metres_per_pixel: float = 0.0
    width_units: str = WIDTH_UNITS[0]

    def __post_init__(self) -> None:
        if self.mode not in DECODE_MODES:
            raise DecodingError(f"mode must be one of {DECODE_MODES}, got {self.mode!r}")
        require_number("confidence_threshold", self.confidence_threshold, "in [0, 1]",
                       lambda value: 0.0 <= value <= 1.0, error=DecodingError)
        require_int("min_distance", self.min_distance, 1, error=DecodingError)
        require_int("max_grasps", self.max_grasps, 1, error=DecodingError)
        for name in ("max_width_px", "max_width_m"):
            require_number(name, getattr(self, name), "positive and finite",
                           lambda value: 0.0 < value < math.inf, error=DecodingError)
        require_number("metres_per_pixel", self.metres_per_pixel,
                       "finite and >= 0 (0 when unknown)", lambda value: 0.0 <= value < math.inf,
                       error=DecodingError)
        if self.width_units not in WIDTH_UNITS:
            raise DecodingError(
                f"width_units must be one of {WIDTH_UNITS}, got {self.width_units!r}")


@dataclass(frozen=True)
class Grasp:
    """One parallel-jaw grasp, in the original image and in the network input (crop_*)."""

    row: float
    col: float
    angle: float
    width_px: float
    width_m: float
    confidence: float
    angle_class: int
    crop_row: int
    crop_col: int
    crop_width_px: float


@dataclass(frozen=True)
class OutputLayout:
    """What decoding needs to know about the model's outputs."""

    num_angle_classes: int
    width_channels: int


def _channel_maps(name: str, array: np.ndarray) -> np.ndarray:
    """Views an output as (C, H, W), dropping the batch dimension of one image."""
    if not isinstance(array, np.ndarray):
        raise DecodingError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype.kind != "f":
        raise DecodingError(f"{name} must hold floating-point logits, got dtype {array.dtype}")
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise DecodingError(
                f"{name} has a batch of {array.shape[0]} images (shape {array.shape}); "
                "decode one image at a time"
            )
        array = array[0]
    if array.ndim != 3:
        raise DecodingError(
            f"{name} must have shape (1, C, H, W) or (C, H, W), got {array.shape}"
        )
    if 0 in array.shape:
        raise DecodingError(f"{name} is empty (shape {array.shape})")
    return array


def _able_map(able: np.ndarray) -> np.ndarray:
    """Views the able output as (H, W)."""
    if isinstance(able, np.ndarray) and able.ndim == 2:
        able = able[np.newaxis]
    maps = _channel_maps("able", able)
    if maps.shape[0] != 1:
        raise DecodingError(
            f"able must have one channel, got {maps.shape[0]} (shape {able.shape}); "
            "check the order of the model outputs (able, angle, width)"
        )
    return maps[0]


def validated_maps(
    able: np.ndarray, angle: np.ndarray, width: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The outputs of one image as (H, W), (K, h, w) and (1 or K, h, w) views, checked to fit
    together: (h, w) is (H, W), or smaller for angle and width maps handed over before the
    network's last upsampling (``sgdn_ros.core.channel_maps``)."""
    able_map = _able_map(able)
    angle_maps = _channel_maps("angle", angle)
    width_maps = _channel_maps("width", width)
    if width_maps.shape[1:] != angle_maps.shape[1:] or not channel_maps_fit(
            angle_maps.shape[1:], able_map.shape):
        raise DecodingError(
            f"angle maps are {angle_maps.shape[1:]}, width maps {width_maps.shape[1:]} and the "
            f"able map {able_map.shape} (H, W); angle and width must share H and W, the able "
            "map's or smaller")
    num_classes = angle_maps.shape[0]
    if width_maps.shape[0] not in (1, num_classes):
        raise DecodingError(
            f"width has {width_maps.shape[0]} channels; expected 1 or one per angle class "
            f"({num_classes})"
        )
    return able_map, angle_maps, width_maps


def output_layout(able: np.ndarray, angle: np.ndarray, width: np.ndarray) -> OutputLayout:
    """Checks the three outputs fit together and reports their channel counts."""
    _, angle_maps, width_maps = validated_maps(able, angle, width)
    return OutputLayout(num_angle_classes=angle_maps.shape[0], width_channels=width_maps.shape[0])


def sigmoid64(logits: np.ndarray) -> np.ndarray:
    """Float64, so distinct float32 logits stay distinct (float32 saturates to 1 near 17)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def confidence_map(able: np.ndarray) -> np.ndarray:
    """Grasp confidence in [0, 1] as (H, W) float32, for heatmaps; decoding never needs it."""
    logits = _able_map(able).astype(np.float32, copy=False)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits))


def logit(probability: float) -> float:
    """Inverse sigmoid: thresholds are compared on the logit maps, so only chosen pixels need
    a sigmoid; 0 and 1 map to -inf and +inf."""
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


def _select_pixels(
    score: np.ndarray, threshold: float, config: DecodeConfig, peak_search: PeakSearch
) -> tuple[np.ndarray, np.ndarray]:
    """Grasp pixels on an able map; score and threshold are both logits or both confidences."""
    if config.mode == "peaks":
        return peak_search(score, threshold, config.min_distance, config.max_grasps)
    best = int(np.argmax(score))
    if not score.ravel()[best] >= threshold_in(score.dtype, threshold):
        return np.empty(0, np.intp), np.empty(0, np.intp)
    row, col = divmod(best, score.shape[1])
    return np.array([row]), np.array([col])


def grasps_at_pixels(
    rows: np.ndarray,
    cols: np.ndarray,
    angle_classes: np.ndarray,
    confidences: np.ndarray,
    crop_widths: np.ndarray,
    num_classes: int,
    geometry: CropGeometry,
    config: DecodeConfig,
) -> list[Grasp]:
    """The grasps at the chosen pixels. ``crop_widths`` is what both decoders (CPU and GPU)
    compute, the width map's sigmoid x ``max_width_px``; ``_widths`` reads it in the model's
    units."""
    grasps = []
    for row, col, angle_class, confidence, crop_width in zip(
        rows.tolist(), cols.tolist(), angle_classes.tolist(),
        confidences.tolist(), crop_widths.tolist(),
    ):
        image_row, image_col = geometry.to_image(row, col)
        width_px, width_m, crop_width_px = _widths(crop_width, geometry, config)
        grasps.append(Grasp(
            row=float(image_row), col=float(image_col),
            angle=angle_class / num_classes * math.pi,
            width_px=float(width_px), width_m=float(width_m),
            confidence=confidence, angle_class=angle_class,
            crop_row=row, crop_col=col, crop_width_px=float(crop_width_px),
        ))
    return grasps


def _widths(crop_width: float, geometry: CropGeometry, config: DecodeConfig
            ) -> tuple[float, float, float]:
    """(width_px, width_m, crop_width_px) of a grasp, NaN where unknown: a metric width needs
    ``metres_per_pixel`` to be drawn in pixels, a pixel width needs it to be in metres."""
    known_scale = config.metres_per_pixel > 0
    if config.width_units == "metres":
        width_m = crop_width / config.max_width_px * config.max_width_m
        width_px = width_m / config.metres_per_pixel if known_scale else math.nan
        return width_px, width_m, width_px * geometry.scale
    width_px = geometry.length_to_image(crop_width)
    width_m = width_px * config.metres_per_pixel if known_scale else math.nan
    return width_px, width_m, crop_width


def decode_grasps(
    able: np.ndarray,
    angle: np.ndarray,
    width: np.ndarray,
    geometry: CropGeometry,
    config: DecodeConfig,
    peak_search: PeakSearch = find_peaks,
) -> list[Grasp]:
    """Decodes grasps reading the angle and width maps only at the chosen pixels; views of
    the maps throughout, nothing copied but the values at those pixels. ``peak_search`` finds
    the pixels in peaks mode (``reference_find_peaks``: the whole-map search, the baseline)."""
    able_map, angle_maps, width_maps = validated_maps(able, angle, width)
    rows, cols = _select_pixels(able_map, logit(config.confidence_threshold), config,
                                peak_search)
    angle_classes, width_logits = classes_and_width_logits(angle_maps, width_maps, rows, cols,
                                                           *able_map.shape)
    crop_widths = sigmoid64(width_logits) * config.max_width_px
    confidences = sigmoid64(able_map[rows, cols])
    return grasps_at_pixels(rows, cols, angle_classes, confidences, crop_widths,
                   angle_maps.shape[0], geometry, config)


def classes_and_width_logits(angle_maps: np.ndarray, width_maps: np.ndarray, rows: np.ndarray,
                             cols: np.ndarray, height: int, width: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The angle class and the width logit at each chosen pixel of the ``height`` x ``width``
    output: compiled where built (``compiled_stages``), else with ``PixelSampler``; the same
    values either way."""
    compiled = compiled_stages.COMPILED_STAGES
    if compiled is not None and contiguous_float32(angle_maps, width_maps):
        return compiled.sample_at_pixels(angle_maps, width_maps, rows, cols, height, width)
    sampler = PixelSampler(rows, cols, height, width, angle_maps.shape[1:])
    angle_classes = np.argmax(sampler.read(angle_maps), axis=0)
    width_channels = angle_classes if width_maps.shape[0] > 1 else np.zeros_like(angle_classes)
    return angle_classes, sampler.read(width_maps)[width_channels, np.arange(rows.size)]


def decode_grasps_full(
    able: np.ndarray,
    angle: np.ndarray,
    width: np.ndarray,
    geometry: CropGeometry,
    config: DecodeConfig,
) -> list[Grasp]:
    """The author's whole-map decoding: the reference decode_grasps must agree with."""
    able_map, angle_maps, width_maps = validated_maps(able, angle, width)
    angle_maps, width_maps = (upsampled(maps, *able_map.shape) for maps in (angle_maps, width_maps))
    confidences = sigmoid64(able_map)
    angle_class_map = np.argmax(sigmoid64(angle_maps), axis=0)
    width_probabilities = sigmoid64(width_maps)
    if width_maps.shape[0] > 1:
        width_map = np.take_along_axis(width_probabilities, angle_class_map[np.newaxis], 0)[0]
    else:
        width_map = width_probabilities[0]
    crop_width_map = width_map * config.max_width_px
    rows, cols = _select_pixels(confidences, config.confidence_threshold, config, find_peaks)
    return grasps_at_pixels(rows, cols, angle_class_map[rows, cols], confidences[rows, cols],
                   crop_width_map[rows, cols], angle_maps.shape[0], geometry, config)
