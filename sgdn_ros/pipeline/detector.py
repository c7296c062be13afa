"""From camera images to grasps: preprocessing -> backend -> decoding, without ROS.

The node, the command line and the benchmarks all run frames through a ``GraspDetector``, so
each stage is timed the same way everywhere. Where the stages around the backend run is a
``ProcessingPath`` given to the detector: ``CpuPath`` around any backend, ``GpuPath`` around a
backend that works in GPU memory; ``sgdn_ros.pipeline.factory.create_detector`` chooses.

A frame is a colour image, a depth image in metres aligned to it, or both: what the model's
``input_kind`` takes (``ModelInfo.input_kind``). A colour model ignores the depth, a depth-only
model takes no colour image, and a frame without what the model needs is refused up front.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import numpy as np

from sgdn_ros.backends.base import InferenceBackend, ModelInfo
from sgdn_ros.core.decoding import DecodeConfig, Grasp
from sgdn_ros.core.depth_planes import (
    DEPTH_KINDS,
    depth_preview,
    write_depth_bgr_planes,
    write_depth_planes,
)
from sgdn_ros.core.drawing import render_heatmap
from sgdn_ros.core.frames import RawImage, raw_image_to_bgr
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor, crop_bgr

CameraImage = RawImage | np.ndarray  # a raw frame as received, or an (H, W, 3) uint8 BGR array
# (H, W) float depth in metres aligned to the colour image, NaN in holes (``depth_to_metres``)
DepthImage = np.ndarray


@dataclass
class Detection:
    """What one frame produced.

    ``confidence_map()`` gives the (H, W) grasp confidence over the network input, and
    ``heatmap()`` the debug picture drawn from it. Both are computed only when asked (on the GPU
    path the able map leaves the GPU only then) and only until the detector's next frame.
    ``image`` is None for a depth-only model's frame; ``depth_m`` is the frame's depth, if any.
    """

    grasps: list[Grasp]
    geometry: CropGeometry
    image: CameraImage | None = field(repr=False)
    preprocess_config: PreprocessConfig = field(repr=False)
    confidence_source: Callable[[], np.ndarray] = field(repr=False)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    depth_m: DepthImage | None = field(default=None, repr=False)

    def confidence_map(self) -> np.ndarray:
        return self.confidence_source()

    def heatmap(self) -> np.ndarray:
        """The network's crop of the colour image (of the depth image, nearer brighter, for a
        depth-only model) with the confidence and the grasps drawn on it. A grasp whose width
        in pixels is unknown (a metric-width model without ``metres_per_pixel``) is drawn
        closed, at its place and angle."""
        if self.image is None:
            crop = depth_preview(self.depth_m, self.preprocess_config)
        else:
            crop, _geometry = crop_bgr(as_bgr(self.image), self.preprocess_config)
        drawable = [grasp if math.isfinite(grasp.crop_width_px)
                    else dataclasses.replace(grasp, crop_width_px=0.0) for grasp in self.grasps]
        return render_heatmap(crop, self.confidence_map(), drawable)


class ProcessingPath(Protocol):
    """Where the stages around the backend run, for a batch of frames at a time."""

    name: str
    preprocess_config: PreprocessConfig

    def detect_batch(self, images: Sequence[CameraImage | None],
                     depths: Sequence[DepthImage | None],
                     decode_config: DecodeConfig) -> list[Detection]:
        """One ``Detection`` per frame (``images[i]`` with ``depths[i]``, checked by the
        detector against the model's input kind), in order; the frames go through the backend
        in groups of at most ``backend.info.max_batch`` (``batches``)."""

    def close(self) -> None:
        """Release what the path holds (not the backend)."""


def batches(images: Sequence, max_batch: int) -> list[Sequence]:
    """``images`` in consecutive groups of at most ``max_batch``, the most one inference takes."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [images[start:start + max_batch] for start in range(0, len(images), max_batch)]


def network_preprocess_config(info: ModelInfo, config: PreprocessConfig) -> PreprocessConfig:
    """``config`` with the input size the model takes (its channels match its input_kind:
    ``ModelInfo`` refuses any other)."""
    _batch, _channels, height, width = info.input_shape
    if (height, width) != (config.input_height, config.input_width):
        config = dataclasses.replace(config, input_height=height, input_width=width)
    return config


def as_bgr(image: CameraImage) -> np.ndarray:
    """A BGR view of a frame: a raw frame converted, an array as it is."""
    return raw_image_to_bgr(image) if isinstance(image, RawImage) else image


class InputPlanes:
    """A frame -> the network's planes and crop geometry, on the CPU, for the model's kind:
    the published colour preprocessing, or the author's depth (and colour) normalisation.
    Raw frames go in as they are: the preprocessing reads their crop in their own encoding."""

    def __init__(self, info: ModelInfo, config: PreprocessConfig) -> None:
        self.input_kind = info.input_kind
        self.channels = info.input_shape[1]
        self.colour = Preprocessor(network_preprocess_config(info, config))

    @property
    def config(self) -> PreprocessConfig:
        return self.colour.config

    def __call__(self, image: CameraImage | None, depth_m: DepthImage | None
                 ) -> tuple[np.ndarray, CropGeometry]:
        """Fresh (1, C, H, W) planes of one frame, and its geometry."""
        planes = self.empty_batch(1)
        return planes, self.write(image, depth_m, planes[0])

    def empty_batch(self, frames: int) -> np.ndarray:
        """An uninitialised (frames, C, H, W) float32 input for ``write`` to fill frame by
        frame, so a batch is never stacked from copies."""
        return np.empty((frames, self.channels, self.config.input_height,
                         self.config.input_width), dtype=np.float32)

    def write(self, image: CameraImage | None, depth_m: DepthImage | None,
              planes: np.ndarray) -> CropGeometry:
        """Fill ``planes``, one frame's (C, H, W) slot, and return the crop geometry."""
        if self.input_kind == "depth":
            return write_depth_planes(depth_m, self.config, planes)
        if self.input_kind == "depth_bgr":
            return write_depth_bgr_planes(depth_m, image, self.config, planes)
        return self.colour.write(image, planes)


def check_frames(input_kind: str, images: Sequence[CameraImage | None],
                 depths: Sequence[DepthImage | None]) -> None:
    """Refuse, before any work, a frame without what the model takes."""
    if len(depths) != len(images):
        raise ValueError(f"got {len(images)} images but {len(depths)} depth images; pass one "
                         "depth image (or None) per image")
    takes_depth = input_kind in DEPTH_KINDS
    if takes_depth and any(depth is None for depth in depths):
        raise ValueError(
            f"this model takes depth (input_kind {input_kind}); enable use_depth and publish "
            "depth/image_raw (or pass depth_m, in metres, aligned to the colour image)")
    if input_kind != "depth" and any(image is None for image in images):
        raise ValueError(
            f"this model takes a colour image (input_kind {input_kind}); pass the colour frame, "
            "not None")


class GraspDetector:
    """SGDN on one backend, the stages around it on ``path``.

    ``decode_config`` may be replaced at any time (runtime parameters). ``processing_reason``
    says why this path was chosen, for the log. Closing the detector closes the path and then
    the backend.
    """

    def __init__(self, backend: InferenceBackend, path: ProcessingPath,
                 decode_config: DecodeConfig, processing_reason: str = "") -> None:
        self.backend = backend
        self.path = path
        self.decode_config = decode_config
        self.processing_reason = processing_reason

    @property
    def processing(self) -> str:
        return self.path.name

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.path.preprocess_config

    @property
    def input_kind(self) -> str:
        """What the model takes: "bgr", "depth" or "depth_bgr" (``ModelInfo.input_kind``)."""
        return self.backend.info.input_kind

    def detect(self, image: CameraImage | None, depth_m: DepthImage | None = None) -> Detection:
        """One frame: the colour image and, for a model that takes depth, the (H, W) depth in
        metres aligned to it (NaN in holes); a depth-only model's ``image`` may be None."""
        return self.detect_batch([image], None if depth_m is None else [depth_m])[0]

    def detect_batch(self, images: Sequence[CameraImage | None],
                     depths: Sequence[DepthImage | None] | None = None) -> list[Detection]:
        """Several frames (for example one per camera), in as few inferences as the
        backend's ``info.max_batch`` allows: one for up to that many frames. ``depths``, one
        per image, as ``detect``'s ``depth_m``."""
        if depths is None:
            depths = [None] * len(images)
        check_frames(self.input_kind, images, depths)
        return self.path.detect_batch(images, depths, self._model_decode_config())

    def _model_decode_config(self) -> DecodeConfig:
        """``decode_config`` reading widths in the model's units, whatever the settings say."""
        units = self.backend.info.width_units
        if self.decode_config.width_units == units:
            return self.decode_config
        return dataclasses.replace(self.decode_config, width_units=units)

    def close(self) -> None:
        """Close the path, then the backend; a path that refuses (the GPU path on another
        thread) leaves both usable."""
        self.path.close()
        self.backend.close()

    def __enter__(self) -> GraspDetector:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
