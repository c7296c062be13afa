"""Finding TensorRT: import ``tensorrt`` or ``tensorrt_rtx`` and read what its API offers.

One code path serves TensorRT 8.5 to 11.x (module ``tensorrt``) and TensorRT-RTX
(``tensorrt_rtx``), whichever imports first, in that order. Differences between versions are
read from the module's API, never from version strings (``TensorRTModule.features``):

- ``name_based_io``: ``ICudaEngine.num_io_tensors`` (8.5+). Required: older TensorRT is refused.
- ``explicit_batch_flag``: ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` where networks may
  still be implicit-batch, i.e. the binding API (``ICudaEngine.num_bindings``) still exists: the
  8.x ONNX parser needs the flag; 10.x (bindings removed) ignores it as deprecated; 11.x has no
  such member.
- ``fp16_builder_flag``: ``BuilderFlag.FP16`` (up to 10.x). Without it (11.x, TensorRT-RTX:
  strongly typed) an FP16 engine is built from an FP16 copy of the ONNX with float32 inputs and
  outputs (``sgdn_ros.models.fp16``).
- ``optimization_level``: ``IBuilderConfig.builder_optimization_level`` (8.6+).
- ``timing_cache``: ``IBuilderConfig.create_timing_cache``, TensorRT only. TensorRT-RTX keeps
  the calls as no-ops (deprecated in RTX 1.2); its runtime cache, filled when an engine runs,
  replaces it and belongs to the execution layer.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
import types
from dataclasses import dataclass

from sgdn_ros.backends.tensorrt.errors import TensorRTUnavailable

MODULE_NAMES = ("tensorrt", "tensorrt_rtx")
RTX_MODULE = "tensorrt_rtx"
MIN_TENSORRT = "8.5"


@dataclass(frozen=True)
class TensorRTModule:
    """The imported TensorRT flavour and what its API offers (see the module docstring)."""

    module: types.ModuleType
    name: str                 # "tensorrt" or "tensorrt_rtx"
    version: str              # the module's full __version__
    features: frozenset[str]
    cuda_major: str           # from the PyPI distribution name (…-cu12); "unknown" otherwise


@functools.cache
def load_tensorrt() -> TensorRTModule:
    """Import ``tensorrt``, else ``tensorrt_rtx``; refuse a TensorRT older than 8.5.

    The answer is kept for the process (a refusal is not: it raises again each time)."""
    failures = []
    for name in MODULE_NAMES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            failures.append(f"{name}: {error}")
            continue
        trt = TensorRTModule(module=module, name=name, version=str(module.__version__),
                             features=detect_features(module, name),
                             cuda_major=_cuda_major(name))
        check_supported(trt)
        return trt
    raise TensorRTUnavailable(
        f"no TensorRT module imports ({'; '.join(failures)}): install TensorRT "
        f">= {MIN_TENSORRT} (package tensorrt), or TensorRT-RTX (tensorrt-rtx-cu13), which "
        "builds engines for RTX GPUs even on a machine without a GPU")


def detect_features(module: types.ModuleType, name: str) -> frozenset[str]:
    """The optional API parts this module has (listed in the module docstring)."""
    checks = {
        "name_based_io": hasattr(module.ICudaEngine, "num_io_tensors"),
        "explicit_batch_flag": (hasattr(module.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
                                and hasattr(module.ICudaEngine, "num_bindings")),
        "fp16_builder_flag": hasattr(module.BuilderFlag, "FP16"),
        "optimization_level": hasattr(module.IBuilderConfig, "builder_optimization_level"),
        "timing_cache": name != RTX_MODULE and hasattr(module.IBuilderConfig,
                                                       "create_timing_cache"),
    }
    return frozenset(feature for feature, present in checks.items() if present)


def check_supported(trt: TensorRTModule) -> None:
    """Raise ``TensorRTUnavailable`` for a TensorRT without name-based I/O (older than 8.5)."""
    if "name_based_io" not in trt.features:
        raise TensorRTUnavailable(
            f"{trt.name} {trt.version} is too old: sgdn_ros needs TensorRT {MIN_TENSORRT} or "
            "later (name-based tensor I/O, ICudaEngine.num_io_tensors); upgrade TensorRT")


def start_tensorrt(trt: TensorRTModule, entry_point: str, log):
    """``trt.Builder(log)`` or ``trt.Runtime(log)``, the first calls that need CUDA and the
    driver. A TensorRT built for a newer CUDA than the driver supports (a cu13 wheel on a CUDA-12
    driver) fails here with ``TypeError`` ("factory function returned nullptr"): that is
    ``TensorRTUnavailable``, this TensorRT cannot run here, not a fault of the model."""
    try:
        return getattr(trt.module, entry_point)(log)
    except (TypeError, RuntimeError) as error:
        raise TensorRTUnavailable(
            f"{trt.name} {trt.version} (built for CUDA {trt.cuda_major}) cannot start "
            f"its {entry_point} here ({error}): the NVIDIA driver is too old for this TensorRT's "
            "CUDA, or no GPU is usable; install the TensorRT wheel for the driver's CUDA "
            "(nvidia-smi shows it) or update the driver") from error


def _cuda_major(module_name: str) -> str:
    """The CUDA major a PyPI TensorRT was built for, from its distribution's name (…_cu13)."""
    distributions = importlib.metadata.packages_distributions()
    for top_level in (module_name, f"{module_name}_bindings", f"{module_name}_libs"):
        for distribution in distributions.get(top_level, []):
            match = re.search(r"[-_]cu(\d+)", distribution)
            if match:
                return match.group(1)
    return "unknown"
