"""TensorRT engines from SGDN ONNX models: find TensorRT, build a plan, keep it in a disk cache.

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

INT8 is refused (``EngineSettings``): it needs calibration data (a deprecated API, gone in 11)
or Q/DQ nodes in the ONNX, neither of which this project produces.

TensorRT-RTX builds ahead of time on a machine without a GPU; its plans target compute
capabilities, not one GPU, so their key records the target instead of a GPU. Executing an
engine is not done here: ``get_engine(..., deserialize=True)`` hands a backend the
deserialized ``ICudaEngine`` and its ``Runtime`` to create an execution context from.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from os import PathLike

from sgdn_ros.backends.base import PRECISIONS, ModelLoadError
from sgdn_ros.backends.tensorrt.engine_cache import (
    EngineIO,
    EngineKey,
    PlanRecord,
    StalePlan,
    default_cache_dir,
    load_cached_plan,
    plan_problem,
    plan_slot,
    read_record,
    write_plan,
)
from sgdn_ros.core.atomic_files import atomic_output

MODULE_NAMES = ("tensorrt", "tensorrt_rtx")
RTX_MODULE = "tensorrt_rtx"
MIN_TENSORRT = "8.5"
MAX_OPTIMIZATION_LEVEL = 5
GPU_SOURCES = ("cuda-python", "nvidia-smi", "pycuda")
RTX_DEFAULT_TARGET = "rtx-default"  # TensorRT-RTX's default targets: compute capability 8.0+
_NVIDIA_SMI_TIMEOUT_S = 10.0
_ERROR_TEXT_LIMIT = 400
_CACHE_LOCK = threading.Lock()        # one build or cache check at a time per process
_TENSORRT_LOGS: dict[str, object] = {}  # module name -> the process's TensorRT logger

Logger = Callable[[str], None]


class TensorRTUnavailable(ImportError):
    """Neither TensorRT nor TensorRT-RTX imports, or the one that does is too old."""


class EngineBuildError(ModelLoadError):
    """The ONNX model cannot be parsed or built into a usable engine here."""


class EngineUnrunnable(EngineBuildError):
    """A plan built here does not deserialize here: this TensorRT cannot run engines on this
    machine (no GPU, or one it does not support). The model is not at fault."""


@dataclass(frozen=True)
class TensorRTModule:
    """The imported TensorRT flavour and what its API offers (see the module docstring)."""

    module: types.ModuleType
    name: str                 # "tensorrt" or "tensorrt_rtx"
    version: str              # the module's full __version__
    features: frozenset[str]
    cuda_major: str           # from the PyPI distribution name (…-cu12); "unknown" otherwise


@dataclass(frozen=True)
class GpuIdentity:
    """The GPU a plan is built for, as the key records it; ``source`` says who answered."""

    name: str
    compute_capability: str
    source: str


NO_GPU = GpuIdentity(name="none", compute_capability="none", source="none")
RTX_PORTABLE = GpuIdentity(name="none", compute_capability=RTX_DEFAULT_TARGET,
                           source="TensorRT-RTX plans target compute capabilities, not one GPU")


@dataclass(frozen=True)
class EngineSettings:
    """How to build: precision, workspace limit, builder optimization level (None: TensorRT's
    default), and whether to keep a timing cache where TensorRT has one."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    optimization_level: int | None = None
    timing_cache: bool = True

    def __post_init__(self) -> None:
        if self.precision == "int8":
            raise ValueError(
                "precision 'int8' is not supported: TensorRT needs calibration data (an API "
                "deprecated in 10.x and removed in 11) or an ONNX model with Q/DQ nodes for "
                f"INT8; use one of {', '.join(PRECISIONS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not _is_int(self.workspace_mb) or self.workspace_mb < 1:
            raise ValueError(f"workspace_mb must be a positive integer, got {self.workspace_mb!r}")
        level = self.optimization_level
        if level is not None and (not _is_int(level) or not 0 <= level <= MAX_OPTIMIZATION_LEVEL):
            raise ValueError(
                f"optimization_level must be None (TensorRT's default) or 0 to "
                f"{MAX_OPTIMIZATION_LEVEL}, got {level!r}")


@dataclass(frozen=True)
class CachedEngine:
    """A plan ready for a backend, from the cache (``built`` False) or built by this call.

    ``reason`` says why it was built (or ``"cache hit"``); ``build_seconds`` is this call's
    build time (None on a hit). ``runtime`` and ``engine`` are set with ``deserialize=True``;
    keep ``runtime`` alive as long as ``engine``.
    """

    plan_path: pathlib.Path
    plan: bytes = field(repr=False)
    key: EngineKey
    io: tuple[EngineIO, ...]
    built: bool
    reason: str
    build_seconds: float | None
    runtime: object | None = field(default=None, repr=False)
    engine: object | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _BuiltPlan:
    plan: bytes
    io: tuple[EngineIO, ...]
    seconds: float
    timing_cache_note: str


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


def detect_gpu(device: int = 0, sources: Sequence[str] = GPU_SOURCES) -> GpuIdentity:
    """Name and compute capability of CUDA device ``device``, or ``NO_GPU``.

    ``sources`` are tried in order, each imported or run only when its turn comes (nothing
    here needs pycuda at import time): cuda-python's runtime API, ``nvidia-smi`` (device chosen
    through ``CUDA_VISIBLE_DEVICES`` like CUDA does), pycuda. The first that answers wins; a
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


def engine_key(onnx_path: str | PathLike[str], settings: EngineSettings, trt: TensorRTModule,
               gpu: GpuIdentity) -> EngineKey:
    """The key of the plan that ``settings`` and ``trt`` would build from this ONNX file.

    Left out, since they do not make a plan invalid: whether a timing cache was used (it only
    speeds up tactic selection) and the file's path (the slot name covers it).
    """
    onnx_sha256, onnx_inputs = _onnx_identity(pathlib.Path(onnx_path).expanduser())
    level = settings.optimization_level
    return EngineKey(
        onnx_sha256=onnx_sha256,
        onnx_inputs=onnx_inputs,
        module=trt.name,
        module_version=trt.version,
        cuda_major=trt.cuda_major,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        platform=f"{platform.system()}-{platform.machine()}",
        precision=settings.precision,
        precision_method=_precision_method(settings.precision, trt),
        workspace_mb=settings.workspace_mb,
        optimization_level="default" if level is None else str(level),
    )


def get_engine(onnx_path: str | PathLike[str], settings: EngineSettings | None = None,
               cache_dir: str | PathLike[str] | None = None, *, force_rebuild: bool = False,
               deserialize: bool = False, device: int = 0,
               logger: Logger = print) -> CachedEngine:
    """The plan for this model and these settings: the cached one when valid, else a new build.

    A cached plan is used when its key matches and its size and sha256 match its sidecar
    (``engine_cache`` module); with ``deserialize`` it must also deserialize here, which needs a
    GPU the module supports. Anything else is rebuilt, logged in one line with the reason, and
    written atomically. ``force_rebuild`` skips the cache. Build times and cache hits are
    logged through ``logger``. One build at a time per process.

    Raises ``TensorRTUnavailable``, ``EngineBuildError`` (model unreadable or unbuildable, or a
    fresh plan that does not deserialize here either), ``ValueError`` for bad settings.
    """
    settings = settings or EngineSettings()
    trt = load_tensorrt()
    model = pathlib.Path(onnx_path).expanduser()
    key = engine_key(model, settings, trt, key_gpu(trt, device))
    plan_path = plan_slot(cache_dir or default_cache_dir(), model, settings.precision)
    with _CACHE_LOCK:
        reason = "a rebuild was forced" if force_rebuild else ""
        if not reason:
            try:
                return _from_cache(plan_path, key, trt, deserialize, logger)
            except StalePlan as stale:
                reason = stale.reason
        logger(f"TensorRT engine: building {plan_path.name}: {reason}")
        return _build_into_cache(model, plan_path, key, settings, trt, reason, deserialize,
                                 logger)


def _from_cache(plan_path: pathlib.Path, key: EngineKey, trt: TensorRTModule, deserialize: bool,
                logger: Logger) -> CachedEngine:
    started = time.perf_counter()
    plan, record = load_cached_plan(plan_path, key)
    runtime, engine = _deserialized(trt, plan, logger) if deserialize else (None, None)
    logger(f"TensorRT engine: cache hit {plan_path} ({len(plan) / 1e6:.1f} MB, built "
           f"{record.built_at} in {record.build_seconds:.1f} s), checked in "
           f"{time.perf_counter() - started:.2f} s")
    return CachedEngine(plan_path, plan, key, record.io, built=False, reason="cache hit",
                        build_seconds=None, runtime=runtime, engine=engine)


def _build_into_cache(model: pathlib.Path, plan_path: pathlib.Path, key: EngineKey,
                      settings: EngineSettings, trt: TensorRTModule, reason: str,
                      deserialize: bool, logger: Logger) -> CachedEngine:
    built = _build_plan(model, settings, trt, plan_path.parent / _timing_cache_name(key), logger)
    write_plan(plan_path, built.plan, PlanRecord(
        key=key, plan_bytes=len(built.plan), plan_sha256=hashlib.sha256(built.plan).hexdigest(),
        io=built.io, build_seconds=round(built.seconds, 3),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        onnx_path=str(model.resolve())))
    logger(f"TensorRT engine: built {plan_path} with {trt.name} {trt.version} in "
           f"{built.seconds:.1f} s ({len(built.plan) / 1e6:.1f} MB, {key.precision_method}; "
           f"{built.timing_cache_note})")
    runtime = engine = None
    if deserialize:
        try:
            runtime, engine = _deserialized(trt, built.plan, logger)
        except StalePlan as stale:
            raise EngineUnrunnable(
                f"the freshly built plan {plan_path.name} does not deserialize either "
                f"({stale.reason}): {trt.name} cannot run engines on this machine (no GPU, or "
                "a GPU it does not support); build ahead of time with `sgdn-ros build-engine` "
                "and run the plan where it can be loaded") from None
    return CachedEngine(plan_path, built.plan, key, built.io, built=True, reason=reason,
                        build_seconds=built.seconds, runtime=runtime, engine=engine)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cuda_major(module_name: str) -> str:
    """The CUDA major a PyPI TensorRT was built for, from its distribution's name (…_cu13)."""
    distributions = importlib.metadata.packages_distributions()
    for top_level in (module_name, f"{module_name}_bindings", f"{module_name}_libs"):
        for distribution in distributions.get(top_level, []):
            match = re.search(r"[-_]cu(\d+)", distribution)
            if match:
                return match.group(1)
    return "unknown"


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
    executable = shutil.which("nvidia-smi")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        selector = str(device)
    else:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        selector = entries[device] if device < len(entries) else ""
    if executable is None or not selector or selector.startswith("-"):
        return None
    try:
        answer = subprocess.run(
            [executable, f"--id={selector}", "--query-gpu=name,compute_cap",
             "--format=csv,noheader"],
            capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    name, _, capability = answer.stdout.strip().rpartition(",")
    if not name.strip() or not capability.strip():
        return None
    return GpuIdentity(name.strip(), capability.strip(), "nvidia-smi")


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


def _onnx_identity(path: pathlib.Path) -> tuple[str, str]:
    """sha256 of the model (its external data files included) and its inputs, checked static.

    Reads the file once: the bytes hashed are the bytes parsed.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise EngineBuildError(f"ONNX model not found: {path}") from None
    except OSError as error:
        raise EngineBuildError(f"cannot read the ONNX model {path}: {error}") from error
    try:
        model = onnx.load_model_from_string(content)
    except DecodeError as error:
        raise EngineBuildError(f"{path} is not an ONNX model: {error}") from error
    digest = hashlib.sha256(content)
    for location in _external_data_files(model):
        external = path.parent / location
        try:
            digest.update(location.encode())
            digest.update(external.read_bytes())
        except OSError as error:
            raise EngineBuildError(
                f"cannot read {external}, the external weights of {path}: {error}") from error
    return digest.hexdigest(), _describe_inputs(model, path)


def _external_data_files(model) -> list[str]:
    import onnx

    locations = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            if "location" in entries:  # the parser reports a model without one
                locations.add(entries["location"])
    return sorted(locations)


def _describe_inputs(model, path: pathlib.Path) -> str:
    """``name:dtype[d0,d1,...]`` per graph input; a dynamic dimension is refused, since a
    static SGDN model needs no optimization profile."""
    import onnx

    weights = {tensor.name for tensor in model.graph.initializer}
    described = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        tensor_type = value.type.tensor_type
        dims = [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?")
                for dim in tensor_type.shape.dim]
        if not all(isinstance(dim, int) and dim > 0 for dim in dims):
            raise EngineBuildError(
                f"input {value.name!r} of {path} has a dynamic shape {dims}; export the model "
                "with a static input size (`sgdn-ros export` does)")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        described.append(f"{value.name}:{dtype}[{','.join(str(dim) for dim in dims)}]")
    return ";".join(described)


def _precision_method(precision: str, trt: TensorRTModule) -> str:
    if precision == "fp32":
        return "fp32"
    if "fp16_builder_flag" in trt.features:
        return "fp16 builder flag"
    from sgdn_ros.models.fp16 import converter_identity

    return f"fp16 ONNX copy ({converter_identity()})"


def _timing_cache_name(key: EngineKey) -> str:
    """One timing cache per TensorRT build, CUDA, GPU and OS: what its entries depend on."""
    scope = (key.module, key.module_version, key.cuda_major, key.gpu_name,
             key.compute_capability, key.platform)
    return f"timing-{hashlib.sha256(repr(scope).encode()).hexdigest()[:16]}.cache"


def _tensorrt_log(trt: TensorRTModule):
    """The process's one TensorRT logger for this module (TensorRT expects a single logger)."""
    if trt.name not in _TENSORRT_LOGS:
        _TENSORRT_LOGS[trt.name] = _make_tensorrt_log(trt.module)
    return _TENSORRT_LOGS[trt.name]


def _make_tensorrt_log(module: types.ModuleType):
    severity = module.ILogger.Severity
    errors_at_most = int(severity.ERROR)
    warning = int(severity.WARNING)

    class CollectingLog(module.ILogger):
        """Collects errors for the exception that explains a failure; forwards warnings."""

        def __init__(self) -> None:
            module.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._errors: list[str] = []
            self._forward: Logger | None = None

        def log(self, level, message: str) -> None:
            with self._lock:
                if int(level) <= errors_at_most:
                    self._errors.append(message)
                forward = self._forward if int(level) == warning else None
            if forward is not None:
                forward(f"TensorRT warning: {message}")

        @contextlib.contextmanager
        def capture(self, forward: Logger) -> Iterator[list[str]]:
            with self._lock:
                self._errors, self._forward = [], forward
            try:
                yield self._errors
            finally:
                with self._lock:
                    self._forward = None

    return CollectingLog()


def _explained(errors: Sequence[str]) -> str:
    """TensorRT's first error message, shortened for one log line."""
    text = errors[0] if errors else "TensorRT gave no reason"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "..."


def _deserialized(trt: TensorRTModule, plan: bytes, logger: Logger) -> tuple[object, object]:
    """(Runtime, ICudaEngine) for the plan, or ``StalePlan`` saying why TensorRT refused it."""
    log = _tensorrt_log(trt)
    with log.capture(logger) as errors:
        try:
            runtime = trt.module.Runtime(log)
            engine = runtime.deserialize_cuda_engine(plan)
        except (RuntimeError, TypeError) as error:
            raise StalePlan(f"TensorRT cannot deserialize it here: {error}") from None
    if engine is None:
        raise StalePlan(f"TensorRT cannot deserialize it here: {_explained(errors)}")
    return runtime, engine


def _build_plan(model: pathlib.Path, settings: EngineSettings, trt: TensorRTModule,
                timing_cache_path: pathlib.Path, logger: Logger) -> _BuiltPlan:
    module = trt.module
    log = _tensorrt_log(trt)
    started = time.perf_counter()
    with log.capture(logger) as errors:
        builder = module.Builder(log)
        network = builder.create_network(_network_flags(trt))
        parser = module.OnnxParser(network, log)
        _parse(parser, model, settings.precision, trt)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(module.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
        if settings.optimization_level is not None:
            if "optimization_level" not in trt.features:
                raise EngineBuildError(
                    f"{trt.name} {trt.version} has no builder optimization levels (TensorRT "
                    "8.6 added them); leave optimization_level unset")
            config.builder_optimization_level = settings.optimization_level
        if settings.precision == "fp16" and "fp16_builder_flag" in trt.features:
            config.set_flag(module.BuilderFlag.FP16)
        timing_cache, timing_cache_note = _attach_timing_cache(
            config, settings, trt, timing_cache_path, logger)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError(
                f"{trt.name} {trt.version} could not build {model.name}: "
                f"{_explained(errors)}")
        plan = bytes(serialized)
    seconds = time.perf_counter() - started
    if timing_cache is not None:
        with atomic_output(timing_cache_path) as partial:
            partial.write_bytes(bytes(timing_cache.serialize()))
    return _BuiltPlan(plan, _network_io(network, module), seconds, timing_cache_note)


def _network_flags(trt: TensorRTModule) -> int:
    if "explicit_batch_flag" in trt.features:
        return 1 << int(trt.module.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def _parse(parser, model: pathlib.Path, precision: str, trt: TensorRTModule) -> None:
    """Parse the ONNX file, or its FP16 copy where FP16 cannot come from a builder flag."""
    if precision == "fp16" and "fp16_builder_flag" not in trt.features:
        import onnx

        from sgdn_ros.models.fp16 import Fp16ConversionError, convert_to_fp16

        try:
            copy = convert_to_fp16(onnx.load(str(model)))
        except Fp16ConversionError as error:
            raise EngineBuildError(f"cannot build {model.name} in FP16: {error}") from error
        parsed = parser.parse(copy.SerializeToString())
    else:
        parsed = parser.parse_from_file(str(model))
    if not parsed:
        problems = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise EngineBuildError(
            f"{trt.name} {trt.version} cannot parse {model}: {_explained(problems)}")


def _attach_timing_cache(config, settings: EngineSettings, trt: TensorRTModule,
                         path: pathlib.Path, logger: Logger):
    """(timing cache or None, a note for the build's log line)."""
    if not settings.timing_cache:
        return None, "timing cache off"
    if "timing_cache" not in trt.features:
        return None, (f"no timing cache in {trt.name}: its runtime cache, filled when the "
                      "engine runs, replaces it")
    stored = path.read_bytes() if path.exists() else b""
    cache = config.create_timing_cache(stored)
    if stored and not config.set_timing_cache(cache, False):
        logger(f"TensorRT engine: timing cache {path.name} does not match this TensorRT or GPU; "
               "starting an empty one")
        cache = config.create_timing_cache(b"")
        stored = b""
    config.set_timing_cache(cache, False)
    return cache, f"timing cache {path.name}" + ("" if stored else " (new)")


def _network_io(network, module: types.ModuleType) -> tuple[EngineIO, ...]:
    """Inputs, then outputs, as the engine will name them (read from the parsed network, so
    no deserialization, which a CPU-only build machine cannot do)."""
    tensors = [("input", network.get_input(index)) for index in range(network.num_inputs)]
    tensors += [("output", network.get_output(index)) for index in range(network.num_outputs)]
    return tuple(EngineIO(tensor.name, mode, tuple(int(size) for size in tensor.shape),
                          _dtype_name(tensor.dtype, module)) for mode, tensor in tensors)


def _dtype_name(dtype, module: types.ModuleType) -> str:
    import numpy as np

    try:
        return np.dtype(module.nptype(dtype)).name
    except TypeError:  # TensorRT types numpy lacks (bf16, fp8, ...)
        return str(dtype).rsplit(".", 1)[-1].lower()


# The command line: `sgdn-ros build-engine` and `sgdn-ros inspect`.

def add_engine_commands(commands: argparse._SubParsersAction) -> None:
    """Add the ``build-engine`` and ``inspect`` subcommands to ``sgdn-ros``'s subparsers."""
    defaults = EngineSettings()
    build = commands.add_parser(
        "build-engine", help="build a TensorRT plan ahead of time into the engine cache")
    build.add_argument("model", type=pathlib.Path, help="SGDN ONNX model")
    build.add_argument("--precision", choices=PRECISIONS, default=defaults.precision)
    build.add_argument("--cache-dir", type=pathlib.Path, default=None,
                       help=f"engine cache (default {default_cache_dir()})")
    build.add_argument("--workspace-mb", type=int, default=defaults.workspace_mb)
    build.add_argument("--optimization-level", type=int, default=None,
                       help=f"builder optimization level 0..{MAX_OPTIMIZATION_LEVEL} "
                            "(default: TensorRT's)")
    build.add_argument("--no-timing-cache", dest="timing_cache", action="store_false")
    build.add_argument("--force", action="store_true", help="rebuild even if a valid plan exists")
    build.set_defaults(run=run_build_engine)

    inspect = commands.add_parser("inspect", help="what a cached TensorRT plan was built for")
    inspect.add_argument("plan", type=pathlib.Path, help="a .plan file (or its .json sidecar)")
    inspect.set_defaults(run=run_inspect)


def run_build_engine(args: argparse.Namespace) -> int:
    """Build (or find in the cache) the plan; print its path, key and I/O tensors."""
    settings = EngineSettings(precision=args.precision, workspace_mb=args.workspace_mb,
                              optimization_level=args.optimization_level,
                              timing_cache=args.timing_cache)
    try:
        cached = get_engine(args.model, settings, args.cache_dir, force_rebuild=args.force,
                            logger=lambda line: print(line, file=sys.stderr))
    except TensorRTUnavailable as error:
        print(f"sgdn-ros build-engine: {error}", file=sys.stderr)
        return 2
    print(f"plan: {cached.plan_path} ({len(cached.plan) / 1e6:.1f} MB, "
          f"{'built: ' + cached.reason if cached.built else 'cache hit'})")
    print(f"for: {cached.key.module} {cached.key.module_version}, "
          f"{cached.key.precision_method}, GPU {cached.key.gpu_name} "
          f"(compute capability {cached.key.compute_capability})")
    for tensor in cached.io:
        print(tensor.describe())
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """Print what a plan is for, from its sidecar; exit 1 when the plan file does not match."""
    plan_path = args.plan.with_suffix(".plan") if args.plan.suffix == ".json" else args.plan
    record = read_record(plan_path)
    print(f"plan: {plan_path} ({record.plan_bytes / 1e6:.1f} MB, sha256 "
          f"{record.plan_sha256[:16]}...)")
    print(f"model: {record.onnx_path}")
    print(f"built: {record.built_at} in {record.build_seconds:.1f} s")
    for name, value in record.key.as_dict().items():
        print(f"  {name}: {value}")
    for tensor in record.io:
        print(tensor.describe())
    problem = plan_problem(plan_path, record)
    print(f"plan file: {problem or 'matches its metadata (size and sha256)'}")
    return 1 if problem else 0
