"""Inference backends behind one interface, and the choice between them.

Backend modules are imported only when chosen, so a machine without a backend's libraries
(TensorRT, CUDA) can still run the others. ``auto`` tries the backends in ``AUTO_ORDER`` and
takes the first that can run on this machine: a backend whose libraries do not import
(``ImportError``) or that raises ``BackendUnavailable`` (no pycuda, no CUDA GPU, a GPU its
TensorRT cannot run engines on) is skipped, with the reason kept in ``selection_reason``. A bad
model file, or an option a backend refuses, is reported, not skipped over.

Precision under ``auto``: "fp16" is TensorRT's (it builds an FP16 engine). ONNX Runtime runs the
precision stored in the file, so when ``auto`` falls back to it, "fp16" is ignored with a note in
``selection_reason``; asking for backend "onnxruntime" with "fp16" is refused.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from os import PathLike

from sgdn_ros.backends.base import BackendUnavailable, InferenceBackend, ModelLoadError
from sgdn_ros.backends.tensorrt.settings import check_precision
from sgdn_ros.models.files import CHECKPOINT_SUFFIXES


@dataclass(frozen=True)
class BackendOptions:
    """What the node and the command line may ask of any backend; each backend takes what
    applies to it and refuses, with the reason, what it cannot do."""

    threads: int = 0             # CPU threads for inference; 0: the runtime decides
    precision: str = "fp32"      # "fp16": TensorRT, torch on CUDA (onnxruntime: an FP16 export)
    cuda_graph: bool = False     # torch on CUDA: replay the forward pass as one CUDA graph
    compile: bool = False        # torch on CUDA: TorchInductor kernels, compiled at load
    cuda_device: int = 0         # the GPU that TensorRT and torch run on
    engine_cache_dir: str = ""   # TensorRT plans, torch's compile cache; "": default_cache_dir()
    force_rebuild: bool = False  # TensorRT: build the plan even when the cached one matches
    workspace_mb: int = 1024     # TensorRT builder workspace limit
    # Frames per inference, for a model with a dynamic batch axis. One: the node runs one
    # camera's newest frame at a time, and TensorRT allocates its buffers for max_batch frames
    # (about 100 MB each at K = 120); batching several cameras raises it.
    max_batch: int = 1


def _open_onnxruntime(model_path: str | PathLike[str], options: BackendOptions) -> InferenceBackend:
    if options.precision != "fp32" or options.cuda_graph or options.compile:
        raise ModelLoadError(
            "onnxruntime runs the precision stored in the ONNX file and has no CUDA-graph or "
            "compile option: for FP16 export a copy with `sgdn-ros export --fp16` and set "
            "model_path to it; keep precision 'fp32', cuda_graph and torch_compile false")
    from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_path, intra_op_threads=options.threads,
                              max_batch=options.max_batch)


def _open_torch(model_path: str | PathLike[str], options: BackendOptions) -> InferenceBackend:
    from sgdn_ros.backends.torch_backend import TorchBackend, resolve_torch_device

    device = "cpu" if resolve_torch_device("auto").type == "cpu" else f"cuda:{options.cuda_device}"
    return TorchBackend(model_path, device=device, precision=options.precision,
                        cuda_graph=options.cuda_graph, threads=options.threads,
                        max_batch=options.max_batch, compile=options.compile,
                        compile_cache_dir=options.engine_cache_dir or None)


def _open_tensorrt(model_path: str | PathLike[str], options: BackendOptions) -> InferenceBackend:
    if options.cuda_graph or options.compile:
        raise ModelLoadError(
            "tensorrt has no CUDA-graph or compile option: it already runs one engine launch "
            "per frame (frame_graph records it with the rest of the frame); set cuda_graph and "
            "torch_compile false")
    from sgdn_ros.backends.tensorrt.runtime import TensorRTBackend

    return TensorRTBackend(model_path, precision=options.precision,
                           workspace_mb=options.workspace_mb,
                           cache_dir=options.engine_cache_dir or None,
                           force_rebuild=options.force_rebuild, device=options.cuda_device,
                           max_batch=options.max_batch)


_BACKEND_OPENERS: dict[str, Callable[[str | PathLike[str], BackendOptions], InferenceBackend]] = {
    "tensorrt": _open_tensorrt,
    "onnxruntime": _open_onnxruntime,
    "torch": _open_torch,
}
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "onnxruntime")
AUTO_IGNORED_FP16 = (
    "precision fp16 ignored: onnxruntime runs the precision stored in the ONNX file (export an "
    "FP16 copy with `sgdn-ros export --fp16` for that)")
BACKEND_CHOICES: tuple[str, ...] = ("auto", *_BACKEND_OPENERS)


def _is_checkpoint(model_path: str | PathLike[str]) -> bool:
    return pathlib.Path(model_path).suffix.lower() in CHECKPOINT_SUFFIXES


def create_backend(kind: str, model_path: str | PathLike[str],
                   options: BackendOptions | None = None) -> InferenceBackend:
    """Load ``model_path`` with the backend ``kind`` (one of ``BACKEND_CHOICES``).

    ``auto`` runs a PyTorch checkpoint (.pt, .pth, .ckpt) with torch and an ONNX file with the
    first backend of ``AUTO_ORDER`` that can run here (module docstring). The returned
    backend's ``selection_reason`` says why it was chosen, for the log.
    """
    options = options or BackendOptions()
    if kind not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
    check_precision(options.precision)
    if kind != "auto":
        backend = _BACKEND_OPENERS[kind](model_path, options)
        backend.selection_reason = f"backend {kind!r} was requested"
        return backend
    candidates = ("torch",) if _is_checkpoint(model_path) else AUTO_ORDER
    unavailable = []
    for candidate in candidates:
        candidate_options, note = options, ""
        if candidate == "onnxruntime" and options.precision != "fp32":
            candidate_options, note = replace(options, precision="fp32"), f"; {AUTO_IGNORED_FP16}"
        try:
            backend = _BACKEND_OPENERS[candidate](model_path, candidate_options)
        except (ImportError, BackendUnavailable) as error:
            unavailable.append(f"{candidate} ({error})")
            continue
        skipped = f" after skipping {'; '.join(unavailable)}" if unavailable else ""
        model_kind = "checkpoint" if _is_checkpoint(model_path) else "ONNX model"
        backend.selection_reason = (f"auto chose {candidate} for this {model_kind}{skipped}; "
                                    f"running as {backend.name}{note}")
        return backend
    raise ModelLoadError(
        f"no inference backend is available: {'; '.join(unavailable)}; install "
        f"{'torch' if _is_checkpoint(model_path) else 'onnxruntime'}")
