"""SGDN on ONNX Runtime: CUDA when onnxruntime-gpu can use it, the CPU otherwise.

Everything about the model is checked while loading: one float input (N, C, H, W) with static
channels and size, SGDN's three outputs found by name, and the SGDN metadata the file carries
(``sgdn_ros.models.metadata``) against the graph, its ``input_kind`` (colour, depth or both)
against C among the rest. The batch N is 1, or a symbolic axis: then one
``infer`` takes up to ``max_batch`` frames. Output dimensions left symbolic are learnt from one
run on zeros, so ``info`` is always fully static.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from os import PathLike

import numpy as np
import onnxruntime as ort

from sgdn_ros.backends.base import (
    DEFAULT_MAX_BATCH,
    InferenceBackend,
    InferenceError,
    ModelInfo,
    ModelLoadError,
    ModelOutputs,
    resolve_output_names,
)
from sgdn_ros.core.checks import require_int
from sgdn_ros.models.metadata import ModelMetadata, check_against_graph, parse_metadata

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(double)": np.float64}
_OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_BATCH_ADVICE = ("; a model whose batch axis is declared dynamic but cannot take several "
                 "frames runs with max_batch 1, or re-export it with `sgdn-ros export`")


@dataclass(frozen=True)
class SessionTuning:
    """How the ONNX Runtime session runs; the defaults are the settings chosen for the small
    CPUs the node runs on, measured on 2 cores by ``sgdn-ros bench`` (docs/performance.md:
    each alternative against them in one run, alone and beside a busy process).

    - ``spinning`` on (ONNX Runtime's default): the pool threads busy-wait between the
      parallel parts of a run. Turned off, inference alone ran faster in the bench (spinning
      was 1.2-1.8x slower there), but in the node under a camera flood the latency from frame
      to grasps rose past its bound (test_a_flood_of_frames_is_dropped_not_queued: a 1.3-1.9 s
      maximum against 0.85 s; on again: within it), so the node keeps the default.
    - Sequential execution, one inter-op thread: SGDN is a chain of layers, the parallel
      executor has nothing to overlap (1.1-2.4x slower).
    - Graph optimisation ``all``: its NCHWc layout is what makes the convolutions fast on the
      CPU (``extended`` and ``basic`` were slower in 28 of 32 comparisons).
    - Memory arena and memory pattern: ONNX Runtime's default, on (off: no consistent
      difference).

    ``intra_op_threads`` 0 lets ONNX Runtime choose: one per physical core.
    """

    intra_op_threads: int = 0
    spinning: bool = True
    parallel: bool = False
    optimization: str = "all"
    memory_arena: bool = True
    memory_pattern: bool = True

    def session_options(self) -> ort.SessionOptions:
        require_int("intra_op_threads", self.intra_op_threads, 0)
        if self.optimization not in _OPTIMIZATION_LEVELS:
            raise ValueError(f"optimization must be one of {', '.join(_OPTIMIZATION_LEVELS)}, "
                             f"got {self.optimization!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 2 if self.parallel else 1
        options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if self.parallel
                                  else ort.ExecutionMode.ORT_SEQUENTIAL)
        options.graph_optimization_level = _OPTIMIZATION_LEVELS[self.optimization]
        options.enable_cpu_mem_arena = self.memory_arena
        options.enable_mem_pattern = self.memory_pattern
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if self.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning",
                                         "1" if self.spinning else "0")
        return options


class OnnxRuntimeBackend(InferenceBackend):
    """An ONNX model loaded into an ONNX Runtime session.

    ``providers`` lists the execution providers the session really uses, most preferred first;
    ``name`` is ``onnxruntime-cuda`` when CUDA is among them, else ``onnxruntime-cpu``.
    ``intra_op_threads`` = 0 lets ONNX Runtime choose (one per physical core); ``tuning`` the
    rest of the session's settings (``SessionTuning``: its defaults unless measuring them;
    its own ``intra_op_threads`` is replaced by the argument), which the session reports back
    as ``session_options``. ``max_batch``
    is the most frames one ``infer`` takes when the model's batch axis is dynamic (default
    ``DEFAULT_MAX_BATCH``, 8: it bounds the output memory, under 1 GB at K = 120, and covers
    one frame per camera of a multi-camera rig); a static batch-1 model takes 1 whatever it
    says. ``metadata`` is what the file says about itself, checked against the graph.
    """

    def __init__(self, model_path: str | PathLike[str], *, intra_op_threads: int = 0,
                 prefer_gpu: bool = True, max_batch: int = DEFAULT_MAX_BATCH,
                 tuning: SessionTuning = SessionTuning()) -> None:
        require_int("max_batch", max_batch, 1)
        options = replace(tuning, intra_op_threads=intra_op_threads).session_options()
        path = pathlib.Path(model_path).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"model file not found: {path}; set the model_path parameter to an ONNX file")
        requested = [CPU_PROVIDER]
        if prefer_gpu and CUDA_PROVIDER in ort.get_available_providers():
            requested.insert(0, CUDA_PROVIDER)
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=options, providers=requested)
        except Exception as error:  # ONNX Runtime's errors share no base class but Exception
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ModelLoadError(
                f"cannot load {path} as an ONNX model ({reason}); check that it is a complete "
                ".onnx export, not a truncated copy or another file format") from error
        self.session_options: ort.SessionOptions = self._session.get_session_options()
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())
        self.name = "onnxruntime-cuda" if CUDA_PROVIDER in self.providers else "onnxruntime-cpu"
        self.metadata: ModelMetadata = parse_metadata(
            self._session.get_modelmeta().custom_metadata_map, str(path))
        self._info = _describe_model(self._session, path, self.metadata, max_batch)
        self._output_order = [self._info.able_name, self._info.angle_name, self._info.width_name]

    @property
    def info(self) -> ModelInfo:
        return self._info

    def infer(self, planes: np.ndarray) -> ModelOutputs:
        self._check_planes(planes, closed=self._session is None)
        started = time.perf_counter()
        try:
            able, angle, width = self._session.run(
                self._output_order, {self._info.input_name: np.ascontiguousarray(planes)})
        except Exception as error:  # ONNX Runtime's errors share no base class but Exception
            advice = _BATCH_ADVICE if len(planes) > 1 else ""
            raise InferenceError(f"ONNX Runtime failed to run the model on {len(planes)} "
                                 f"frame(s): {error}{advice}") from error
        self.last_inference_seconds = time.perf_counter() - started
        if any(len(maps) != len(planes) for maps in (able, angle, width)):
            raise InferenceError(
                f"the model returned maps of {len(able)} frame(s) for {len(planes)}"
                f"{_BATCH_ADVICE}")
        return ModelOutputs(*(np.asarray(maps, dtype=np.float32) for maps in (able, angle, width)))

    def close(self) -> None:
        self._session = None


def _describe_model(session: ort.InferenceSession, path: pathlib.Path,
                    metadata: ModelMetadata, max_batch: int) -> ModelInfo:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); an SGDN "
            "model has one: the image planes")
    input_shape, dynamic_batch = _frame_input_shape(inputs[0], path)
    outputs = session.get_outputs()
    for output in outputs:
        if output.type not in _FLOAT_TYPES:
            raise ModelLoadError(
                f"{path}: output {output.name!r} is {output.type}; SGDN outputs float logits")
    shapes: Sequence[Sequence[object]] = [_frame_shape(output.shape) for output in outputs]
    if not all(isinstance(dim, int) for shape in shapes for dim in shape):
        shapes = _shapes_from_a_run(session, inputs[0], input_shape, path)
    names = [output.name for output in outputs]
    shape_of = dict(zip(names, shapes))
    check_against_graph(metadata, input_shape, shape_of, str(path))
    able_name, angle_name, width_name = resolve_output_names(names, shapes,
                                                             metadata.output_names)
    return ModelInfo(
        input_name=inputs[0].name,
        input_shape=input_shape,
        able_name=able_name,
        angle_name=angle_name,
        width_name=width_name,
        num_angle_classes=int(shape_of[angle_name][1]),
        width_channels=int(shape_of[width_name][1]),
        output_height=int(shape_of[able_name][2]),
        output_width=int(shape_of[able_name][3]),
        max_batch=max_batch if dynamic_batch else 1,
        input_kind=metadata.input_kind,
        width_units=metadata.width_units,
    )


def _frame_shape(shape: Sequence[object]) -> tuple[object, ...]:
    """One frame's shape: a symbolic batch dimension becomes 1."""
    if shape and not isinstance(shape[0], int):
        return (1, *shape[1:])
    return tuple(shape)


