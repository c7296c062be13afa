"""Preprocessing and grasp decoding on the GPU, so only a few KB cross PCIe per frame.

The CPU path copies the network's 1 + 2K output maps to the host (about 99 MB at K = 120) to
decode a handful of grasps. Here the raw camera bytes go up once, a kernel writes the normalised
input planes, and after inference a kernel finds the candidate pixels on the able map; only
those candidates and, for the chosen grasps, their angle class and width logit come back. The
results equal ``sgdn_ros.core.preprocessing.Preprocessor`` and
``sgdn_ros.core.decoding.decode_grasps``.

All work runs on one non-default stream through page-locked host buffers; create and use the
processors on the inference thread with its ``CudaContext`` pushed, and ``close`` them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sgdn_ros.core.decoding import (
    DecodeConfig,
    Grasp,
    find_peaks,
    grasps_at_pixels,
    logit,
    sigmoid64,
    suppress_close_peaks,
    threshold_in,
)
from sgdn_ros.core.frames import RawImage
from sgdn_ros.core.preprocessing import (
    PUBLISHED_MEAN_BGR,
    PUBLISHED_SCALE,
    CropGeometry,
    PreprocessConfig,
    crop_geometry,
    planes_problem,
)
from sgdn_ros.gpu.cuda_context import import_pycuda_driver

if TYPE_CHECKING:
    from pycuda.driver import DeviceAllocation, Stream

_BLOCK_2D = (16, 16, 1)
_REDUCTION_THREADS = 1024
_GATHER_THREADS = 128

_PREPROCESS_SOURCE = r"""
__global__ void preprocess_planes(
    const unsigned char* source, float* planes, int source_rows, int source_width, int step,
    int row_offset, int col_offset, int out_height, int out_width, int bytes_per_pixel,
    int offset_b, int offset_g, int offset_r, float mean_b, float mean_g, float mean_r,
    float scale)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= out_height || col >= out_width) return;
    int plane = out_height * out_width;
    int out = row * out_width + col;
    int source_row = row + row_offset;
    int source_col = col + col_offset;
    if (source_row < 0 || source_row >= source_rows || source_col < 0
            || source_col >= source_width) {
        planes[out] = 0.0f;
        planes[plane + out] = 0.0f;
        planes[2 * plane + out] = 0.0f;
        return;
    }
    const unsigned char* pixel =
        source + (size_t)source_row * step + (size_t)source_col * bytes_per_pixel;
    /* Explicit round-to-nearest operations: no fused multiply-add, so the result is the
       CPU's float32 (pixel - mean) * scale bit for bit. */
    planes[out] = __fmul_rn(__fsub_rn((float)pixel[offset_b], mean_b), scale);
    planes[plane + out] = __fmul_rn(__fsub_rn((float)pixel[offset_g], mean_g), scale);
    planes[2 * plane + out] = __fmul_rn(__fsub_rn((float)pixel[offset_r], mean_r), scale);
}
"""

_DECODE_SOURCE = r"""
/* Candidates are (pixel index, logit bits) int pairs; count may exceed capacity (overflow). */
__device__ void store_candidate(int* count, int* candidates, int capacity, int index,
                                float logit)
{
    int slot = atomicAdd(count, 1);
    if (slot < capacity) {
        candidates[2 * slot] = index;
        candidates[2 * slot + 1] = __float_as_int(logit);
    }
}

__global__ void find_local_maxima(
    const float* able, int height, int width, int radius, float threshold, int capacity,
    int* count, int* candidates)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= height || col >= width) return;
    float value = able[row * width + col];
    if (!(value >= threshold)) return;
    int row_end = min(row + radius, height - 1);
    int col_end = min(col + radius, width - 1);
    for (int r = max(row - radius, 0); r <= row_end; ++r) {
        for (int c = max(col - radius, 0); c <= col_end; ++c) {
            if (able[r * width + c] > value) return;
        }
    }
    store_candidate(count, candidates, capacity, row * width + col, value);
}

