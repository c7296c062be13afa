"""Building a TensorRT plan from an ONNX model: parse it (or its FP16 copy where the module has
no FP16 builder flag), configure the builder from ``EngineSettings`` and the module's features,
keep the timing cache where TensorRT has one, and read the engine's I/O from the network.

Only builds: TensorRT-RTX builds on a machine without a GPU, so nothing here deserializes.
"""

from __future__ import annotations

import hashlib
import pathlib
import time
import types
from dataclasses import dataclass

from sgdn_ros.backends.tensorrt.engine_cache import EngineIO, EngineKey
from sgdn_ros.backends.tensorrt.errors import EngineBuildError
from sgdn_ros.backends.tensorrt.module import TensorRTModule, start_tensorrt
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.backends.tensorrt.tensorrt_log import Logger, explained, tensorrt_log
from sgdn_ros.core.atomic_files import atomic_output


@dataclass(frozen=True)
class BuiltPlan:
    """A serialized plan with its I/O tensors, build time and a note on the timing cache."""

    plan: bytes
    io: tuple[EngineIO, ...]
    seconds: float
    timing_cache_note: str


def precision_method(precision: str, trt: TensorRTModule) -> str:
    """How this module reaches ``precision``; part of the key, since the FP16 copy's converter
    shapes the plan."""
    if precision == "fp32":
        return "fp32"
    if "fp16_builder_flag" in trt.features:
        return "fp16 builder flag"
    from sgdn_ros.models.fp16 import converter_identity

    return f"fp16 ONNX copy ({converter_identity()})"


def timing_cache_name(key: EngineKey) -> str:
    """One timing cache per TensorRT build, CUDA, GPU and OS: what its entries depend on."""
    scope = (key.module, key.module_version, key.cuda_major, key.gpu_name,
             key.compute_capability, key.platform)
    return f"timing-{hashlib.sha256(repr(scope).encode()).hexdigest()[:16]}.cache"


def build_plan(model: pathlib.Path, settings: EngineSettings, trt: TensorRTModule,
               timing_cache_path: pathlib.Path, logger: Logger, *, max_batch: int = 1) -> BuiltPlan:
    """Build the plan ``settings`` ask for; raise ``EngineBuildError`` with TensorRT's reason.

    A dynamic batch axis gets one optimization profile from 1 to ``max_batch`` frames, tuned
    for one frame (a single camera, the common case).
    """
    module = trt.module
    log = tensorrt_log(trt)
    started = time.perf_counter()
    with log.capture(logger) as errors:
        builder = start_tensorrt(trt, "Builder", log)
        network = builder.create_network(_network_flags(trt))
        parser = module.OnnxParser(network, log)
        _parse(parser, model, settings.precision, trt)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(module.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
        _add_batch_profile(builder, network, config, max_batch)
        if settings.optimization_level is not None:
            if "optimization_level" not in trt.features:
                raise EngineBuildError(
                    f"{trt.name} {trt.version} has no builder optimization levels (TensorRT "
                    "8.6 added them); leave optimization_level unset")
            config.builder_optimization_level = settings.optimization_level
        if settings.precision == "fp16" and "fp16_builder_flag" in trt.features:
            config.set_flag(module.BuilderFlag.FP16)
        timing_cache, timing_cache_note = _attach_timing_cache(
            config, settings, trt, timing_cache_path, logger, errors)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError(
                f"{trt.name} {trt.version} could not build {model.name}: "
                f"{explained(errors)}")
        plan = bytes(serialized)
    seconds = time.perf_counter() - started
    if timing_cache is not None:
        with atomic_output(timing_cache_path) as partial:
            partial.write_bytes(bytes(timing_cache.serialize()))
    return BuiltPlan(plan, _network_io(network, module), seconds, timing_cache_note)


def _add_batch_profile(builder, network, config, max_batch: int) -> None:
    """One profile for the inputs whose batch axis is dynamic (-1); none for a static model."""
    dynamic = [network.get_input(index) for index in range(network.num_inputs)
               if tuple(network.get_input(index).shape)[:1] == (-1,)]
    if not dynamic:
        return
    profile = builder.create_optimization_profile()
    for tensor in dynamic:
        frame = tuple(int(size) for size in tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *frame), (1, *frame), (max_batch, *frame))
    config.add_optimization_profile(profile)


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
            f"{trt.name} {trt.version} cannot parse {model}: {explained(problems)}")


def _attach_timing_cache(config, settings: EngineSettings, trt: TensorRTModule,
                         path: pathlib.Path, logger: Logger, errors: list[str]):
    """(timing cache or None, a note for the build's log line). A stored cache that does not
    match is replaced by an empty one, and the error TensorRT logged about it is forgotten so
    that it cannot explain a later, unrelated failure of this build."""
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
        errors.clear()
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
