"""A stand-in for the ``tensorrt`` module's surface, shaped after each release's Python API, for
the logic around TensorRT (feature detection, build configuration, error wrapping, binding and
release) on machines where no TensorRT engine runs.

Shapes, per the TensorRT Python API and the 8.x->10.x and 10.x->11.x migration guides:
8.5 adds name-based I/O (``ICudaEngine.num_io_tensors``) next to the binding API; 8.6 adds
``IBuilderConfig.builder_optimization_level``; 10.x removes the binding API
(``num_bindings``) and keeps ``EXPLICIT_BATCH`` only as a deprecated, ignored flag; 11 removes
it and the weak-typing precision flags (``BuilderFlag.FP16``): networks are strongly typed;
TensorRT-RTX (module ``tensorrt_rtx``) is strongly typed like 11 and keeps the timing cache calls
as no-ops.

Nothing here computes: a "plan" is the parsed network's I/O written as JSON, an engine reads
it back, ``execute_async_v3`` only records the call. Everything the code under test asks of the
module is recorded in ``FakeTensorRT.calls``.
"""

from __future__ import annotations

import enum
import json
import types
import weakref
from dataclasses import dataclass, field

import numpy as np
import onnx

RELEASES = ("8.5", "8.6", "10.x", "11", "rtx")
VERSIONS = {"8.5": "8.5.3.1", "8.6": "8.6.1.6", "10.x": "10.16.0.72", "11": "11.1.0.9",
            "rtx": "1.2.0.54"}
NULLPTR = "__init__(): incompatible function arguments / factory function returned nullptr"


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    BF16 = 7

    def __str__(self) -> str:  # as the bindings print it
        return f"DataType.{self.name}"


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


def nptype(dtype: DataType) -> type:
    """numpy's type for a TensorRT type; TypeError for one numpy lacks, as the real one does."""
    types_by_dtype = {DataType.FLOAT: np.float32, DataType.HALF: np.float16}
    if dtype not in types_by_dtype:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return types_by_dtype[dtype]


@dataclass
class Behaviour:
    """What the stand-in does where a real install can fail."""

    start_error: str = ""            # Builder and Runtime raise TypeError with this text
    timing_cache_matches: bool = True
    build_error: str = ""            # build_serialized_network logs this and returns None
    deserializes: bool = True
    execution_context: bool = True
    execute_ok: bool = True
    io_dtype: DataType = DataType.FLOAT


@dataclass
class FakeTensorRT:
    """The module, what it was asked, and the order its objects were released in."""

    module: types.ModuleType
    behaviour: Behaviour
    calls: list[tuple] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


