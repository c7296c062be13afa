"""The GPU path's frame graphs (``sgdn_ros.gpu.frame_graph``): one per group layout.

A group's layout is each frame's encoding, size and row stride; its graph is recorded on the
group's first frames and replayed for every later group of the same layout. A camera sends one
layout, so a node holds one graph per camera arrangement; at most ``MAX_GRAPHS`` are kept (the
oldest is freed), since each holds the network's activations for its batch size.

Frames the preprocessing kernel does not convert (16-bit encodings, the resize policy) and
backends that cannot be recorded go step by step (``GpuPath``), as does any group after a
recording failed once (``disabled_reason`` says why).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.frames import RawImage, bgr_as_raw_image
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, crop_geometry
from sgdn_ros.gpu.candidates import Decoded, decoded_candidates
from sgdn_ros.gpu.frame_graph import FrameGraph, GraphKernels
from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor

MAX_GRAPHS = 4

LayoutKey = tuple[tuple[str, int, int, int], ...]


@dataclass
class GraphedGroup:
    """What one replay gave: per frame the decoded grasps (None: decode that frame step by
    step on ``maps``), and the times of the host copy and of the replay."""

    maps: Sequence[int]
    geometries: list[CropGeometry]
    decoded: list[Decoded | None]
    record_bytes: int
    load_seconds: float
    replay_seconds: float


class FrameGraphs:
    """Records and replays the frame graphs of one ``GpuPath`` (its stream and buffers)."""

    def __init__(self, backend: InferenceBackend, stream: object, preprocessor: GpuPreprocessor,
                 preprocess_config: PreprocessConfig) -> None:
        info = backend.info
        self._backend, self._stream = backend, stream
        self._preprocessor, self._preprocess_config = preprocessor, preprocess_config
        self._kernels = GraphKernels(stream, info.output_height, info.output_width,
                                     info.num_angle_classes, info.width_channels,
                                     channel_size=backend.device_channel_size)
        self._graphs: OrderedDict[LayoutKey, FrameGraph] = OrderedDict()
        self.disabled_reason: str | None = None

    def run(self, images: Sequence[object], config: DecodeConfig) -> GraphedGroup | None:
        """The group through its graph, or None when it must go step by step."""
        if self.disabled_reason is not None:
            return None
        raws = [image if isinstance(image, RawImage) else bgr_as_raw_image(image)
                for image in images]
        key = tuple((raw.encoding, raw.height, raw.width, raw.step) for raw in raws)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._record(key, raws, config)
            if graph is None:
                return None
        else:
            self._graphs.move_to_end(key)
        started = time.perf_counter()
        graph.load(raws, config)
        loaded = time.perf_counter()
        records = graph.replay()
        replayed = time.perf_counter()
        capacity = self._kernels.capacity
        decoded = [decoded_candidates(record, self._kernels.width, capacity, config)
                   for record in records]
        return GraphedGroup(graph.maps, graph.geometries, decoded, graph.record_bytes,
                            loaded - started, replayed - loaded)

    def _record(self, key: LayoutKey, raws: list[RawImage], config: DecodeConfig
                ) -> FrameGraph | None:
        """A new layout's graph (a graph keeps its layout's crop geometries, so a replay
        computes none), or None for frames the kernel does not convert or a failed
        recording."""
        geometries = [crop_geometry(raw.height, raw.width, self._preprocess_config)
                      for raw in raws]
        if any(raw.layout.bytes_per_channel != 1 or geometry.scale != 1.0
               for raw, geometry in zip(raws, geometries)):
            return None
        if len(self._graphs) >= MAX_GRAPHS:
            self._graphs.popitem(last=False)[1].close()
        handle = self._stream.handle
        try:
            graph = FrameGraph(
                self._kernels, self._preprocessor, raws, geometries,
                lambda planes_ptr, batch: self._backend.infer_device(planes_ptr, handle, batch),
                lambda enqueue: self._backend.capture_graph(handle, enqueue), config)
        except Exception as error:  # noqa: BLE001 - any failure to record means step by step
            self.disabled_reason = (
                f"recording the frame graph failed ({type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); "
                "frames go step by step")
            return None
        self._graphs[key] = graph
        return graph

    def close(self) -> None:
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()
        self._kernels.close()

