"""Pre- and post-processing on the CPU, around any backend: the published preprocessing on a
BGR view of each frame, one inference for the batch, decoding at the chosen pixels only."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig, confidence_map, decode_grasps
from sgdn_ros.core.frames import RawImage, raw_image_to_bgr
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.pipeline.detector import CameraImage, Detection, network_preprocess_config


class CpuPath:
    """``ProcessingPath`` on the CPU; ``preprocess_config`` follows the model's input size."""

    name = "cpu"

    def __init__(self, backend: InferenceBackend, preprocess_config: PreprocessConfig) -> None:
        self.backend = backend
        self.preprocessor = Preprocessor(network_preprocess_config(backend.info,
                                                                   preprocess_config))

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.preprocessor.config

    def detect_batch(self, images: Sequence[CameraImage],
                     decode_config: DecodeConfig) -> list[Detection]:
        detections = []
        for image in images:
            started = time.perf_counter()
            bgr = raw_image_to_bgr(image) if isinstance(image, RawImage) else image
            planes, geometry = self.preprocessor(bgr)
            preprocessed = time.perf_counter()
            outputs = self.backend.infer(planes)
            inferred = time.perf_counter()
            grasps = decode_grasps(outputs.able, outputs.angle, outputs.width, geometry,
                                   decode_config)
            decoded = time.perf_counter()
            detections.append(Detection(
                grasps=grasps, geometry=geometry, image=image,
                preprocess_config=self.preprocess_config,
                confidence_source=lambda able=outputs.able: confidence_map(able),
                stage_seconds={
                    "preprocess": preprocessed - started,
                    "infer": inferred - preprocessed,
                    "decode": decoded - inferred,
                }))
        return detections

    def close(self) -> None:
        """Nothing to release: the arrays go with the garbage collector."""
