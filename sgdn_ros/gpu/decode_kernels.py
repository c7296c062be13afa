"""Grasp decoding of the network's output maps on the GPU, so only a few KB cross PCIe.

The CPU path copies the 1 + 2K output maps to the host (about 99 MB at K = 120) to decode a
handful of grasps. Here a kernel finds the candidate pixels on the able map; only those
candidates and, for the chosen grasps, their angle class and width logit come back. The grasps
equal ``sgdn_ros.core.decoding.decode_grasps``. Maps of a batch hold the frames one after the
other; frame i is decoded in place, at its offset, without copying the maps.

All work runs on one non-default stream through page-locked host buffers; create and use the
decoder on the inference thread with its ``CudaContext`` pushed, and ``close`` it there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, Grasp, logit
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import find_peaks, keep_apart, threshold_in
from sgdn_ros.gpu.buffers import FLOAT32_BYTES, DeviceBuffer, PinnedBuffer, device_pointer
from sgdn_ros.gpu.candidates import grasps_from_decoded
from sgdn_ros.gpu.cuda_context import import_pycuda_driver
from sgdn_ros.gpu.decode_source import (
    DECODE_SOURCE,
    channel_planes_size,
    frame_map_addresses,
    frame_offset_bytes,
)
from sgdn_ros.gpu.errors import GpuProcessingError, check_positive_ints
from sgdn_ros.gpu.launch import BLOCK_2D, blocks, compile_kernels, grid_2d

if TYPE_CHECKING:
    from pycuda.driver import Stream

_REDUCTION_THREADS = 1024
WARP = 32
_GATHER_THREADS = 128
_SIGMOID_THREADS = 256


class GpuDecoder:
    """The three output maps on the GPU -> at most N grasps per frame, copying back a few KB.

    Pointers are device addresses of contiguous float32 maps of one frame or of a batch:
    able (N, 1, H, W), angle (N, K, h, w), width (N, K or 1, h, w); ``frame`` picks the frame.
    (h, w) is ``channel_size`` (the backend's ``device_channel_size``), (H, W) when None.
    NaN logits in the able map are not supported in "peaks" mode (the CPU's dilation does not
    define them either).
    """

    def __init__(self, stream: Stream, height: int, width: int, num_angle_classes: int,
                 width_channels: int, max_candidates: int = 4096,
                 channel_size: tuple[int, int] | None = None) -> None:
        check_positive_ints(height=height, width=width, num_angle_classes=num_angle_classes,
                            max_candidates=max_candidates)
        if width_channels not in (1, num_angle_classes):
            raise GpuProcessingError(
                f"width_channels must be 1 or num_angle_classes ({num_angle_classes}), got "
                f"{width_channels!r}")
        driver = import_pycuda_driver()
        self._driver = driver
        self._stream = stream
        self.height, self.width = height, width
        self.num_angle_classes, self.width_channels = num_angle_classes, width_channels
        self.channel_size = channel_planes_size(channel_size, height, width)
        self.max_candidates = max_candidates
        self._module = compile_kernels(DECODE_SOURCE)
        self._local_maxima = self._module.get_function("find_local_maxima")
        self._local_maxima.prepare("PiiifiPP")
        self._global_max = self._module.get_function("find_global_max")
        self._global_max.prepare("PifPP")
        self._read_channels = self._module.get_function("read_grasp_channels")
        self._read_channels.prepare("PPPiiiiiiiP")
        self._sigmoid = self._module.get_function("sigmoid_map")
        self._sigmoid.prepare("PPi")
        self._count = driver.mem_alloc(4)
        self._candidates = driver.mem_alloc(8 * max_candidates)
        self._pixels = DeviceBuffer(driver, stream)
        self._results = DeviceBuffer(driver, stream)
        self._confidences = driver.mem_alloc(FLOAT32_BYTES * height * width)
        self._host_count = driver.pagelocked_empty(1, np.int32)
        self._host_candidates = PinnedBuffer(driver, np.int32)
        self._host_pixels = PinnedBuffer(driver, np.int32)
        self._host_results = PinnedBuffer(driver, np.int32)
        self._host_map = PinnedBuffer(driver, np.float32)
        self._bytes_copied = 0

    def frame_maps(self, able_ptr: object, angle_ptr: object, width_ptr: object,
                   frame: int) -> tuple[int, int, int]:
        """Device addresses of frame ``frame``'s able, angle and width maps in a batch."""
        return frame_map_addresses((able_ptr, angle_ptr, width_ptr), frame,
                                   (self.height, self.width), self.channel_size,
                                   self.num_angle_classes, self.width_channels)

    def decode(self, able_ptr: object, angle_ptr: object, width_ptr: object,
               config: DecodeConfig, frame: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, angle_classes, able_logits, width_logits) of frame ``frame``, best
        first, at most ``config.max_grasps``."""
        if not isinstance(config, DecodeConfig):
            raise GpuProcessingError(
                f"config must be a DecodeConfig, got {type(config).__name__}")
        able, angle, width = self.frame_maps(able_ptr, angle_ptr, width_ptr, frame)
        threshold = logit(config.confidence_threshold)
        candidates, overflowed = self._find_candidates(able, threshold, config)
        if overflowed:
            rows, cols, logits = self._peaks_on_host(able, threshold, config)
        else:
            rows, cols, logits = _suppress_greedy(candidates, self.width, config)
        classes, width_logits = self._read_grasp_channels(angle, width, rows, cols)
        return rows, cols, classes, logits, width_logits

    def bytes_copied_device_to_host(self) -> int:
        """Bytes the last ``decode`` copied from the GPU (for the benchmark)."""
        return self._bytes_copied

    def confidence_map(self, able_ptr: object, frame: int = 0) -> np.ndarray:
        """Grasp confidence (H, W) float32 of frame ``frame`` via a sigmoid on the GPU; only
        for heatmaps."""
        size = self.height * self.width
        able = device_pointer(able_ptr) + frame_offset_bytes(frame, (self.height, self.width))
        self._sigmoid.prepared_async_call(
            (blocks(size, _SIGMOID_THREADS), 1), (_SIGMOID_THREADS, 1, 1), self._stream, able,
            device_pointer(self._confidences), np.int32(size))
        host = self._host_map.at_least(size)
        self._driver.memcpy_dtoh_async(host, self._confidences, self._stream)
        self._stream.synchronize()
        return host.reshape(self.height, self.width).copy()

    def _find_candidates(self, able: int, threshold: float, config: DecodeConfig
                         ) -> tuple[np.ndarray, bool]:
        """Run the candidate kernel; return the (index, logit bits) pairs and overflow."""
        count, candidates = device_pointer(self._count), device_pointer(self._candidates)
        threshold32 = threshold_in(np.dtype(np.float32), threshold)
        self._driver.memset_d32_async(count, 0, 1, self._stream)
        if config.mode == "max":
            self._global_max.prepared_async_call(
                (1, 1), (_REDUCTION_THREADS, 1, 1), self._stream, able,
                np.int32(self.height * self.width), threshold32, count, candidates)
        else:
            radius = min(config.min_distance, max(self.height, self.width))
            self._local_maxima.prepared_async_call(
                grid_2d(self.height, self.width), BLOCK_2D, self._stream, able,
                np.int32(self.height), np.int32(self.width), np.int32(radius), threshold32,
                np.int32(self.max_candidates), count, candidates)
        self._driver.memcpy_dtoh_async(self._host_count, self._count, self._stream)
        self._stream.synchronize()
        count = int(self._host_count[0])
        stored = min(count, self.max_candidates)
        pairs = self._host_candidates.at_least(2 * stored)
        if stored:
            self._driver.memcpy_dtoh_async(pairs, self._candidates, self._stream)
            self._stream.synchronize()
        self._bytes_copied = self._host_count.nbytes + pairs.nbytes
        return pairs.reshape(stored, 2).copy(), count > self.max_candidates

    def _peaks_on_host(self, able: int, threshold: float, config: DecodeConfig
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """More candidates than the buffer holds: copy the able map and decode it on the CPU."""
        host_able = self._host_map.at_least(self.height * self.width)
        self._driver.memcpy_dtoh_async(host_able, able, self._stream)
        self._stream.synchronize()
        self._bytes_copied += host_able.nbytes
        able_map = host_able.reshape(self.height, self.width)
        rows, cols = find_peaks(able_map, threshold, config.min_distance, config.max_grasps)
        return rows, cols, able_map[rows, cols].copy()

    def _read_grasp_channels(self, angle: int, width: int, rows: np.ndarray,
                             cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = rows.size
        if count == 0:
            return np.empty(0, np.intp), np.empty(0, np.float32)
        pixels = self._host_pixels.at_least(count)
        pixels[:] = rows * self.width + cols
        self._driver.memcpy_htod_async(self._pixels.at_least(pixels.nbytes), pixels,
                                       self._stream)
        results = self._host_results.at_least(2 * count)
        self._read_channels.prepared_async_call(
            (blocks(count * WARP, _GATHER_THREADS), 1), (_GATHER_THREADS, 1, 1), self._stream,
            angle, width, device_pointer(self._pixels.allocation), np.int32(count),
            np.int32(self.height), np.int32(self.width), *map(np.int32, self.channel_size),
            np.int32(self.num_angle_classes),
            np.int32(self.width_channels > 1),
            device_pointer(self._results.at_least(results.nbytes)))
        self._driver.memcpy_dtoh_async(results, self._results.allocation, self._stream)
        self._stream.synchronize()
        self._bytes_copied += results.nbytes
        return (results[:count].astype(np.intp),
                results[count:].view(np.float32).copy())

    def close(self) -> None:
        """Free the GPU and pinned buffers; call on the inference thread before popping."""
        if self._module is None:
            return
        self._stream.synchronize()
        for buffer in (self._pixels, self._results, self._host_candidates, self._host_pixels,
                       self._host_results, self._host_map):
            buffer.free()
        for allocation in (self._count, self._candidates, self._confidences):
            allocation.free()
        self._host_count.base.free()
        # As in GpuPreprocessor.close: no pycuda object may outlive the context's pop.
        self._module = self._local_maxima = self._global_max = None
        self._read_channels = self._sigmoid = self._stream = None
        self._pixels = self._results = None


def _suppress_greedy(candidates: np.ndarray, width: int, config: DecodeConfig
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """find_peaks' ordering and greedy suppression, applied to the GPU's candidate pairs.

    Candidates come in atomicAdd order, so they are sorted by logit descending, ties in
    row-major order, as find_peaks' stable sort of row-major candidates does.
    """
    indices = candidates[:, 0].astype(np.intp)
    logits = candidates[:, 1].view(np.float32)
    order = np.lexsort((indices, -logits))
    rows, cols = np.divmod(indices[order], width)
    ordered = logits[order]
    kept = keep_apart(rows, cols, ordered, config.min_distance, config.max_grasps)
    return rows[kept], cols[kept], ordered[kept]


def decode_on_gpu(decoder: GpuDecoder, able_ptr: object, angle_ptr: object, width_ptr: object,
                  geometry: CropGeometry, config: DecodeConfig, frame: int = 0) -> list[Grasp]:
    """``decode_grasps`` for frame ``frame`` of maps on the GPU: the same grasps, built by the
    same code."""
    decoded = decoder.decode(able_ptr, angle_ptr, width_ptr, config, frame)
    return grasps_from_decoded(decoded, decoder.num_angle_classes, geometry, config)
