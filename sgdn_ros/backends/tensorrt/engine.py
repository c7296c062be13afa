"""TensorRT engines from SGDN ONNX models, kept in a disk cache: the entry a backend or the
command line calls (``get_engine``).

The cache key (``engine_key``) names everything a plan depends on: the model's identity
(``onnx_identity``), the TensorRT module (``module``), the GPU (``gpu_identity``) and the
settings (``settings``); the plan files and their sidecars are ``engine_cache``'s, the build is
``builder``'s. Executing an engine is not done here: ``get_engine(..., deserialize=True)`` hands
a backend the deserialized ``ICudaEngine`` and its ``Runtime`` to create an execution context
from.
"""

from __future__ import annotations

import hashlib
import pathlib
import platform
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from os import PathLike

from sgdn_ros.backends.tensorrt.builder import build_plan, precision_method, timing_cache_name
from sgdn_ros.backends.tensorrt.engine_cache import (
    EngineIO,
    EngineKey,
    PlanRecord,
    StalePlan,
    default_cache_dir,
    load_cached_plan,
    plan_slot,
    write_plan,
)
from sgdn_ros.backends.tensorrt.errors import EngineUnrunnable
from sgdn_ros.backends.tensorrt.gpu_identity import GpuIdentity, key_gpu
from sgdn_ros.backends.tensorrt.module import TensorRTModule, load_tensorrt, start_tensorrt
from sgdn_ros.backends.tensorrt.onnx_identity import has_dynamic_batch, onnx_identity
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.backends.tensorrt.tensorrt_log import Logger, explained, tensorrt_log

_CACHE_LOCK = threading.Lock()        # one build or cache check at a time per process


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


def engine_key(onnx_path: str | PathLike[str], settings: EngineSettings, trt: TensorRTModule,
               gpu: GpuIdentity) -> EngineKey:
    """The key of the plan that ``settings`` and ``trt`` would build from this ONNX file.

    Left out, since they do not make a plan invalid: whether a timing cache was used (it only
    speeds up tactic selection) and the file's path (the slot name covers it).
    """
    onnx_sha256, onnx_inputs = onnx_identity(pathlib.Path(onnx_path).expanduser())
    level = settings.optimization_level
    max_batch = settings.max_batch if has_dynamic_batch(onnx_inputs) else 1
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
        precision_method=precision_method(settings.precision, trt),
        workspace_mb=settings.workspace_mb,
        optimization_level="default" if level is None else str(level),
        max_batch=max_batch,
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

    Raises ``TensorRTUnavailable`` (none imports, or it cannot start on this driver),
    ``EngineBuildError`` (model unreadable or unbuildable, or a
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
    built = build_plan(model, settings, trt, plan_path.parent / timing_cache_name(key), logger,
                       max_batch=key.max_batch)
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


def _deserialized(trt: TensorRTModule, plan: bytes, logger: Logger) -> tuple[object, object]:
    """(Runtime, ICudaEngine) for the plan, or ``StalePlan`` saying why TensorRT refused it."""
    log = tensorrt_log(trt)
    with log.capture(logger) as errors:
        runtime = start_tensorrt(trt, "Runtime", log)
        try:
            engine = runtime.deserialize_cuda_engine(plan)
        except (RuntimeError, TypeError) as error:
            raise StalePlan(f"TensorRT cannot deserialize it here: {error}") from None
    if engine is None:
        raise StalePlan(f"TensorRT cannot deserialize it here: {explained(errors)}")
    return runtime, engine
