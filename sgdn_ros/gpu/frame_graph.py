"""One CUDA graph per frame: upload, preprocessing, network and decoding recorded once, replayed.

For one group of frames of fixed encodings, sizes and row strides (and so a fixed batch size),
``FrameGraph`` enqueues everything a frame needs on one stream, without a synchronisation:

1. the window the crop reads (``CropWindow``), from a fixed page-locked host buffer per frame,
   to the GPU;
2. the preprocessing kernel into the batch's input planes (``GpuPreprocessor``);
3. the network (``infer``: the backend's ``infer_device`` on the same stream);
4. per frame, the candidate kernel (local maxima above the threshold, or the best pixel) and
   ``select_top``, which ranks the candidates and writes the best ``TOP_CANDIDATES`` with their
   angle class and width logit into a fixed-size record (``sgdn_ros.gpu.candidates``);
5. the records' copy back to page-locked host memory (2 KB a frame).

It runs these once (the warm-up that CUDA graphs and cuDNN need), records them with the
``capture`` it is given (the backend's: see ``sgdn_ros.gpu.stream_capture``) and from then on a
frame is: its bytes copied into the host buffer (``load``), one graph launch and one
synchronisation (``replay``). The
decode settings a frame may change at run time (mode, threshold, distance) are read by the
kernels from device memory that the graph itself fills from a page-locked copy, so new
settings need no new capture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, logit
from sgdn_ros.core.frames import RawImage
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import threshold_in
from sgdn_ros.gpu.buffers import device_pointer
from sgdn_ros.gpu.candidates import TOP_CANDIDATES, record_ints
from sgdn_ros.gpu.cuda_context import import_pycuda_driver
from sgdn_ros.gpu.decode_source import DECODE_SOURCE, channel_planes_size, frame_map_addresses
from sgdn_ros.gpu.launch import BLOCK_2D, compile_kernels, grid_2d
from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor
from sgdn_ros.gpu.stream_capture import CapturedGraph

if TYPE_CHECKING:
    from pycuda.driver import Stream

_MODES = {"peaks": 0, "max": 1}
_SELECT_THREADS = 128
_SELECT_BLOCKS = 64  # 256 warps: more than the candidates a frame usually has
_REDUCTION_THREADS = 1024

_GRAPH_SOURCE = r"""
/* params: mode (0 peaks, 1 max), radius, threshold logit bits: written per frame by the graph. */
__global__ void graph_local_maxima(
    const float* able, int height, int width, const int* params, int capacity, int* count,
    int* candidates)
{
    if (params[0] == 0) {
        local_maximum_at(able, height, width, params[1], __int_as_float(params[2]), capacity,
                         count, candidates);
    }
}

__global__ void graph_global_max(const float* able, int size, const int* params, int* count,
                                 int* candidates)
{
    if (params[0] == 1) block_global_max(able, size, __int_as_float(params[2]), count, candidates);
}

/* Each stored candidate counts the candidates ranked before it (logit descending, ties by
   pixel index); the best top_n write (index, logit bits, angle class, width bits) at their
   rank. record[0] is the number found, which may exceed capacity (then only capacity were
   stored, and the host decodes the frame step by step). One warp per candidate, the warps
   striding over them (the count is known only on the GPU): its lanes count and read the
   angle logits together, so the loads are in flight at once. */