def _frame_input_shape(node: ort.NodeArg,
                       path: pathlib.Path) -> tuple[tuple[int, int, int, int], bool]:
    """One frame's input shape (1, C, H, W), and whether the batch dimension is symbolic; C
    is checked against the model's input_kind with the rest of its metadata."""
    if node.type != "tensor(float)":
        raise ModelLoadError(
            f"{path}: input {node.name!r} is {node.type}; this pipeline feeds float32 planes, "
            "export the model with a float32 input")
    shape = list(node.shape)
    if len(shape) != 4:
        raise ModelLoadError(
            f"{path}: input {node.name!r} has shape {shape}; expected 4 dimensions "
            "(N, C, H, W): a batch of images as planes")
    batch, channels, height, width = shape
    if not all(isinstance(dim, int) for dim in (channels, height, width)):
        raise ModelLoadError(
            f"{path}: input {node.name!r} has dynamic dimensions {shape}; only the batch may "
            "be dynamic: export the model with a static input size such as (N, 3, 320, 320)")
    if isinstance(batch, int) and batch != 1:
        raise ModelLoadError(
            f"{path}: input {node.name!r} has a fixed batch size {batch}; export the model "
            "with batch size 1 or a dynamic batch axis (what `sgdn-ros export` writes)")
    return (1, channels, height, width), not isinstance(batch, int)


def _shapes_from_a_run(session: ort.InferenceSession, node: ort.NodeArg,
                       input_shape: tuple[int, ...], path: pathlib.Path) -> list[tuple[int, ...]]:
    """Learn output shapes that the model leaves symbolic by running it once on zeros."""
    try:
        results = session.run(None, {node.name: np.zeros(input_shape, dtype=np.float32)})
    except Exception as error:  # ONNX Runtime's errors share no base class but Exception
        raise ModelLoadError(
            f"{path}: its output shapes are dynamic and a trial run on zeros of shape "
            f"{input_shape} failed ({error}); export the model with static shapes") from error
    return [tuple(result.shape) for result in results]
