"""Settings to a running detector: the model file, its backend, the detector around it.

The node runs ``load_detector`` on its inference thread (a GPU backend's CUDA context is
current there only); the command line and the benchmark run it on theirs. Without ROS, so the
load step and what it reports are testable on their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sgdn_ros.backends import create_backend
from sgdn_ros.models.default import resolve_model_path
from sgdn_ros.pipeline.detector import GraspDetector
from sgdn_ros.pipeline.factory import create_detector
from sgdn_ros.pipeline.settings import DetectorSettings


@dataclass(frozen=True)
class LoadedDetector:
    """A detector and what its users need to know about how it was loaded."""

    detector: GraspDetector
    model_description: str
    load_seconds: float

    @property
    def backend_name(self) -> str:
        return self.detector.backend.name

    @property
    def num_angle_classes(self) -> int:
        """K of the model: what a grasp's angle class counts in (published with each grasp)."""
        return self.detector.backend.info.num_angle_classes

    def summary(self) -> str:
        """One log line: which model runs where, why there, and what it takes and gives."""
        backend = self.detector.backend
        info = backend.info
        return (f"loaded {self.model_description} on {backend.name} "
                f"({getattr(backend, 'selection_reason', '')}{backend.load_note}) in "
                f"{self.load_seconds:.2f} s: "
                f"input {info.input_shape}, {info.num_angle_classes} angle classes, width "
                f"channels {info.width_channels}; {self.detector.processing_reason}")

    def close(self) -> None:
        """Close the detector (its path, then its backend), on the thread that loaded it."""
        self.detector.close()


def load_detector(settings: DetectorSettings) -> LoadedDetector:
    """Resolve the model, open its backend and build the detector; a backend that was opened
    is closed again when the detector cannot be built, so a failed load holds nothing."""
    started = time.perf_counter()
    model_path, model_description = resolve_model_path(settings.model_path)
    backend = create_backend(settings.backend, model_path, settings.backend_options)
    try:
        detector = create_detector(backend, settings.preprocess, settings.decode,
                                   settings.gpu_processing, settings.frame_graph)
    except Exception:
        backend.close()
        raise
    return LoadedDetector(detector, model_description, time.perf_counter() - started)