def make_fake_tensorrt(release: str, behaviour: Behaviour | None = None) -> FakeTensorRT:
    """The module of ``release`` (one of ``RELEASES``), as ``tensorrt`` (``tensorrt_rtx`` for
    "rtx") would import."""
    behaviour = behaviour or Behaviour()
    fake = FakeTensorRT(types.ModuleType("tensorrt_rtx" if release == "rtx" else "tensorrt"),
                        behaviour)
    legacy = release in ("8.5", "8.6")
    weakly_typed = release in ("8.5", "8.6", "10.x")
    module = fake.module
    module.__version__ = VERSIONS[release]
    module.DataType, module.TensorIOMode, module.MemoryPoolType = DataType, TensorIOMode, \
        MemoryPoolType
    module.nptype = nptype
    module.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag",
        {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if weakly_typed else {"STRONGLY_TYPED": 1})
    module.BuilderFlag = enum.IntEnum(
        "BuilderFlag", {"FP16": 0, "INT8": 1, "TF32": 7} if weakly_typed else {"TF32": 7})

    class ILogger:
        def __init__(self) -> None:
            pass

    ILogger.Severity = Severity
    module.ILogger = ILogger

    def log_error(log, message: str) -> None:
        log.log(Severity.ERROR, message)

    class ICudaEngine:
        def __init__(self, io: list, log) -> None:
            self._io, self._log = io, log
            weakref.finalize(self, fake.released.append, "engine")

        num_io_tensors = property(lambda self: len(self._io))

        def get_tensor_name(self, index: int) -> str:
            return self._io[index]["name"]

        def _tensor(self, name: str) -> dict:
            return next(tensor for tensor in self._io if tensor["name"] == name)

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if self._tensor(name)["input"] else TensorIOMode.OUTPUT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tuple(self._tensor(name)["shape"])

        def get_tensor_dtype(self, name: str) -> DataType:
            return behaviour.io_dtype

        def create_execution_context(self):
            fake.calls.append(("create_execution_context",))
            if not behaviour.execution_context:
                log_error(self._log, "IExecutionContext: out of device memory")
                return None
            return IExecutionContext(self._io, self._log)

    if legacy:
        ICudaEngine.num_bindings = property(lambda self: len(self._io))
    module.ICudaEngine = ICudaEngine

    class IExecutionContext:
        def __init__(self, io: list, log) -> None:
            self._shapes = {tensor["name"]: tuple(tensor["shape"]) for tensor in io}
            self._log = log
            weakref.finalize(self, fake.released.append, "execution context")

        def set_tensor_address(self, name: str, address: int) -> bool:
            fake.calls.append(("set_tensor_address", name, address))
            return True

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            fake.calls.append(("set_input_shape", name, tuple(shape)))
            self._shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self._shapes[name]

        def execute_async_v3(self, stream_handle: int) -> bool:
            fake.calls.append(("execute_async_v3", stream_handle))
            if not behaviour.execute_ok:
                log_error(self._log, "IExecutionContext::enqueueV3: illegal memory access")
            return behaviour.execute_ok

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set = set()

        def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
            fake.calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag) -> None:
            fake.calls.append(("set_flag", flag.name))

        def add_optimization_profile(self, profile) -> None:
            fake.calls.append(("add_optimization_profile",))

        def create_timing_cache(self, stored: bytes):
            return types.SimpleNamespace(serialize=lambda: b"timing cache")

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            if self._log is not None and not behaviour.timing_cache_matches:
                self._log.log(Severity.ERROR, "timing cache: the cache was created by another "
                              "TensorRT version or device")
                self._log, behaviour.timing_cache_matches = None, True
                return False
            return True

    if release != "8.5":
        IBuilderConfig.builder_optimization_level = 3
    module.IBuilderConfig = IBuilderConfig

    class Builder:
        def __init__(self, log) -> None:
            if behaviour.start_error:
                raise TypeError(behaviour.start_error)
            self._log = log

        def create_network(self, flags: int):
            fake.calls.append(("create_network", flags))
            return types.SimpleNamespace(inputs=[], outputs=[], num_inputs=0, num_outputs=0,
                                         get_input=None, get_output=None)

        def create_builder_config(self):
            config = IBuilderConfig()
            config._log = self._log
            return config

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda *shapes: None)

        def build_serialized_network(self, network, config):
            if behaviour.build_error:
                log_error(self._log, behaviour.build_error)
                return None
            io = [{"name": tensor.name, "input": is_input, "shape": list(tensor.shape)}
                  for is_input, tensors in ((True, network.inputs), (False, network.outputs))
                  for tensor in tensors]
            return json.dumps(io).encode()

    module.Builder = Builder

    class OnnxParser:
        def __init__(self, network, log) -> None:
            self._network = network

        num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            fake.calls.append(("parse_from_file",))
            return self._fill(onnx.load(path))

        def parse(self, model: bytes) -> bool:
            parsed = onnx.load_from_string(model)
            halves = any(tensor.data_type == onnx.TensorProto.FLOAT16
                         for tensor in parsed.graph.initializer)
            fake.calls.append(("parse", "fp16 weights" if halves else "fp32 weights"))
            return self._fill(parsed)

        def _fill(self, model) -> bool:
            network = self._network
            for values, tensors in ((model.graph.input, network.inputs),
                                    (model.graph.output, network.outputs)):
                tensors.extend(_Tensor(value.name, tuple(
                    dim.dim_value or -1 for dim in value.type.tensor_type.shape.dim),
                    DataType.FLOAT) for value in values)
            network.num_inputs, network.num_outputs = len(network.inputs), len(network.outputs)
            network.get_input, network.get_output = network.inputs.__getitem__, \
                network.outputs.__getitem__
            return True

    module.OnnxParser = OnnxParser

    class Runtime:
        def __init__(self, log) -> None:
            if behaviour.start_error:
                raise TypeError(behaviour.start_error)
            self._log = log
            weakref.finalize(self, fake.released.append, "runtime")

        def deserialize_cuda_engine(self, plan: bytes):
            if not behaviour.deserializes:
                log_error(self._log, "IRuntime::deserializeCudaEngine: no supported GPU")
                return None
            return ICudaEngine(json.loads(plan), self._log)

    module.Runtime = Runtime
    return fake
