"""Pre- and post-processing on the CPU, around any backend: the model's preprocessing of each
frame (colour, depth or both: ``InputPlanes``), one inference per group of frames the backend
takes at once, decoding at the chosen pixels only."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig, confidence_map, decode_grasps
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.pipeline.detector import (
    CameraImage,
    DepthImage,
    Detection,
    InputPlanes,
    batches,
)


class CpuPath:
    """``ProcessingPath`` on the CPU; ``preprocess_config`` follows the model's input size."""

    name = "cpu"

    def __init__(self, backend: InferenceBackend, preprocess_config: PreprocessConfig) -> None:
        self.backend = backend
        self.input_planes = InputPlanes(backend.info, preprocess_config)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.input_planes.config

    def detect_batch(self, images: Sequence[CameraImage | None],
                     depths: Sequence[DepthImage | None],
                     decode_config: DecodeConfig) -> list[Detection]:
        """One ``Detection`` per frame, with one ``infer`` per group of at most the backend's
        ``max_batch`` frames (a static batch-1 model: one per frame).

        Stage times: ``preprocess`` and ``decode`` are the frame's own; ``infer`` is the
        group's inference divided equally among its frames, so each stage's sum over the
        frames is the wall time spent in it.
        """
        frames = list(zip(images, depths))
        return [detection for group in batches(frames, self.backend.info.max_batch)
                for detection in self._detect_group(group, decode_config)]

    def _detect_group(self, frames: Sequence[tuple[CameraImage | None, DepthImage | None]],
                      decode_config: DecodeConfig) -> list[Detection]:
        # Each frame is written into its slot of one input: a batch is never stacked.
        planes = self.input_planes.empty_batch(len(frames))
        geometries, preprocess_seconds = [], []
        for (image, depth_m), slot in zip(frames, planes):
            started = time.perf_counter()
            geometries.append(self.input_planes.write(image, depth_m, slot))
            preprocess_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        outputs = self.backend.infer(planes)
        infer_share = (time.perf_counter() - started) / len(frames)
        detections = []
        for index, ((image, depth_m), geometry) in enumerate(zip(frames, geometries)):
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
                },
                depth_m=depth_m))
        return detections

    def close(self) -> None:
        """Nothing to release: the arrays go with the garbage collector."""
