"""The GPU a plan is built for, as the engine cache key records it.

A TensorRT plan runs on one GPU model only, so its key names the GPU, asked of whichever CUDA
binding is at hand. TensorRT-RTX builds ahead of time, possibly on a machine without a GPU; its
plans target compute capabilities, not one GPU, so their key records the target instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from sgdn_ros.backends.tensorrt.module import RTX_MODULE, TensorRTModule

GPU_SOURCES = ("cuda-python", "nvidia-smi", "pycuda")
RTX_DEFAULT_TARGET = "rtx-default"  # TensorRT-RTX's default targets: compute capability 8.0+
_NVIDIA_SMI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class GpuIdentity:
    """The GPU a plan is built for, as the key records it; ``source`` says who answered."""

    name: str
    compute_capability: str
    source: str


NO_GPU = GpuIdentity(name="none", compute_capability="none", source="none")
RTX_PORTABLE = GpuIdentity(name="none", compute_capability=RTX_DEFAULT_TARGET,
                           source="TensorRT-RTX plans target compute capabilities, not one GPU")


def detect_gpu(device: int = 0, sources: Sequence[str] = GPU_SOURCES) -> GpuIdentity:
    """Name and compute capability of CUDA device ``device``, or ``NO_GPU``.

    ``sources`` are tried in order, each imported or run only when its turn comes (nothing
    here needs pycuda at import time): cuda-python's runtime API, ``nvidia-smi`` (device chosen
    through ``CUDA_VISIBLE_DEVICES`` like CUDA does, and only where its numbering is CUDA's),
    pycuda. The first that answers wins; a
    source that is missing or fails is skipped.
    """
    probes = {"cuda-python": _gpu_from_cuda_python, "nvidia-smi": _gpu_from_nvidia_smi,
              "pycuda": _gpu_from_pycuda}
    for source in sources:
        if source not in probes:
            raise ValueError(f"unknown GPU source {source!r}; choose from {', '.join(probes)}")
        identity = probes[source](device)
        if identity is not None:
            return identity
    return NO_GPU


def key_gpu(trt: TensorRTModule, device: int = 0) -> GpuIdentity:
    """What the key records as the GPU: the device's identity for TensorRT, whose plans run on
    one GPU model only; ``RTX_PORTABLE`` for TensorRT-RTX, whose plans do not depend on the
    machine that built them (that machine may have no GPU at all)."""
    return RTX_PORTABLE if trt.name == RTX_MODULE else detect_gpu(device)


def _gpu_from_cuda_python(device: int) -> GpuIdentity | None:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python before 12.6
        except ImportError:
            return None
    try:
        error, properties = cudart.cudaGetDeviceProperties(device)
    except (RuntimeError, OSError):  # no CUDA runtime or driver library
        return None
    if error != cudart.cudaError_t.cudaSuccess:
        return None
    name = properties.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return GpuIdentity(str(name).strip(), f"{properties.major}.{properties.minor}", "cuda-python")


def _gpu_from_nvidia_smi(device: int) -> GpuIdentity | None:
    """nvidia-smi numbers GPUs in PCI bus order, CUDA fastest first unless ``CUDA_DEVICE_ORDER``
    is ``PCI_BUS_ID``: an index is trusted only in that order, or when every GPU is the same
    model (then the order does not matter); otherwise pycuda, which asks CUDA, answers."""
    executable = shutil.which("nvidia-smi")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        selector = str(device)
    else:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        selector = entries[device] if device < len(entries) else ""
    if executable is None or not selector or selector.startswith("-"):
        return None
    if selector.isdigit() and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        models = set(_nvidia_smi_gpus(executable, []))
        return models.pop() if len(models) == 1 else None
    named = _nvidia_smi_gpus(executable, [f"--id={selector}"])
    return named[0] if named else None


def _nvidia_smi_gpus(executable: str, selection: list[str]) -> list[GpuIdentity]:
    try:
        answer = subprocess.run(
            [executable, *selection, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in answer.stdout.splitlines():
        name, _, capability = line.strip().rpartition(",")
        if name.strip() and capability.strip():
            gpus.append(GpuIdentity(name.strip(), capability.strip(), "nvidia-smi"))
    return gpus


def _gpu_from_pycuda(device: int) -> GpuIdentity | None:
    try:
        import pycuda.driver as cuda
    except ImportError:
        return None
    try:
        cuda.init()
        gpu = cuda.Device(device)
        major, minor = gpu.compute_capability()
        return GpuIdentity(gpu.name(), f"{major}.{minor}", "pycuda")
    except cuda.Error:
        return None