__global__ void select_top(
    const float* angle, const float* width_maps, int height, int width, int channel_height,
    int channel_width, int num_classes, int width_per_class, const int* count,
    const int* candidates, int capacity, int top_n, int* record)
{
    int lane = threadIdx.x % 32;
    int warps = gridDim.x * blockDim.x / 32;
    int found = *count;
    int stored = min(found, capacity);
    if (blockIdx.x == 0 && threadIdx.x == 0) record[0] = found;
    for (int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32; i < stored; i += warps) {
        int index = candidates[2 * i];
        float value = __int_as_float(candidates[2 * i + 1]);
        int rank = 0;
        for (int j = lane; j < stored; j += 32) {
            float other = __int_as_float(candidates[2 * j + 1]);
            if (other > value || (other == value && candidates[2 * j] < index)) ++rank;
        }
        for (int offset = 16; offset > 0; offset /= 2) {
            rank += __shfl_xor_sync(0xffffffff, rank, offset);
        }
        if (rank >= top_n) continue;
        int* entry = record + 1 + 4 * rank;
        if (lane == 0) {
            entry[0] = index;
            entry[1] = candidates[2 * i + 1];
        }
        warp_grasp_channels(angle, width_maps, index, height, width, channel_height,
                            channel_width, num_classes, width_per_class, &entry[2], &entry[3]);
    }
}
"""


class GraphKernels:
    """The frame graph's decoding kernels and the decode settings they read, shared by every
    ``FrameGraph`` of one GPU path (one stream, one map size). ``channel_size``: the angle and
    width maps' (height, width), as for ``GpuDecoder``."""

    def __init__(self, stream: Stream, height: int, width: int, num_angle_classes: int,
                 width_channels: int, capacity: int = 4096,
                 channel_size: tuple[int, int] | None = None) -> None:
        driver = import_pycuda_driver()
        self._driver, self.stream = driver, stream
        self.height, self.width = height, width
        self.num_angle_classes, self.width_channels = num_angle_classes, width_channels
        self.channel_size = channel_planes_size(channel_size, height, width)
        self.capacity = capacity
        self._module = compile_kernels(DECODE_SOURCE + _GRAPH_SOURCE)
        self._local_maxima = self._module.get_function("graph_local_maxima")
        self._local_maxima.prepare("PiiPiPP")
        self._global_max = self._module.get_function("graph_global_max")
        self._global_max.prepare("PiPPP")
        self._select = self._module.get_function("select_top")
        self._select.prepare("PPiiiiiiPPiiP")
        self._host_params = driver.pagelocked_empty(3, np.int32)
        self._params = driver.mem_alloc(self._host_params.nbytes)
        self._decode: DecodeConfig | None = None

    def set_decode(self, config: DecodeConfig) -> None:
        """The settings the next replay reads (the previous replay has finished); unchanged
        settings are not converted again."""
        if config == self._decode:
            return
        self._decode = config
        threshold = threshold_in(np.dtype(np.float32), logit(config.confidence_threshold))
        self._host_params[0] = _MODES[config.mode]
        self._host_params[1] = min(config.min_distance, max(self.height, self.width))
        self._host_params[2] = np.float32(threshold).view(np.int32)

    def enqueue_decode(self, maps: Sequence[int], frame: int, count: int, candidates: int,
                       record: int) -> None:
        """Find, rank and read frame ``frame``'s candidates of the batched ``maps`` into
        ``record`` (device addresses; ``count`` zeroed before)."""
        plane = self.height * self.width
        able, angle, width = frame_map_addresses(
            maps, frame, (self.height, self.width), self.channel_size, self.num_angle_classes,
            self.width_channels)
        params = device_pointer(self._params)
        self._local_maxima.prepared_async_call(
            grid_2d(self.height, self.width), BLOCK_2D, self.stream, able,
            np.int32(self.height), np.int32(self.width), params, np.int32(self.capacity),
            count, candidates)
        self._global_max.prepared_async_call(
            (1, 1), (_REDUCTION_THREADS, 1, 1), self.stream, able, np.int32(plane), params,
            count, candidates)
        self._select.prepared_async_call(
            (_SELECT_BLOCKS, 1), (_SELECT_THREADS, 1, 1), self.stream,
            angle, width, np.int32(self.height), np.int32(self.width),
            *map(np.int32, self.channel_size), np.int32(self.num_angle_classes),
            np.int32(self.width_channels > 1), count, candidates, np.int32(self.capacity),
            np.int32(TOP_CANDIDATES), record)

    def enqueue_params(self) -> None:
        """Copy the settings to the GPU: recorded in the graph, so each replay reads the
        page-locked values of that moment."""
        self._driver.memcpy_htod_async(self._params, self._host_params, self.stream)

    def close(self) -> None:
        if self._module is None:
            return
        self._params.free()
        self._host_params.base.free()
        self._module = self._local_maxima = self._global_max = self._select = None
        self.stream = None


