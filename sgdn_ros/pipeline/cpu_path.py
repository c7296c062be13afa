"""Pre- and post-processing on the CPU, around any backend: the published preprocessing on a
BGR view of each frame, one inference per group of frames the backend takes at once, decoding
at the chosen pixels only."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig, confidence_map, decode_grasps
from sgdn_ros.core.frames import RawImage, raw_image_to_bgr
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.pipeline.detector import (
    CameraImage,
    Detection,
    batches,
    network_preprocess_config,
)


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
        """One ``Detection`` per image, with one ``infer`` per group of at most the backend's
        ``max_batch`` frames (a static batch-1 model: one per frame).

        Stage times: ``preprocess`` and ``decode`` are the frame's own; ``infer`` is the
        group's stacking and inference divided equally among its frames, so each stage's sum
        over the frames is the wall time spent in it.
        """
        return [detection for group in batches(images, self.backend.info.max_batch)
                for detection in self._detect_group(group, decode_config)]

    def _detect_group(self, images: Sequence[CameraImage],
                      decode_config: DecodeConfig) -> list[Detection]:
        prepared, preprocess_seconds = [], []
        for image in images:
            started = time.perf_counter()
            bgr = raw_image_to_bgr(image) if isinstance(image, RawImage) else image
            prepared.append(self.preprocessor(bgr))
            preprocess_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        # One frame (one camera) is already a batch of one: no copy into a stack.
        planes = (prepared[0][0] if len(prepared) == 1
                  else np.concatenate([planes for planes, _geometry in prepared]))
        outputs = self.backend.infer(planes)
        infer_share = (time.perf_counter() - started) / len(images)
        detections = []
        for index, (image, (_planes, geometry)) in enumerate(zip(images, prepared)):
            started = time.perf_counter()
            frame = slice(index, index + 1)
            able = outputs.able[frame]
            grasps = decode_grasps(able, outputs.angle[frame], outputs.width[frame], geometry,
                                   decode_config)
            detections.append(Detection(
                grasps=grasps, geometry=geometry, image=image,
                preprocess_config=self.preprocess_config,
                confidence_source=lambda able=able: confidence_map(able),
                stage_seconds={
                    "preprocess": preprocess_seconds[index],
                    "infer": infer_share,
                    "decode": time.perf_counter() - started,
                }))
        return detections

    def close(self) -> None:
        """Nothing to release: the arrays go with the garbage collector."""
