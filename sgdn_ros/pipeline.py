"""From a BGR image to grasps: preprocessing -> backend -> decoding, without ROS.

The node, the command line and the benchmark all run frames through `GraspDetector`, so each
stage is timed the same way everywhere.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from sgdn_ros.backends.base import InferenceBackend, ModelOutputs
from sgdn_ros.decoding import DecodeConfig, Grasp, decode_grasps
from sgdn_ros.preprocessing import CropGeometry, PreprocessConfig, Preprocessor


@dataclass
class Detection:
    """What one frame produced; `outputs` holds the raw maps for the debug heatmap."""

    grasps: list[Grasp]
    geometry: CropGeometry
    outputs: ModelOutputs
    stage_seconds: dict[str, float] = field(default_factory=dict)


class GraspDetector:
    """SGDN on one backend. `decode_config` may be replaced at any time (runtime parameters).

    The input size always follows the model's input shape; the means, scale and small-image
    policy come from `preprocess_config`.
    """

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

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.preprocessor.config

    def detect(self, bgr: np.ndarray) -> Detection:
        decode_config = self.decode_config
        started = time.perf_counter()
        planes, geometry = self.preprocessor(bgr)
        preprocessed = time.perf_counter()
        outputs = self.backend.infer(planes)
        inferred = time.perf_counter()
        grasps = decode_grasps(outputs.able, outputs.angle, outputs.width, geometry, decode_config)
        decoded = time.perf_counter()
        return Detection(
            grasps=grasps, geometry=geometry, outputs=outputs,
            stage_seconds={
                "preprocess": preprocessed - started,
                "infer": inferred - preprocessed,
                "decode": decoded - inferred,
            })

    def close(self) -> None:
        self.backend.close()
