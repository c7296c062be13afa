"""The detector for a loaded backend: its stages on the GPU where they can run, else on the CPU.

``gpu_processing``: ``auto`` uses the GPU when the backend works in GPU memory and pycuda runs,
else the CPU; ``on`` insists (and raises with the reason); ``off`` always uses the CPU.
``frame_graph``: on the GPU, replay each frame as one CUDA graph where the backend can be
recorded (``GpuPath``); the reason says which way frames go.
"""

from __future__ import annotations

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.gpu.cuda_context import GpuUnavailableError
from sgdn_ros.pipeline.cpu_path import CpuPath
from sgdn_ros.pipeline.detector import GraspDetector

GPU_PROCESSING_CHOICES = ("auto", "on", "off")


def create_detector(backend: InferenceBackend, preprocess_config: PreprocessConfig,
                    decode_config: DecodeConfig, gpu_processing: str = "auto",
                    frame_graph: bool = True) -> GraspDetector:
    """A detector for ``backend``; see the module docstring for ``gpu_processing``.

    Call it on the thread that will run the detector (the GPU path's CUDA context is current
    there only). The detector's ``processing_reason`` says what was chosen and why.
    """
    if gpu_processing not in GPU_PROCESSING_CHOICES:
        raise ValueError(f"gpu_processing must be one of {', '.join(GPU_PROCESSING_CHOICES)}, "
                         f"got {gpu_processing!r}")

    def on_cpu(reason: str) -> GraspDetector:
        return GraspDetector(backend, CpuPath(backend, preprocess_config), decode_config,
                             f"CPU pre- and post-processing: {reason}")

    if gpu_processing == "off":
        return on_cpu("gpu_processing is off")
    if backend.cuda_device is None:
        reason = (f"the {backend.name} backend takes and returns host arrays (GPU processing "
                  "needs tensorrt, or torch on a CUDA GPU)")
        if gpu_processing == "on":
            raise ValueError(f"gpu_processing is 'on' but {reason}; set gpu_processing to "
                             "'auto' or 'off', or choose one of those backends")
        return on_cpu(reason)
    try:
        from sgdn_ros.pipeline.gpu_path import GpuPath

        path = GpuPath(backend, preprocess_config, frame_graph)
    except GpuUnavailableError as error:
        if gpu_processing == "on":
            raise
        return on_cpu(f"the GPU path cannot run ({error})")
    return GraspDetector(
        backend, path, decode_config,
        f"GPU pre- and post-processing on CUDA device {backend.cuda_device}: only the grasps "
        f"are copied back, the heatmap only while someone subscribes; {path.frame_graph_reason}")


def cpu_detector(backend: InferenceBackend, preprocess_config: PreprocessConfig,
                 decode_config: DecodeConfig) -> GraspDetector:
    """The CPU detector, for tools and tests that compare against it."""
    return create_detector(backend, preprocess_config, decode_config, "off")


def gpu_detector(backend: InferenceBackend, preprocess_config: PreprocessConfig,
                 decode_config: DecodeConfig, frame_graph: bool = True) -> GraspDetector:
    """The GPU detector or ``GpuUnavailableError``, for tools and tests that need it."""
    return create_detector(backend, preprocess_config, decode_config, "on", frame_graph)
