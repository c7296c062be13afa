"""Raw camera bytes -> the network's normalised B, G, R input planes, on the GPU.

The window of bytes the crop reads (its rows, and in each only its columns) goes up once
through a page-locked buffer and one kernel writes the planes, equal to
``sgdn_ros.core.preprocessing.Preprocessor`` bit for bit. A batch of frames is
written into one contiguous (N, 3, H, W) buffer, frame i at element offset i * 3 * H * W, so a
backend runs them in one inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sgdn_ros.core.frames import PixelLayout, RawImage
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import (
    PUBLISHED_MEAN_BGR,
    PUBLISHED_SCALE,
    PreprocessConfig,
    crop_geometry,
    planes_problem,
)
from sgdn_ros.gpu.buffers import FLOAT32_BYTES, DeviceBuffer, PinnedBuffer, device_pointer
from sgdn_ros.gpu.cuda_context import import_pycuda_driver
from sgdn_ros.gpu.errors import GpuProcessingError, UnsupportedOnGpuError, check_positive_ints
from sgdn_ros.gpu.launch import BLOCK_2D, compile_kernels, grid_2d

if TYPE_CHECKING:
    from pycuda.driver import Stream

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


@dataclass(frozen=True)
class CropWindow:
    """The part of a frame the crop reads: rows ``first_row`` to ``end_row`` and, in each,
    pixels ``first_col`` to ``end_col`` (ends excluded), copied to the GPU as one compact block
    of ``rows * row_bytes`` bytes (half a 640-wide frame's rows for a 320-wide crop)."""

    first_row: int
    end_row: int
    first_col: int
    end_col: int
    bytes_per_pixel: int

    @property
    def rows(self) -> int:
        return self.end_row - self.first_row

    @property
    def row_bytes(self) -> int:
        return (self.end_col - self.first_col) * self.bytes_per_pixel

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    def copy(self, image: RawImage, destination: np.ndarray) -> None:
        """Write the window of ``image`` into the first ``nbytes`` of ``destination``."""
        if not self.nbytes:
            return
        rows = image.data[:image.height * image.step].reshape(image.height, image.step)
        np.copyto(destination[:self.nbytes].reshape(self.rows, self.row_bytes),
                  rows[self.first_row:self.end_row,
                       self.first_col * self.bytes_per_pixel:self.end_col * self.bytes_per_pixel])


class GpuPreprocessor:
    """Raw camera bytes -> normalised B, G, R planes (N, 3, H, W) float32 on the GPU.

    Matches ``Preprocessor`` for 8-bit encodings with the pad and reject policies. The planes
    buffer holds ``max_batch`` frames; each call fills the slot ``frame`` and returns its
    address. The buffer is overwritten by the next calls for the same slots: consume it on the
    same stream (e.g. as the backend's input, from ``planes_ptr``).
    """

    def __init__(self, stream: Stream, input_height: int = 320, input_width: int = 320,
                 mean_bgr: tuple[float, float, float] = PUBLISHED_MEAN_BGR,
                 scale: float = PUBLISHED_SCALE, max_batch: int = 1) -> None:
        check_positive_ints(input_height=input_height, input_width=input_width,
                            max_batch=max_batch)
        self.config = PreprocessConfig(input_height, input_width, mean_bgr, scale)
        self.max_batch = max_batch
        self.frame_elements = 3 * input_height * input_width
        driver = import_pycuda_driver()
        self._stream = stream
        self._module = compile_kernels(_PREPROCESS_SOURCE)
        self._kernel = self._module.get_function("preprocess_planes")
        self._kernel.prepare("PP" + "i" * 11 + "f" * 4)
        self._staging = PinnedBuffer(driver, np.uint8)
        self._planes_staging = PinnedBuffer(driver, np.float32)
        self._raw = DeviceBuffer(driver, stream)
        self._planes = driver.mem_alloc(max_batch * self.frame_elements * FLOAT32_BYTES)
        self._staging_free = driver.Event()
        self._driver = driver

    @property
    def planes_ptr(self) -> int:
        """Device address of the first frame's planes: the batch's input for the backend."""
        return device_pointer(self._planes)

    def upload_and_preprocess(self, image: RawImage, geometry: CropGeometry,
                              frame: int = 0) -> int:
        """Copy the rows the crop needs to the GPU and write the planes of batch slot ``frame``
        (asynchronously); returns that slot's device address.

        ``image`` was checked when it was made (``RawImage``); ``geometry`` must be its own.
        """
        window = self.window_needed(image, geometry)
        self._staging_free.synchronize()  # the previous frame's copy may still read it
        if window.nbytes:
            staging = self._staging.at_least(window.nbytes)
            window.copy(image, staging)
            self._driver.memcpy_htod_async(self._raw.at_least(window.nbytes), staging,
                                           self._stream)
            self._staging_free.record(self._stream)
        source = 0 if self._raw.allocation is None else device_pointer(self._raw.allocation)
        return self.enqueue_planes(source, window, geometry, image.layout, frame)

    def window_needed(self, image: RawImage, geometry: CropGeometry) -> CropWindow:
        """The rows and columns of ``image`` that the crop reads, once the kernel is known to
        convert this frame (8-bit channels, no resize, ``geometry`` its own)."""
        if image.layout.bytes_per_channel != 1:
            raise UnsupportedOnGpuError(
                f"encoding {image.encoding!r} has 16-bit channels; the GPU preprocessing "
                "handles 8-bit encodings only, use the CPU Preprocessor for it")
        if geometry.scale != 1.0:
            raise UnsupportedOnGpuError(
                f"the crop geometry resizes the image (scale {geometry.scale}): the 'resize' "
                "small-image policy is not done on the GPU, use the CPU Preprocessor for it")
        height, width = image.height, image.width
        if (geometry.image_height, geometry.image_width) != (height, width):
            raise GpuProcessingError(
                f"geometry is for a {geometry.image_width}x{geometry.image_height} image but "
                f"the frame is {width}x{height}; compute it with geometry_for(height, width)")
        first_row = min(max(geometry.top, 0), height)
        first_col = min(max(geometry.left, 0), width)
        return CropWindow(
            first_row, max(min(geometry.top + self.config.input_height, height), first_row),
            first_col, max(min(geometry.left + self.config.input_width, width), first_col),
            image.layout.channels)

    def enqueue_planes(self, source: int, window: CropWindow, geometry: CropGeometry,
                       layout: PixelLayout, frame: int = 0) -> int:
        """Launch the kernel on the frame's ``window`` (``window_needed``), already copied
        to device address ``source``, writing batch slot ``frame``; no copy, no
        synchronisation, so a CUDA graph can record it. Returns the slot's address."""
        planes = self.frame_ptr(frame)
        offsets = list(range(layout.channels))[layout.bgr_channels]
        if len(offsets) == 1:
            offsets *= 3
        out_height, out_width = self.config.input_height, self.config.input_width
        self._kernel.prepared_async_call(
            grid_2d(out_height, out_width), BLOCK_2D, self._stream, source, planes,
            np.int32(window.rows), np.int32(window.end_col - window.first_col),
            np.int32(window.row_bytes), np.int32(geometry.top - window.first_row),
            np.int32(geometry.left - window.first_col),
            np.int32(out_height), np.int32(out_width), np.int32(layout.channels),
            *(np.int32(offset) for offset in offsets),
            *(np.float32(value) for value in self.config.mean_bgr),
            np.float32(self.config.scale))
        return planes

    def upload_planes(self, planes: np.ndarray, frame: int = 0) -> int:
        """Copy one frame's planes the CPU preprocessed (cases the kernel does not handle:
        16-bit encodings, the resize policy) into batch slot ``frame``; returns its address."""
        problem = planes_problem(
            planes, (1, 3, self.config.input_height, self.config.input_width))
        if problem is not None:
            raise GpuProcessingError(problem)
        address = self.frame_ptr(frame)
        self._staging_free.synchronize()
        staging = self._planes_staging.at_least(planes.size)
        np.copyto(staging, planes.reshape(-1))
        self._driver.memcpy_htod_async(address, staging, self._stream)
        self._staging_free.record(self._stream)
        return address

    def frame_ptr(self, frame: int) -> int:
        """Device address of batch slot ``frame``'s planes."""
        if self._planes is None:
            raise GpuProcessingError("the GPU preprocessor is closed; create a new one")
        if isinstance(frame, bool) or not isinstance(frame, int) \
                or not 0 <= frame < self.max_batch:
            raise GpuProcessingError(
                f"frame must be a batch slot from 0 to {self.max_batch - 1} (max_batch "
                f"{self.max_batch}), got {frame!r}")
        return self.planes_ptr + frame * self.frame_elements * FLOAT32_BYTES

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