/* numpy.argmax order: NaN beats everything, then the larger value, then the lower index. */
__device__ bool comes_first(float value, int index, float best, int best_index)
{
    bool value_nan = isnan(value), best_nan = isnan(best);
    if (value_nan != best_nan) return value_nan;
    if (!value_nan && value != best) return value > best;
    return index < best_index;
}

__global__ void find_global_max(
    const float* able, int size, float threshold, int* count, int* candidates)
{
    __shared__ float values[1024];
    __shared__ int indices[1024];
    float best = __int_as_float(0xff800000);
    int best_index = 0x7fffffff;
    for (int i = threadIdx.x; i < size; i += blockDim.x) {
        if (comes_first(able[i], i, best, best_index)) {
            best = able[i];
            best_index = i;
        }
    }
    values[threadIdx.x] = best;
    indices[threadIdx.x] = best_index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        int other = threadIdx.x + stride;
        if (threadIdx.x < stride
                && comes_first(values[other], indices[other], values[threadIdx.x],
                               indices[threadIdx.x])) {
            values[threadIdx.x] = values[other];
            indices[threadIdx.x] = indices[other];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0 && values[0] >= threshold) {
        store_candidate(count, candidates, 1, indices[0], values[0]);
    }
}

/* For each chosen pixel: the first argmax over the K angle logits (numpy order), and the width
   logit of that class (or of the single width channel). results = classes, then width bits. */
__global__ void read_grasp_channels(
    const float* angle, const float* width_maps, const int* pixels, int count, int plane,
    int num_classes, int width_per_class, int* results)
{
    int grasp = blockIdx.x * blockDim.x + threadIdx.x;
    if (grasp >= count) return;
    int pixel = pixels[grasp];
    int best_class = 0;
    float best = angle[pixel];
    for (int k = 1; k < num_classes && !isnan(best); ++k) {
        float value = angle[(size_t)k * plane + pixel];
        if (value > best || isnan(value)) {
            best = value;
            best_class = k;
        }
    }
    int channel = width_per_class ? best_class : 0;
    results[grasp] = best_class;
    results[count + grasp] = __float_as_int(width_maps[(size_t)channel * plane + pixel]);
}

