"""Inference backends behind one small interface (``base``), and the choice between them
(``factory``). Runners: ``onnxruntime_backend`` (CPU, the embedded default), ``torch_backend``
(checkpoints; CUDA), ``tensorrt/`` (engines built and cached ahead of time, run with pycuda).
Each runner's libraries are imported only when it is chosen."""

from sgdn_ros.backends.base import (
    PRECISIONS,
    BackendUnavailable,
    DeviceMaps,
    InferenceBackend,
    InferenceError,
    ModelInfo,
    ModelLoadError,
    ModelOutputs,
    resolve_output_names,
)
from sgdn_ros.backends.factory import (
    AUTO_ORDER,
    BACKEND_CHOICES,
    BackendOptions,
    create_backend,
)

__all__ = [
    "AUTO_ORDER", "BACKEND_CHOICES", "PRECISIONS", "BackendOptions", "BackendUnavailable",
    "DeviceMaps", "InferenceBackend", "InferenceError", "ModelInfo", "ModelLoadError",
    "ModelOutputs", "create_backend", "resolve_output_names",
]
