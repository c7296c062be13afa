"""SGDN in PyTorch: for machines with PyTorch and no TensorRT, and the reference the others match.

The checkpoint holds the network's configuration, so nothing about the model is guessed; the
network is fully convolutional, so the input size (a multiple of its output stride, 320 for the
published model) and the most frames per inference (``max_batch``) are the caller's choice. On
a CUDA GPU the backend can run in FP16 and replay the whole forward pass as a CUDA graph: one
graph per batch size, captured on that size's first inference, after which each inference is a
copy in, one replay and the copies out, with no Python per layer. ``compile`` runs
TorchInductor's kernels instead of the eager layers (``torch_compile``: compiled at load, cached
on disk); they are recorded by the same graphs. ``capture_graph`` records the network with the
GPU path's kernels into one graph per frame.

The network's angle and width maps reach the GPU path at their heads' size
(``device_channel_size``): its decoders read K logits at a few pixels and sample them there,
where upsampling all K planes cost ResNet-101 (K = 120, compiled, FP16) 0.09 ms of 1.39 at one
frame and 0.70 ms of 4.18 at eight on the H200. ``infer`` upsamples them as the network would.

The outputs are float32 whatever the precision (cast on the GPU, inside the graph), and each
``infer`` returns fresh arrays: the node may still hold the previous frame's maps for its
heatmap while the next frame runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from os import PathLike

import numpy as np
import torch
from torch import nn

from sgdn_ros.backends.base import (
    PRECISIONS,
    PUBLISHED_OUTPUT_NAMES,
    DeviceMaps,
    InferenceBackend,
    InferenceError,
    ModelInfo,
    ModelLoadError,
    ModelOutputs,
    resolve_output_names,
    smaller_channel_size,
)
from sgdn_ros.backends.torch_compile import HeadLogits, compile_cache_dir, compile_network
from sgdn_ros.core.depth_planes import input_kind_of_channels
from sgdn_ros.gpu.stream_capture import CapturedGraph, launch_graph
from sgdn_ros.network.checkpoint import load_checkpoint
from sgdn_ros.network.network import OUTPUT_STRIDE, SGDNConfig

INPUT_NAME = "input"
PUBLISHED_INPUT_SIZE = 320
_GRAPH_WARMUP_RUNS = 3

DeviceOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def resolve_torch_device(name: str) -> torch.device:
    """``auto``: the first CUDA GPU when PyTorch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but this PyTorch sees no CUDA GPU; "
                         "use device 'cpu' (or 'auto')")
    return device


