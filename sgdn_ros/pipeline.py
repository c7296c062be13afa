"""From a camera image to grasps: preprocessing -> backend -> decoding, without ROS.

The node, the command line and the benchmark all run frames through a ``GraspDetector``, so
each stage is timed the same way everywhere. ``create_detector`` picks where the pre- and
post-processing run: on the CPU around any backend, or on the GPU (``sgdn_ros.gpu.detector``)
around a backend that works in GPU memory, so the output maps never cross to the host.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.decoding import DecodeConfig, Grasp, confidence_map, decode_grasps
from sgdn_ros.image_conversion import RawImage, raw_image_to_bgr
from sgdn_ros.preprocessing import CropGeometry, PreprocessConfig, Preprocessor

CameraImage = RawImage | np.ndarray  # a raw frame as received, or an (H, W, 3) uint8 BGR array
GPU_PROCESSING_CHOICES = ("auto", "on", "off")


@dataclass
class Detection:
    """What one frame produced.

    ``confidence_map()`` gives the (H, W) grasp confidence over the network input for the
    debug heatmap. It is computed only when asked (on the GPU path the able map leaves the GPU
    only then) and only until the detector's next frame.
    """

    grasps: list[Grasp]
    geometry: CropGeometry
    confidence_source: Callable[[], np.ndarray] = field(repr=False)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def confidence_map(self) -> np.ndarray:
        return self.confidence_source()


class GraspDetector:
    """SGDN on one backend, with pre- and post-processing on the CPU.

    ``decode_config`` may be replaced at any time (runtime parameters). The input size always
    follows the model's input shape; the means, scale and small-image policy come from
    ``preprocess_config``. ``processing_reason`` says why this detector was chosen.
    """

    processing = "cpu"

    def __init__(
        self,
        backend: InferenceBackend,
        preprocess_config: PreprocessConfig,
        decode_config: DecodeConfig,
    ) -> None:
        _batch, channels, height, width = backend.info.input_shape
        if channels != 3:
            raise ValueError(
                f"the model expects {channels} input channel(s) but this detector feeds BGR "
                "(3 channels); export the model for RGB input")
        if (height, width) != (preprocess_config.input_height, preprocess_config.input_width):
            preprocess_config = dataclasses.replace(
                preprocess_config, input_height=height, input_width=width)
        self.backend = backend
        self.preprocessor = Preprocessor(preprocess_config)
        self.decode_config = decode_config
        self.processing_reason = ""

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.preprocessor.config

    def detect(self, image: CameraImage) -> Detection:
        decode_config = self.decode_config
        started = time.perf_counter()
        bgr = raw_image_to_bgr(image) if isinstance(image, RawImage) else image
        planes, geometry = self.preprocessor(bgr)
        preprocessed = time.perf_counter()
        outputs = self.backend.infer(planes)
        inferred = time.perf_counter()
        grasps = decode_grasps(outputs.able, outputs.angle, outputs.width, geometry, decode_config)
        decoded = time.perf_counter()
        return Detection(
            grasps=grasps, geometry=geometry,
            confidence_source=lambda: confidence_map(outputs.able),
            stage_seconds={
                "preprocess": preprocessed - started,
                "infer": inferred - preprocessed,
                "decode": decoded - inferred,
            })

    def close(self) -> None:
        self.backend.close()


def create_detector(backend: InferenceBackend, preprocess_config: PreprocessConfig,
                    decode_config: DecodeConfig, gpu_processing: str = "auto") -> GraspDetector:
    """A detector for ``backend``, with the pre- and post-processing on the GPU where possible.

    ``gpu_processing``: ``auto`` uses the GPU when the backend works in GPU memory and pycuda
    runs, else the CPU; ``on`` insists (and raises with the reason); ``off`` always uses the
    CPU. Call it on the thread that will run the detector (the GPU detector's CUDA context is
    current there only). The detector's ``processing_reason`` says what was chosen and why.
    """
    if gpu_processing not in GPU_PROCESSING_CHOICES:
        raise ValueError(f"gpu_processing must be one of {', '.join(GPU_PROCESSING_CHOICES)}, "
                         f"got {gpu_processing!r}")
    if gpu_processing == "off":
        return _cpu_detector(backend, preprocess_config, decode_config,
                             "CPU pre- and post-processing: gpu_processing is off")
    if backend.cuda_device is None:
        reason = (f"the {backend.name} backend takes and returns host arrays (GPU processing "
                  "needs tensorrt, or torch on a CUDA GPU)")
        if gpu_processing == "on":
            raise ValueError(f"gpu_processing is 'on' but {reason}; set gpu_processing to "
                             "'auto' or 'off', or choose one of those backends")
        return _cpu_detector(backend, preprocess_config, decode_config,
                             f"CPU pre- and post-processing: {reason}")
    from sgdn_ros.gpu.cuda_context import GpuUnavailableError

    try:
        from sgdn_ros.gpu.detector import GpuGraspDetector

        detector = GpuGraspDetector(backend, preprocess_config, decode_config)
    except GpuUnavailableError as error:
        if gpu_processing == "on":
            raise
        return _cpu_detector(backend, preprocess_config, decode_config,
                             f"CPU pre- and post-processing: the GPU path cannot run ({error})")
    detector.processing_reason = (
        f"GPU pre- and post-processing on CUDA device {backend.cuda_device}: only the grasps "
        "are copied back, the heatmap only while someone subscribes")
    return detector


def _cpu_detector(backend: InferenceBackend, preprocess_config: PreprocessConfig,
                  decode_config: DecodeConfig, reason: str) -> GraspDetector:
    detector = GraspDetector(backend, preprocess_config, decode_config)
    detector.processing_reason = reason
    return detector
