"""From camera images to grasps: preprocessing -> backend -> decoding, without ROS.

The node, the command line and the benchmarks all run frames through a ``GraspDetector``, so
each stage is timed the same way everywhere. Where the stages around the backend run is a
``ProcessingPath`` given to the detector: ``CpuPath`` around any backend, ``GpuPath`` around a
backend that works in GPU memory; ``sgdn_ros.pipeline.factory.create_detector`` chooses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sgdn_ros.backends.base import InferenceBackend, ModelInfo
from sgdn_ros.core.decoding import DecodeConfig, Grasp
from sgdn_ros.core.drawing import render_heatmap
from sgdn_ros.core.frames import RawImage, raw_image_to_bgr
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, crop_bgr

CameraImage = RawImage | np.ndarray  # a raw frame as received, or an (H, W, 3) uint8 BGR array


@dataclass
class Detection:
    """What one frame produced.

    ``confidence_map()`` gives the (H, W) grasp confidence over the network input, and
    ``heatmap()`` the debug picture drawn from it. Both are computed only when asked (on the GPU
    path the able map leaves the GPU only then) and only until the detector's next frame.
    """

    grasps: list[Grasp]
    geometry: CropGeometry
    image: CameraImage = field(repr=False)
    preprocess_config: PreprocessConfig = field(repr=False)
    confidence_source: Callable[[], np.ndarray] = field(repr=False)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def confidence_map(self) -> np.ndarray:
        return self.confidence_source()

    def heatmap(self) -> np.ndarray:
        """The network's crop of the image with the confidence and the grasps drawn on it."""
        image = self.image
        bgr = raw_image_to_bgr(image) if isinstance(image, RawImage) else image
        crop, _geometry = crop_bgr(bgr, self.preprocess_config)
        return render_heatmap(crop, self.confidence_map(), self.grasps)


class ProcessingPath(Protocol):
    """Where the stages around the backend run, for a batch of frames at a time."""

    name: str
    preprocess_config: PreprocessConfig

    def detect_batch(self, images: Sequence[CameraImage],
                     decode_config: DecodeConfig) -> list[Detection]:
        """One ``Detection`` per image, in order; the frames go through the backend in groups
        of at most ``backend.info.max_batch`` (``batches``)."""

    def close(self) -> None:
        """Release what the path holds (not the backend)."""


def batches(images: Sequence[CameraImage], max_batch: int) -> list[Sequence[CameraImage]]:
    """``images`` in consecutive groups of at most ``max_batch``, the most one inference takes."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [images[start:start + max_batch] for start in range(0, len(images), max_batch)]


def network_preprocess_config(info: ModelInfo, config: PreprocessConfig) -> PreprocessConfig:
    """``config`` with the input size the model takes; refuses models that are not fed BGR."""
    _batch, channels, height, width = info.input_shape
    if channels != 3:
        raise ValueError(
            f"the model expects {channels} input channel(s) but this detector feeds BGR "
            "(3 channels); export the model for RGB input")
    if (height, width) != (config.input_height, config.input_width):
        config = dataclasses.replace(config, input_height=height, input_width=width)
    return config


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

    def detect(self, image: CameraImage) -> Detection:
        return self.path.detect_batch([image], self.decode_config)[0]

    def detect_batch(self, images: Sequence[CameraImage]) -> list[Detection]:
        """Several frames (for example one per camera), in as few inferences as the
        backend's ``info.max_batch`` allows: one for up to that many frames."""
        return self.path.detect_batch(images, self.decode_config)

    def close(self) -> None:
        """Close the path, then the backend; a path that refuses (the GPU path on another
        thread) leaves both usable."""
        self.path.close()
        self.backend.close()