class TorchBackend(InferenceBackend):
    """An SGDN checkpoint run by PyTorch on one device.

    ``precision`` "fp16" and ``cuda_graph`` need a CUDA device. ``name`` says what runs, e.g.
    ``torch-cuda-fp16-graph`` or ``torch-cpu-fp32``. ``config`` overrides the configuration
    stored in the checkpoint (for bare published ``state_dict`` files, which carry none).
    ``max_batch`` is how many frames one inference takes (``info.max_batch``); ``input_size``
    is the square input's side, which neither the checkpoint nor ``SGDNConfig`` records.
    ``compile``: TorchInductor, compiled here for every batch size up to ``max_batch`` and
    cached in ``compile_cache_dir`` (``torch_compile``); ``load_note`` says how long it took or
    why the eager network runs instead.
    """

    def __init__(self, checkpoint_path: str | PathLike[str], *, device: str = "auto",
                 precision: str = "fp32", cuda_graph: bool = False,
                 config: SGDNConfig | None = None, threads: int = 0, max_batch: int = 1,
                 input_size: int = PUBLISHED_INPUT_SIZE, compile: bool = False,
                 compile_cache_dir: str | PathLike[str] | None = None) -> None:
        target = _checked_target(device, precision, cuda_graph)
        _check_sizes(max_batch, input_size)
        if threads > 0 and target.type == "cpu":
            torch.set_num_threads(threads)  # process-wide: this backend is the process's only one
        model, model_config = load_checkpoint(checkpoint_path, config=config, map_location="cpu")
        self._start(model, model_config, target, precision, cuda_graph, max_batch, input_size)
        if compile:
            self._compile(compile_cache_dir)

    @classmethod
    def from_module(cls, model: nn.Module, config: SGDNConfig | None = None, *,
                    device: str = "auto", precision: str = "fp32", cuda_graph: bool = False,
                    max_batch: int = 1, input_size: int = PUBLISHED_INPUT_SIZE,
                    compile: bool = False,
                    compile_cache_dir: str | PathLike[str] | None = None) -> TorchBackend:
        """Run a network already in memory (random weights for benchmarks, a model in training).

        The backend takes the module over: it is moved, put in eval mode and, for fp16, halved.
        ``config`` defaults to the module's own ``config`` attribute.
        """
        model_config = config if config is not None else getattr(model, "config", None)
        if not isinstance(model_config, SGDNConfig):
            raise ValueError("pass the network's SGDNConfig: this module has no .config")
        target = _checked_target(device, precision, cuda_graph)
        _check_sizes(max_batch, input_size)
        backend = cls.__new__(cls)
        backend._start(model, model_config, target, precision, cuda_graph, max_batch,
                       input_size)
        if compile:
            backend._compile(compile_cache_dir)
        return backend

    def _start(self, model: nn.Module, config: SGDNConfig, device: torch.device,
               precision: str, cuda_graph: bool, max_batch: int, input_size: int) -> None:
        self.config = config
        self.device = device
        self._precision = precision
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        if device.type == "cuda":
            # One input shape per batch size for the life of the process: let cuDNN time its
            # kernels once for each.
            torch.backends.cudnn.benchmark = True
        # FP16 convolutions run on tensor cores in NHWC: channels-last saves their transposes
        # (ResNet-101, K = 120, H100, CUDA graph: 2.8 ms against 3.1 ms in NCHW); TF32 is
        # faster in NCHW.
        memory_format = (torch.channels_last if precision == "fp16"
                         else torch.contiguous_format)
        self._model: nn.Module | None = model.to(
            device=device, dtype=self._dtype, memory_format=memory_format).eval()
        input_shape = (1, config.input_channels, input_size, input_size)
        batch_shape = (max_batch, *input_shape[1:])
        # Frame i of a batch of N lies in slot i of these buffers; a CUDA graph of N frames
        # reads the first N slots, so every graph has a fixed input address.
        self._input: torch.Tensor | None = torch.zeros(
            batch_shape, device=device, dtype=self._dtype).contiguous(memory_format=memory_format)
        self._host_input: torch.Tensor | None = torch.zeros(
            batch_shape, dtype=torch.float32, pin_memory=device.type == "cuda")
        self._cuda_graph = cuda_graph
        self._capturing = False
        self._heads: HeadLogits | None = HeadLogits(self._model)
        self._network: Callable[[torch.Tensor], tuple] | None = self._heads
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, DeviceOutputs]] = {}
        self._device_outputs: DeviceOutputs | None = None
        if device.type == "cuda":
            self.cuda_device = device.index if device.index is not None \
                else torch.cuda.current_device()
        with torch.no_grad():
            heads = self._network(self._input[:1])
            shapes = [tuple(output.shape) for output in self._full_size(heads)]
        resolve_output_names(PUBLISHED_OUTPUT_NAMES, shapes)
        able_shape, angle_shape, width_shape = shapes
        self.device_channel_size = smaller_channel_size(able_shape, heads[1].shape)
        self._info = ModelInfo(
            input_name=INPUT_NAME, input_shape=input_shape,
            able_name=PUBLISHED_OUTPUT_NAMES[0], angle_name=PUBLISHED_OUTPUT_NAMES[1],
            width_name=PUBLISHED_OUTPUT_NAMES[2], num_angle_classes=angle_shape[1],
            width_channels=width_shape[1], output_height=able_shape[2],
            output_width=able_shape[3], max_batch=max_batch,
            input_kind=_input_kind(config.input_channels))
        self.name = f"torch-{device.type}-{precision}" + ("-graph" if cuda_graph else "")
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
        self.selection_reason = (
            f"PyTorch on {where}, {precision}" + (", CUDA graph" if cuda_graph else "")
            + (f", up to {max_batch} frames per inference" if max_batch > 1 else ""))

    def _compile(self, cache_dir: str | PathLike[str] | None) -> None:
        """Swap in the compiled network, warmed up for every batch size, or keep the eager one
        with the reason (``load_note``)."""
        examples = [self._input[:batch] for batch in range(1, self._info.max_batch + 1)]
        self._network, self.load_note = compile_network(
            self._heads, examples, compile_cache_dir(cache_dir))
        if self._network is not self._heads:
            self.name = self.name.replace(f"-{self._precision}", f"-{self._precision}-compiled")
            self.selection_reason += ", TorchInductor"

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _full_size(self, maps: DeviceOutputs) -> DeviceOutputs:
        """The angle and width maps upsampled to the able map's size, as the network's own
        ``forward`` ends."""
        if self._heads is None or not self._heads.heads_only:
            return maps
        able, angle, width = maps
        size = able.shape[-2:]
        with torch.no_grad():
            return able, self._model.upsample_head(angle, size), \
                self._model.upsample_head(width, size)

    def _graph_for(self, batch: int) -> tuple[torch.cuda.CUDAGraph, DeviceOutputs]:
        """The CUDA graph of ``batch`` frames on the input's first slots, captured on first use:
        warm up on a side stream (as capture requires), then record one forward pass."""
        if batch in self._graphs:
            return self._graphs[batch]
        inputs = self._input[:batch]
        with torch.cuda.device(self.device), torch.no_grad():
            side_stream = torch.cuda.Stream()
            side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side_stream):
                for _ in range(_GRAPH_WARMUP_RUNS):
                    self._network(inputs)
            torch.cuda.current_stream().wait_stream(side_stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._network(inputs)
        self._graphs[batch] = graph, outputs
        return graph, outputs

    def forward_on_device(self, inputs: torch.Tensor) -> DeviceOutputs:
        """Run (N, C, H, W) frames already on this backend's device, 1 <= N <= ``max_batch``;
        float32 logits with N first, angle and width at ``device_channel_size`` where set.

        With a CUDA graph the outputs are the graph's own buffers, overwritten by the next call
        of the same N: copy them to keep them. Used by ``infer`` and by the benchmark (the GPU
        time alone).
        """
        if self._model is None:
            raise InferenceError("the backend is closed; create a new one to run inference")
        batch = inputs.shape[0]
        self._check_batch_size(batch)
        if not self._cuda_graph or self._capturing:  # a frame graph records the layers
            with torch.no_grad():
                return self._network(inputs.to(self._dtype))
        graph_input = self._input[:batch]
        if inputs.data_ptr() != graph_input.data_ptr():
            graph_input.copy_(inputs)
        graph, outputs = self._graph_for(batch)
        with torch.cuda.device(self.device):
            graph.replay()
        return outputs

    def infer(self, planes: np.ndarray) -> ModelOutputs:
        self._check_planes(planes, closed=self._model is None)
        batch = planes.shape[0]
        started = time.perf_counter()
        host_input = self._host_input[:batch]
        host_input.numpy()[...] = planes
        on_gpu = self.device.type == "cuda"
        device_input = self._input[:batch]
        device_input.copy_(host_input, non_blocking=on_gpu)
        outputs = self._full_size(self.forward_on_device(device_input))
        if on_gpu:
            host_outputs = []
            for output in outputs:
                host = torch.empty(output.shape, dtype=torch.float32, pin_memory=True)
                host.copy_(output, non_blocking=True)
                host_outputs.append(host)
            torch.cuda.current_stream(self.device).synchronize()
            outputs = tuple(host_outputs)
        self.last_inference_seconds = time.perf_counter() - started
        return ModelOutputs(*(output.numpy() for output in outputs))

    def infer_device(self, planes_ptr: int, stream_handle: int, batch: int = 1) -> DeviceMaps:
        """Run on ``batch`` frames' planes in GPU memory, on the caller's CUDA stream
        (``ExternalStream``), so the GPU pre- and post-processing and the network share one
        stream in order. The maps are this backend's output tensors, kept alive until the next
        inference.

        ``last_inference_seconds`` is the time to enqueue, not to run (see the TensorRT backend).
        """
        if self.cuda_device is None:
            return super().infer_device(planes_ptr, stream_handle, batch)
        if self._model is None:
            raise InferenceError("the backend is closed; create a new one to run inference")
        self._check_batch_size(batch)
        started = time.perf_counter()
        stream = torch.cuda.ExternalStream(int(stream_handle), device=self.device)
        shape = (batch, *self._info.input_shape[1:])
        with torch.cuda.stream(stream):
            planes = torch.as_tensor(_CudaArrayView(int(planes_ptr), shape), device=self.device)
            device_input = self._input[:batch]
            device_input.copy_(planes)
            self._device_outputs = self.forward_on_device(device_input)
        self.last_inference_seconds = time.perf_counter() - started
        return DeviceMaps(*(output.data_ptr() for output in self._device_outputs))

    def graph_capture_refusal(self) -> str | None:
        if self.cuda_device is None:
            return "torch on the CPU has no CUDA graphs"
        return None

    def capture_graph(self, stream_handle: int, enqueue: Callable[[], None]) -> CapturedGraph:
        """Record ``enqueue`` with PyTorch's capture on the caller's stream, so the network's
        memory comes from the graph's private pool; the GPU path's pycuda kernels on the same
        stream are recorded with it. The network's layers are recorded directly (not this
        backend's own ``cuda_graph``)."""
        if self.cuda_device is None or self._model is None:
            return super().capture_graph(stream_handle, enqueue)
        stream = torch.cuda.ExternalStream(int(stream_handle), device=self.device)
        graph = torch.cuda.CUDAGraph()
        self._capturing = True
        try:
            with torch.cuda.device(self.device), torch.no_grad(), torch.cuda.graph(
                    graph, stream=stream, capture_error_mode="thread_local"):
                enqueue()
        finally:
            self._capturing = False
        return _TorchFrameGraph(graph, self._device_outputs)

    def _check_batch_size(self, batch: int) -> None:
        max_batch = self._info.max_batch
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= max_batch:
            raise ValueError(
                f"a batch of {batch!r} frames; {self.name} takes 1 to {max_batch} per inference "
                "(ModelInfo.max_batch): split them with sgdn_ros.pipeline.detector.batches, or "
                "load the backend with a larger max_batch")

    def close(self) -> None:
        if self._model is None:
            return
        self._graphs = {}
        self._device_outputs = None
        self._network = self._heads = None
        self._input = None
        self._host_input = None
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class _TorchFrameGraph:
    """A graph recorded by ``TorchBackend.capture_graph``, holding the network's outputs (in the
    graph's pool) for as long as it lives. Replayed with one driver call on its executable
    graph (the network draws no random numbers, so PyTorch's replay adds nothing it needs)."""

    def __init__(self, graph: torch.cuda.CUDAGraph, outputs: DeviceOutputs | None) -> None:
        self._graph, self._outputs = graph, outputs
        self._exec = graph.raw_cuda_graph_exec()

    def replay(self, stream_handle: int) -> None:
        if self._graph is None:
            raise InferenceError("the frame graph is closed")
        launch_graph(self._exec, stream_handle)

    def close(self) -> None:
        self._graph = self._outputs = None


class _CudaArrayView:
    """Float32 C-order memory at a raw device address, as PyTorch can wrap without a copy
    (the CUDA Array Interface, version 2: no stream, the caller orders the work)."""

    def __init__(self, pointer: int, shape: tuple[int, ...]) -> None:
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": "<f4", "data": (pointer, False), "strides": None,
            "version": 2}


