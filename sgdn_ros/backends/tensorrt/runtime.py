"""SGDN as a TensorRT engine on a CUDA GPU, run through pycuda on the inference thread.

The engine comes from the on-disk cache (``engine.get_engine``), built from the ONNX
model on first use. Everything the engine reads and writes lives in buffers allocated once (for
the most frames one run takes) and found by tensor NAME, so each run is one upload, one
``execute_async_v3`` and three downloads on one non-default stream, through page-locked host
buffers. A model with a dynamic batch axis runs 1 to ``max_batch`` frames per call; the input
shape is set on the execution context only when the number of frames changes.

Threads: the retained primary CUDA context is pushed in ``__init__`` and popped in ``close``,
and both must run on the same thread, the inference thread (``InferenceWorker`` guarantees it);
TensorRT and pycuda objects are only valid where that context is current.

TensorRT's errors while loading go to the ``logger`` given; while running, to stderr, and a
refused call names TensorRT's reason in its ``InferenceError`` (``tensorrt_log``).

"Cannot run here" (no pycuda, no CUDA device, no TensorRT, a GPU the TensorRT flavour does not
support, e.g. TensorRT-RTX on an H100) raises ``BackendUnavailable``, so ``auto`` moves on to
the next backend; a bad model file raises ``ModelLoadError`` (``EngineBuildError``).
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable
from os import PathLike
from types import ModuleType

import numpy as np

from sgdn_ros.backends.base import (
    BackendUnavailable,
    DeviceMaps,
    InferenceBackend,
    InferenceError,
    ModelInfo,
    ModelLoadError,
    ModelOutputs,
    resolve_output_names,
    smaller_channel_size,
)
from sgdn_ros.backends.tensorrt.engine import CachedEngine, get_engine
from sgdn_ros.backends.tensorrt.errors import EngineUnrunnable, TensorRTUnavailable
from sgdn_ros.backends.tensorrt.module import load_tensorrt
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.backends.tensorrt.tensor_buffers import TensorBuffers, TensorSpec
from sgdn_ros.backends.tensorrt.tensorrt_log import explained, tensorrt_log
from sgdn_ros.gpu.cuda_context import CudaContext, GpuUnavailableError, import_pycuda_driver
from sgdn_ros.gpu.stream_capture import CapturedGraph, DriverStreamCapture
from sgdn_ros.models.metadata import read_model_metadata

Logger = Callable[[str], None]


def load_engine(onnx_path: str | PathLike[str], settings: EngineSettings,
                cache_dir: str | PathLike[str] | None = None, *, force_rebuild: bool = False,
                device: int = 0, logger: Logger = print) -> CachedEngine:
    """The deserialized engine, telling "this machine cannot run TensorRT" from a bad model.

    Raises ``BackendUnavailable`` when no TensorRT imports or when even a freshly built plan
    does not deserialize here (``EngineUnrunnable``); any other ``EngineBuildError`` is the
    model's fault and is re-raised unchanged.
    """
    try:
        return get_engine(onnx_path, settings, cache_dir, force_rebuild=force_rebuild,
                          deserialize=True, device=device, logger=logger)
    except TensorRTUnavailable as error:
        raise BackendUnavailable(f"the tensorrt backend cannot run here: {error}") from error
    except EngineUnrunnable as error:
        raise BackendUnavailable(f"the tensorrt backend cannot run here: {error}") from error


class TensorRTBackend(InferenceBackend):
    """An SGDN ONNX model run as a TensorRT engine (TensorRT 8.5-11 or TensorRT-RTX).

    ``precision`` "fp16" builds an FP16 engine (float32 inputs and outputs stay). ``name`` is
    ``tensorrt-<module>-<precision>``, e.g. ``tensorrt-tensorrt-fp16``. Create, use and
    ``close`` it on one thread (see the module docstring).

    GPU fast path (``sgdn_ros.pipeline.gpu_path``): ``infer_device`` runs the engine on planes the
    GPU preprocessor wrote and hands the output buffers' addresses to the GPU decoder, so no map
    crosses to the host.
    """

    def __init__(self, model_path: str | PathLike[str], *, precision: str = "fp32",
                 workspace_mb: int = 1024, cache_dir: str | PathLike[str] | None = None,
                 force_rebuild: bool = False, device: int = 0, max_batch: int = 1,
                 logger: Logger = print) -> None:
        path = pathlib.Path(model_path).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"model file not found: {path}; set the model_path parameter to an ONNX file")
        settings = EngineSettings(precision=precision, workspace_mb=workspace_mb,
                                  max_batch=max_batch)
        self._driver = _pycuda_driver()
        self._thread = threading.get_ident()
        self._stream = None
        self._execution = self._engine = self._runtime = None
        self._buffers: TensorBuffers | None = None
        self._bound_input = 0
        self._batch = 0
        self.cuda_device = device
        self._cuda: CudaContext | None = _pushed_context(device)
        try:
            self._load(path, settings, cache_dir, force_rebuild, device, logger)
        except BaseException:
            self._release()
            raise

    def _load(self, path: pathlib.Path, settings: EngineSettings,
              cache_dir: str | PathLike[str] | None, force_rebuild: bool, device: int,
              logger: Logger) -> None:
        cached = load_engine(path, settings, cache_dir, force_rebuild=force_rebuild,
                             device=device, logger=logger)
        self._runtime, self._engine = cached.runtime, cached.engine
        self.name = f"tensorrt-{cached.key.module}-{settings.precision}"
        trt = load_tensorrt()
        self._log = tensorrt_log(trt)
        with self._log.capture(logger) as errors:
            self._execution = self._engine.create_execution_context()
        if self._execution is None:
            raise BackendUnavailable(
                f"{cached.key.module} could not create an execution context for {path.name} on "
                f"{self._cuda.device_name}: the GPU is out of memory or not supported by this "
                f"TensorRT flavour (TensorRT-RTX needs an RTX GPU): {explained(errors)}")
        tensors = _engine_tensors(self._engine, self._execution, trt.module, path)
        self._info = _describe_engine(tensors, path)
        shape_of = {tensor.name: tensor.shape for tensor in tensors}
        self.device_channel_size = smaller_channel_size(shape_of[self._info.able_name],
                                                        shape_of[self._info.angle_name])
        self._batch = self._info.max_batch
        self._stream = self._driver.Stream()
        self._buffers = TensorBuffers(self._driver, tensors, self._stream, self._output_names)
        for tensor in tensors:
            self._bind(tensor.name, self._buffers.address(tensor.name))
        self._bound_input = self._buffers.address(self._info.input_name)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def _frame_shape(self) -> tuple[int, ...]:
        return self._info.input_shape[1:]

    @property
    def _output_names(self) -> tuple[str, str, str]:
        return self._info.able_name, self._info.angle_name, self._info.width_name

    def infer(self, planes: np.ndarray) -> ModelOutputs:
        """Run the frames from host memory; returns fresh host arrays (the pinned buffers are
        reused on the next call)."""
        self._check_planes(planes, closed=self._execution is None)
        started = time.perf_counter()
        input_name = self._info.input_name
        frames = planes.shape[0]
        try:
            self._buffers.upload(input_name, planes)
            self._execute(self._buffers.address(input_name), self._stream.handle, frames)
            able, angle, width = self._buffers.download(self._output_names, frames)
        except self._driver.Error as error:
            raise InferenceError(f"CUDA failed while running the TensorRT engine: {error}") \
                from error
        self.last_inference_seconds = time.perf_counter() - started
        return ModelOutputs(able, angle, width)

    def infer_device(self, planes_ptr: int, stream_handle: int, batch: int = 1) -> DeviceMaps:
        """Enqueue the engine on ``stream_handle`` reading the planes at ``planes_ptr``; the
        maps are the engine's own output buffers (see ``InferenceBackend.infer_device``).

        ``last_inference_seconds`` is the time to enqueue, not to run: only the caller knows
        when it synchronizes.
        """
        if self._execution is None:
            raise InferenceError("the backend is closed; create a new one to run inference")
        if not 1 <= batch <= self._info.max_batch:
            raise ValueError(f"batch must be 1 to {self._info.max_batch} (the engine's "
                             f"max_batch), got {batch}")
        started = time.perf_counter()
        try:
            self._execute(int(planes_ptr), int(stream_handle), batch)
        except self._driver.Error as error:
            raise InferenceError(f"CUDA failed while running the TensorRT engine: {error}") \
                from error
        self.last_inference_seconds = time.perf_counter() - started
        return DeviceMaps(*(self._buffers.address(name) for name in self._output_names))

    def _bind(self, name: str, address: int) -> None:
        if not self._execution.set_tensor_address(name, address):
            raise InferenceError(f"TensorRT refused the device address of tensor {name!r}: "
                                 f"{explained(self._log.take_errors())}")

    def _execute(self, input_address: int, stream_handle: int, frames: int) -> None:
        """Bind the input (only when its address changed), set its shape (only when the number
        of frames changed) and enqueue the engine."""
        if frames != self._batch:
            input_name = self._info.input_name
            if not self._execution.set_input_shape(input_name, (frames, *self._frame_shape)):
                raise InferenceError(
                    f"TensorRT refused {frames} frames for input {input_name!r}: "
                    f"{explained(self._log.take_errors())}")
            self._batch = frames
        if input_address != self._bound_input:
            self._bind(self._info.input_name, input_address)
            self._bound_input = input_address
        if not self._execution.execute_async_v3(stream_handle):
            raise InferenceError(
                "TensorRT failed to run the engine (execute_async_v3 returned False): "
                f"{explained(self._log.take_errors())}")

    def graph_capture_refusal(self) -> str | None:
        return None if self._execution is not None else "the backend is closed"

    def capture_graph(self, stream_handle: int, enqueue: Callable[[], None]) -> CapturedGraph:
        """Record the frame's work, ``execute_async_v3`` included, with the driver's stream
        capture: NVIDIA documents capturing an engine's enqueue once it has run with the same
        shapes and addresses (the frame graph's warm-up does that run). Not executed on these
        machines (no TensorRT engine runs here); the same recording of the GPU path's kernels
        is tested on the GPU machine (test/test_frame_graph.py)."""
        return DriverStreamCapture(stream_handle, enqueue)

    def close(self) -> None:
        """Free the buffers and the engine, then pop and release the CUDA context. Safe to call
        twice; must run on the thread that created the backend."""
        if self._cuda is None:
            return
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                "close the TensorRT backend on the thread that created it (its CUDA context is "
                "current there only); the InferenceWorker does this for the node")
        self._release()

    def _release(self) -> None:
        """Drop the execution context, the engine and the runtime, in that order (each depends
        on the next), and free the buffers while the CUDA context is still current; then pop and
        release it, even when freeing failed (a sticky CUDA error), which is raised after."""
        buffers, self._buffers = self._buffers, None
        self._execution = None
        self._engine = None
        self._runtime = None
        cuda, self._cuda = self._cuda, None
        try:
            if buffers is not None:
                buffers.free()
        finally:
            self._stream = None
            if cuda is not None:
                cuda.release()


def _pycuda_driver() -> ModuleType:
    try:
        return import_pycuda_driver()
    except GpuUnavailableError as error:
        raise BackendUnavailable(
            f"the tensorrt backend cannot run here: pycuda does not import "
            f"({error.__cause__}); pip install pycuda; needs a CUDA GPU") from error


def _pushed_context(device: int) -> CudaContext:
    """The device's primary context, current on this thread; released again if pushing fails."""
    try:
        context = CudaContext(device)
    except GpuUnavailableError as error:
        raise BackendUnavailable(f"the tensorrt backend needs a CUDA GPU: {error}") from error
    try:
        context.push()
    except BaseException:
        context.release()
        raise
    return context


def _engine_tensors(engine, execution, trt: ModuleType,
                    path: pathlib.Path) -> tuple[TensorSpec, ...]:
    """The engine's I/O tensors by name, float32, at the most frames one run takes: a dynamic
    batch axis is set to its profile's maximum on ``execution``, which then gives the outputs'
    shapes."""
    modes = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        modes[name] = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
    for name in (name for name, is_input in modes.items() if is_input):
        shape = tuple(int(size) for size in engine.get_tensor_shape(name))
        if shape[:1] == (-1,):
            largest = tuple(int(size) for size in engine.get_tensor_profile_shape(name, 0)[2])
            execution.set_input_shape(name, largest)
    tensors = []
    for name, is_input in modes.items():
        shape = tuple(int(size) for size in execution.get_tensor_shape(name))
        dtype = _numpy_dtype(trt, engine.get_tensor_dtype(name), name, path)
        if dtype != np.float32 or any(size < 0 for size in shape):
            raise ModelLoadError(
                f"{path.name}: engine tensor {name!r} is {dtype.name} {shape}; this backend "
                "feeds and reads float32 tensors, static but for the batch axis: export the "
                "model with a float32 input and outputs")
        tensors.append(TensorSpec(name, is_input, shape, dtype))
    return tuple(tensors)


def _numpy_dtype(trt: ModuleType, tensorrt_dtype, name: str, path: pathlib.Path) -> np.dtype:
    """The numpy dtype of an engine tensor; a type numpy lacks (bf16, fp8, ...: ``nptype``
    raises ``TypeError``) is the model's fault, reported like any other non-float32 tensor."""
    try:
        return np.dtype(trt.nptype(tensorrt_dtype))
    except TypeError:
        type_name = str(tensorrt_dtype).rsplit(".", 1)[-1].lower()
        raise ModelLoadError(
            f"{path.name}: engine tensor {name!r} is {type_name}, a type numpy has not; this "
            "backend feeds and reads float32 tensors: export the model with a float32 input "
            "and outputs") from None


def _describe_engine(tensors: tuple[TensorSpec, ...], path: pathlib.Path) -> ModelInfo:
    inputs = [tensor for tensor in tensors if tensor.is_input]
    outputs = [tensor for tensor in tensors if not tensor.is_input]
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{path.name} has {len(inputs)} inputs ({', '.join(t.name for t in inputs)}); an "
            "SGDN model has one: the image planes")
    model_input = inputs[0]
    if len(model_input.shape) != 4:
        raise ModelLoadError(
            f"{path.name}: input {model_input.name!r} has shape {model_input.shape}; expected "
            "(N, C, H, W) planes")
    # One frame's shapes, and what the ONNX file's metadata records (output names, input
    # kind, width units): an engine keeps the tensor names but not the metadata. ModelInfo
    # refuses an input kind whose channels differ from the engine's.
    metadata = read_model_metadata(path)
    shape_of = {tensor.name: (1, *tensor.shape[1:]) for tensor in outputs}
    able, angle, width = resolve_output_names(list(shape_of), list(shape_of.values()),
                                              metadata.output_names)
    return ModelInfo(
        input_name=model_input.name,
        input_shape=(1, *model_input.shape[1:]),
        able_name=able,
        angle_name=angle,
        width_name=width,
        num_angle_classes=shape_of[angle][1],
        width_channels=shape_of[width][1],
        output_height=shape_of[able][2],
        output_width=shape_of[able][3],
        max_batch=model_input.shape[0],
        input_kind=metadata.input_kind,
        width_units=metadata.width_units,
    )
