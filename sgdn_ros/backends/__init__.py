"""Inference backends behind one interface, and the choice between them.

Backend modules are imported only when chosen, so a machine without a backend's libraries
(TensorRT, CUDA) can still run the others. ``auto`` tries the backends in ``AUTO_ORDER`` and
takes the first whose libraries import; a bad model file is reported, not skipped over.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike

from sgdn_ros.backends.base import (
    InferenceBackend,
    InferenceError,
    ModelInfo,
    ModelLoadError,
    ModelOutputs,
    resolve_output_names,
)

__all__ = [
    "AUTO_ORDER", "BACKEND_CHOICES", "InferenceBackend", "InferenceError", "ModelInfo",
    "ModelLoadError", "ModelOutputs", "create_backend", "resolve_output_names",
]


def _onnxruntime_backend() -> Callable[..., InferenceBackend]:
    from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    return OnnxRuntimeBackend


_BACKEND_LOADERS: dict[str, Callable[[], Callable[..., InferenceBackend]]] = {
    "onnxruntime": _onnxruntime_backend,
}
AUTO_ORDER: tuple[str, ...] = ("onnxruntime",)
BACKEND_CHOICES: tuple[str, ...] = ("auto", *_BACKEND_LOADERS)


def create_backend(kind: str, model_path: str | PathLike[str],
                   **options: object) -> InferenceBackend:
    """Load ``model_path`` with the backend ``kind`` (one of ``BACKEND_CHOICES``).

    ``options`` go to the backend's constructor. The returned backend's ``selection_reason``
    says why it was chosen, for the log.
    """
    if kind not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
    if kind != "auto":
        backend = _BACKEND_LOADERS[kind]()(model_path, **options)
        backend.selection_reason = f"backend {kind!r} was requested"
        return backend
    unavailable = []
    for candidate in AUTO_ORDER:
        try:
            backend_class = _BACKEND_LOADERS[candidate]()
        except ImportError as error:
            unavailable.append(f"{candidate} ({error})")
            continue
        backend = backend_class(model_path, **options)
        skipped = f" after skipping {'; '.join(unavailable)}" if unavailable else ""
        backend.selection_reason = (
            f"auto chose {candidate}, the first available of {', '.join(AUTO_ORDER)}{skipped}; "
            f"running as {backend.name}")
        return backend
    raise ModelLoadError(
        f"no inference backend is available: {'; '.join(unavailable)}; install onnxruntime")