def _input_kind(channels: int) -> str:
    kind = input_kind_of_channels(channels)
    if kind is None:
        raise ModelLoadError(
            f"the checkpoint's network takes {channels} input channel(s); the detector feeds 1 "
            "(depth), 3 (B, G, R) or 4 (depth, B, G, R)")
    return kind


def _check_sizes(max_batch: int, input_size: int) -> None:
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive integer (frames per inference), got "
                         f"{max_batch!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) \
            or input_size < OUTPUT_STRIDE or input_size % OUTPUT_STRIDE:
        raise ValueError(
            f"input_size must be a positive multiple of {OUTPUT_STRIDE} (the network's output "
            f"stride; published: {PUBLISHED_INPUT_SIZE}), got {input_size!r}")


def _checked_target(device: str, precision: str, cuda_graph: bool) -> torch.device:
    """The device to run on, once the precision and graph settings are known to work there."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    target = resolve_torch_device(device)
    if target.type != "cuda":
        if precision == "fp16":
            raise ValueError(
                f"precision 'fp16' needs a CUDA GPU, but the backend runs on {target} (PyTorch's "
                "CPU convolutions in half precision are slow or missing); use precision 'fp32'")
        if cuda_graph:
            raise ValueError(
                f"cuda_graph needs a CUDA GPU, but the backend runs on {target}; "
                "leave cuda_graph off on the CPU")
    return target