class FrameGraph:
    """One group's frames (``templates``: encoding, size and row stride fixed) as one graph.

    ``infer(planes_ptr, batch)`` enqueues the network on the stream and returns the maps'
    device addresses; ``capture(enqueue)`` records ``enqueue``'s stream work as a
    ``CapturedGraph``. Create, run and close on the inference thread, context pushed.
    """

    def __init__(self, kernels: GraphKernels, preprocessor: GpuPreprocessor,
                 templates: Sequence[RawImage], geometries: Sequence[CropGeometry],
                 infer: Callable[[int, int], Sequence[int]],
                 capture: Callable[[Callable[[], None]], CapturedGraph],
                 config: DecodeConfig) -> None:
        driver = import_pycuda_driver()
        self._driver, self._kernels, self._preprocessor = driver, kernels, preprocessor
        self._templates, self.geometries = list(templates), list(geometries)
        self._infer = infer
        self._windows = [preprocessor.window_needed(image, geometry)
                         for image, geometry in zip(self._templates, self.geometries)]
        self._host_raw = [driver.pagelocked_empty(max(window.nbytes, 1), np.uint8)
                          for window in self._windows]
        self._raw = [driver.mem_alloc(host.nbytes) for host in self._host_raw]
        batch = len(self._templates)
        self._counts = driver.mem_alloc(4 * batch)
        self._candidates = driver.mem_alloc(8 * kernels.capacity * batch)
        self._host_records = driver.pagelocked_empty((batch, record_ints()), np.int32)
        self._records = driver.mem_alloc(self._host_records.nbytes)
        self.maps: Sequence[int] = ()
        self._graph: CapturedGraph | None = None
        try:
            self.load(self._templates, config)
            self._enqueue()
            kernels.stream.synchronize()
            self._graph = capture(self._enqueue)
        except BaseException:
            kernels.stream.synchronize()
            self.close()
            raise

    @property
    def record_bytes(self) -> int:
        """Bytes copied back per frame."""
        return self._host_records.itemsize * self._host_records.shape[1]

    def load(self, images: Sequence[RawImage], config: DecodeConfig) -> None:
        """Put the frames' bytes and the decode settings where the next replay reads them.
        The images must match the templates' encodings, sizes and row strides (the caller
        keys its graphs on them)."""
        for image, host, window in zip(images, self._host_raw, self._windows):
            window.copy(image, host)
        self._kernels.set_decode(config)

    def _enqueue(self) -> None:
        """Everything a group needs, on the stream, with no synchronisation."""
        stream, kernels = self._kernels.stream, self._kernels
        kernels.enqueue_params()
        for frame, (image, geometry, host, raw, window) in enumerate(zip(
                self._templates, self.geometries, self._host_raw, self._raw, self._windows)):
            self._driver.memcpy_htod_async(raw, host, stream)
            self._preprocessor.enqueue_planes(device_pointer(raw), window, geometry,
                                              image.layout, frame)
        self.maps = self._infer(self._preprocessor.planes_ptr, len(self._templates))
        self._driver.memset_d32_async(self._counts, 0, len(self._templates), stream)
        for frame in range(len(self._templates)):
            kernels.enqueue_decode(
                self.maps, frame, device_pointer(self._counts) + 4 * frame,
                device_pointer(self._candidates) + 8 * kernels.capacity * frame,
                device_pointer(self._records) + self.record_bytes * frame)
        self._driver.memcpy_dtoh_async(self._host_records, self._records, stream)

    def replay(self) -> np.ndarray:
        """Replay on the loaded frames and wait: their records, (batch, ``record_ints()``)
        int32, valid until the next replay."""
        self._graph.replay(self._kernels.stream.handle)
        self._kernels.stream.synchronize()
        return self._host_records

    def close(self) -> None:
        """Free the graph and the buffers (the stream must be idle: ``replay`` waits); safe to
        call twice."""
        if self._records is None:
            return
        if self._graph is not None:
            self._graph.close()
        self._graph = None
        for allocation in (*self._raw, self._counts, self._candidates, self._records):
            allocation.free()
        for host in (*self._host_raw, self._host_records):
            host.base.free()
        self._raw, self._host_raw, self._templates = [], [], []
        self._counts = self._candidates = self._records = self._host_records = None