__global__ void sigmoid_map(const float* logits, float* confidences, int size)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < size) confidences[i] = 1.0f / (1.0f + expf(-logits[i]));
}
"""


class GpuProcessingError(ValueError):
    """Input or settings the GPU processing cannot work with."""


class UnsupportedOnGpuError(GpuProcessingError):
    """A case the GPU path does not implement; use the CPU processing for it."""


def _compile(source: str):
    from pycuda.compiler import SourceModule

    return SourceModule(source)


def _blocks(size: int, block: int) -> int:
    return (size + block - 1) // block


def _device_pointer(pointer: object) -> int:
    """A device address from a DeviceAllocation or an int (e.g. TensorRT's buffer address)."""
    return int(pointer)


class _PinnedBuffer:
    """A page-locked host array that grows on demand, for async copies."""

    def __init__(self, driver, dtype: type) -> None:
        self._driver = driver
        self._dtype = dtype
        self.array: np.ndarray | None = None

    def at_least(self, size: int) -> np.ndarray:
        """The first ``size`` elements; the contents are lost when it grows."""
        if self.array is None or self.array.size < size:
            self.free()
            self.array = self._driver.pagelocked_empty(max(size, 1), self._dtype)
        return self.array[:size]

    def free(self) -> None:
        if self.array is not None:
            self.array.base.free()
        self.array = None


class _DeviceBuffer:
    """A device allocation that grows on demand, once the stream no longer uses the old one."""

    def __init__(self, driver, stream: Stream) -> None:
        self._driver = driver
        self._stream = stream
        self.allocation: DeviceAllocation | None = None
        self.nbytes = 0

    def at_least(self, nbytes: int) -> DeviceAllocation:
        if self.nbytes < nbytes:
            self._stream.synchronize()
            self.free()
            self.allocation = self._driver.mem_alloc(nbytes)
            self.nbytes = nbytes
        return self.allocation

    def free(self) -> None:
        if self.allocation is not None:
            self.allocation.free()
        self.allocation, self.nbytes = None, 0


class GpuPreprocessor:
    """Raw camera bytes -> normalised B, G, R planes (1, 3, H, W) float32 on the GPU.

    Matches ``Preprocessor`` for 8-bit encodings with the pad and reject policies; the returned
    planes are this object's buffer, overwritten by the next call (consume them on the same
    stream, e.g. as TensorRT's input).
    """

    def __init__(self, stream: Stream, input_height: int = 320, input_width: int = 320,
                 mean_bgr: tuple[float, float, float] = PUBLISHED_MEAN_BGR,
                 scale: float = PUBLISHED_SCALE) -> None:
        self.config = PreprocessConfig(input_height, input_width, mean_bgr, scale)
        driver = import_pycuda_driver()
        self._stream = stream
        self._module = _compile(_PREPROCESS_SOURCE)
        self._kernel = self._module.get_function("preprocess_planes")
        self._kernel.prepare("PP" + "i" * 11 + "f" * 4)
        self._staging = _PinnedBuffer(driver, np.uint8)
        self._planes_staging = _PinnedBuffer(driver, np.float32)
        self._raw = _DeviceBuffer(driver, stream)
        self._planes = driver.mem_alloc(3 * input_height * input_width * 4)
        self._staging_free = driver.Event()
        self._driver = driver

    def upload_and_preprocess(self, image: RawImage, geometry: CropGeometry
                              ) -> DeviceAllocation:
        """Copy the rows the crop needs to the GPU and write the planes (asynchronously).

        ``image`` was checked when it was made (``RawImage``); ``geometry`` must be its own.
        """
        layout = image.layout
        if layout.bytes_per_channel != 1:
            raise UnsupportedOnGpuError(
                f"encoding {image.encoding!r} has 16-bit channels; the GPU preprocessing "
                "handles 8-bit encodings only, use the CPU Preprocessor for it")
        if geometry.scale != 1.0:
            raise UnsupportedOnGpuError(
                f"the crop geometry resizes the image (scale {geometry.scale}): the 'resize' "
                "small-image policy is not done on the GPU, use the CPU Preprocessor for it")
        height, width, step = image.height, image.width, image.step
        if (geometry.image_height, geometry.image_width) != (height, width):
            raise GpuProcessingError(
                f"geometry is for a {geometry.image_width}x{geometry.image_height} image but "
                f"the frame is {width}x{height}; compute it with geometry_for(height, width)")
        bytes_per_pixel = layout.channels
        raw = image.data
        first_row = min(max(geometry.top, 0), height)
        end_row = max(min(geometry.top + self.config.input_height, height), first_row)
        self._staging_free.synchronize()  # the previous frame's copy may still read it
        if end_row > first_row:
            staging = self._staging.at_least((end_row - first_row) * step)
            np.copyto(staging, raw[first_row * step:end_row * step])
            self._driver.memcpy_htod_async(self._raw.at_least(staging.nbytes), staging,
                                           self._stream)
            self._staging_free.record(self._stream)
        offsets = list(range(layout.channels))[layout.bgr_channels]
        if len(offsets) == 1:
            offsets *= 3
        source = 0 if self._raw.allocation is None else _device_pointer(self._raw.allocation)
        mean = self.config.mean_bgr
        out_height, out_width = self.config.input_height, self.config.input_width
        self._kernel.prepared_async_call(
            (_blocks(out_width, _BLOCK_2D[0]), _blocks(out_height, _BLOCK_2D[1])), _BLOCK_2D,
            self._stream, source, _device_pointer(self._planes), np.int32(end_row - first_row),
            np.int32(width), np.int32(step),
            np.int32(geometry.top - first_row), np.int32(geometry.left),
            np.int32(out_height), np.int32(out_width), np.int32(bytes_per_pixel),
            *(np.int32(offset) for offset in offsets),
            *(np.float32(value) for value in mean), np.float32(self.config.scale))
        return self._planes

    def upload_planes(self, planes: np.ndarray) -> DeviceAllocation:
        """Copy planes the CPU preprocessed (cases the kernel does not handle: 16-bit
        encodings, the resize policy) into the same buffer ``upload_and_preprocess`` fills."""
        problem = planes_problem(
            planes, (1, 3, self.config.input_height, self.config.input_width))
        if problem is not None:
            raise GpuProcessingError(problem)
        self._staging_free.synchronize()
        staging = self._planes_staging.at_least(planes.size)
        np.copyto(staging, planes.reshape(-1))
        self._driver.memcpy_htod_async(self._planes, staging, self._stream)
        self._staging_free.record(self._stream)
        return self._planes

    def geometry_for(self, height: int, width: int, small_image_policy: str = "pad"
                     ) -> CropGeometry:
        """Where the network input lies in an image of this size (as the CPU path places it)."""
        config = PreprocessConfig(self.config.input_height, self.config.input_width,
                                  self.config.mean_bgr, self.config.scale, small_image_policy)
        return crop_geometry(height, width, config)

    def close(self) -> None:
        """Free the GPU and pinned buffers; call on the inference thread before popping."""
        if self._planes is None:
            return
        self._staging_free.synchronize()
        self._staging.free()
        self._planes_staging.free()
        self._raw.free()
        self._planes.free()
        # Drop every pycuda object now, while the context is current on this thread: one
        # destroyed later by the garbage collector, on another thread, can abort the process.
        self._planes = self._module = self._kernel = self._staging_free = self._stream = None
        self._raw = None


class GpuDecoder:
    """The three output maps on the GPU -> at most N grasps, copying back only a few KB.

    Pointers are device addresses of contiguous float32 maps: able (1, 1, H, W), angle
    (1, K, H, W), width (1, K or 1, H, W). NaN logits in the able map are not supported in
    "peaks" mode (the CPU's dilation does not define them either).
    """

    def __init__(self, stream: Stream, height: int, width: int, num_angle_classes: int,
                 width_channels: int, max_candidates: int = 4096) -> None:
        for name, value in (("height", height), ("width", width),
                            ("num_angle_classes", num_angle_classes),
                            ("max_candidates", max_candidates)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GpuProcessingError(f"{name} must be a positive integer, got {value!r}")
        if width_channels not in (1, num_angle_classes):
            raise GpuProcessingError(
                f"width_channels must be 1 or num_angle_classes ({num_angle_classes}), got "
                f"{width_channels!r}")
        driver = import_pycuda_driver()
        self._driver = driver
        self._stream = stream
        self.height, self.width = height, width
        self.num_angle_classes, self.width_channels = num_angle_classes, width_channels
        self.max_candidates = max_candidates
        self._module = _compile(_DECODE_SOURCE)
        self._local_maxima = self._module.get_function("find_local_maxima")
        self._local_maxima.prepare("PiiifiPP")
        self._global_max = self._module.get_function("find_global_max")
        self._global_max.prepare("PifPP")
        self._read_channels = self._module.get_function("read_grasp_channels")
        self._read_channels.prepare("PPPiiiiP")
        self._sigmoid = self._module.get_function("sigmoid_map")
        self._sigmoid.prepare("PPi")
        self._count = driver.mem_alloc(4)
        self._candidates = driver.mem_alloc(8 * max_candidates)
        self._pixels = _DeviceBuffer(driver, stream)
        self._results = _DeviceBuffer(driver, stream)
        self._confidences = driver.mem_alloc(4 * height * width)
        self._host_count = driver.pagelocked_empty(1, np.int32)
        self._host_candidates = _PinnedBuffer(driver, np.int32)
        self._host_pixels = _PinnedBuffer(driver, np.int32)
        self._host_results = _PinnedBuffer(driver, np.int32)
        self._host_map = _PinnedBuffer(driver, np.float32)
        self._bytes_copied = 0

    def decode(self, able_ptr: object, angle_ptr: object, width_ptr: object,
               config: DecodeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                              np.ndarray]:
        """(rows, cols, angle_classes, able_logits, width_logits), best first, <= max_grasps."""
        if not isinstance(config, DecodeConfig):
            raise GpuProcessingError(
                f"config must be a DecodeConfig, got {type(config).__name__}")
        threshold = logit(config.confidence_threshold)
        candidates, overflowed = self._find_candidates(able_ptr, threshold, config)
        if overflowed:
            rows, cols, logits = self._peaks_on_host(able_ptr, threshold, config)
        else:
            rows, cols, logits = _suppress_greedy(candidates, self.width, config)
        classes, width_logits = self._read_grasp_channels(angle_ptr, width_ptr, rows, cols)
        return rows, cols, classes, logits, width_logits

    def bytes_copied_device_to_host(self) -> int:
        """Bytes the last ``decode`` copied from the GPU (for the benchmark)."""
        return self._bytes_copied

    def confidence_map(self, able_ptr: object) -> np.ndarray:
        """Grasp confidence (H, W) float32 via a sigmoid on the GPU; only for heatmaps."""
        size = self.height * self.width
        self._sigmoid.prepared_async_call(
            (_blocks(size, 256), 1), (256, 1, 1), self._stream, _device_pointer(able_ptr),
            _device_pointer(self._confidences), np.int32(size))
        host = self._host_map.at_least(size)
        self._driver.memcpy_dtoh_async(host, self._confidences, self._stream)
        self._stream.synchronize()
        return host.reshape(self.height, self.width).copy()

    def _find_candidates(self, able_ptr: object, threshold: float, config: DecodeConfig
                         ) -> tuple[np.ndarray, bool]:
        """Run the candidate kernel; return the (index, logit bits) pairs and overflow."""
        able = _device_pointer(able_ptr)
        count, candidates = _device_pointer(self._count), _device_pointer(self._candidates)
        threshold32 = threshold_in(np.dtype(np.float32), threshold)
        self._driver.memset_d32_async(count, 0, 1, self._stream)
        if config.mode == "max":
            self._global_max.prepared_async_call(
                (1, 1), (_REDUCTION_THREADS, 1, 1), self._stream, able,
                np.int32(self.height * self.width), threshold32, count, candidates)
        else:
            radius = min(config.min_distance, max(self.height, self.width))
            self._local_maxima.prepared_async_call(
                (_blocks(self.width, _BLOCK_2D[0]), _blocks(self.height, _BLOCK_2D[1])),
                _BLOCK_2D, self._stream, able, np.int32(self.height), np.int32(self.width),
                np.int32(radius), threshold32, np.int32(self.max_candidates), count, candidates)
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

    def _peaks_on_host(self, able_ptr: object, threshold: float, config: DecodeConfig
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """More candidates than the buffer holds: copy the able map and decode it on the CPU."""
        able = self._host_map.at_least(self.height * self.width)
        self._driver.memcpy_dtoh_async(able, _device_pointer(able_ptr), self._stream)
        self._stream.synchronize()
        self._bytes_copied += able.nbytes
        able_map = able.reshape(self.height, self.width)
        rows, cols = find_peaks(able_map, threshold, config.min_distance, config.max_grasps)
        return rows, cols, able_map[rows, cols].copy()

    def _read_grasp_channels(self, angle_ptr: object, width_ptr: object, rows: np.ndarray,
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
            (_blocks(count, _GATHER_THREADS), 1), (_GATHER_THREADS, 1, 1), self._stream,
            _device_pointer(angle_ptr), _device_pointer(width_ptr),
            _device_pointer(self._pixels.allocation), np.int32(count),
            np.int32(self.height * self.width), np.int32(self.num_angle_classes),
            np.int32(self.width_channels > 1),
            _device_pointer(self._results.at_least(results.nbytes)))
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
    kept = suppress_close_peaks(rows, cols, config.min_distance, config.max_grasps)
    return rows[kept], cols[kept], logits[order][kept]


def decode_on_gpu(decoder: GpuDecoder, able_ptr: object, angle_ptr: object, width_ptr: object,
                  geometry: CropGeometry, config: DecodeConfig) -> list[Grasp]:
    """``decode_grasps`` for maps on the GPU: the same grasps, built by the same code."""
    rows, cols, classes, able_logits, width_logits = decoder.decode(
        able_ptr, angle_ptr, width_ptr, config)
    crop_widths = sigmoid64(width_logits) * config.max_width_px
    return grasps_at_pixels(rows, cols, classes, sigmoid64(able_logits), crop_widths,
                   decoder.num_angle_classes, geometry, config)
