"""Device addresses and the host and device buffers the kernels use, growing on demand.

Create and free them on the inference thread with its ``CudaContext`` pushed.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pycuda.driver import DeviceAllocation, Stream

FLOAT32_BYTES = 4


def device_pointer(pointer: object) -> int:
    """A device address from a DeviceAllocation or an int (e.g. TensorRT's buffer address)."""
    return int(pointer)


class PinnedBuffer:
    """A page-locked host array that grows on demand, for async copies."""

    def __init__(self, driver: ModuleType, dtype: type) -> None:
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


class DeviceBuffer:
    """A device allocation that grows on demand, once the stream no longer uses the old one."""

    def __init__(self, driver: ModuleType, stream: Stream) -> None:
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


class HostPlanesUpload:
    """A group's planes built on the CPU -> one contiguous device buffer, for models the
    kernels cannot feed (``GpuPreprocessor`` writes 3 planes a frame): any channel count."""

    def __init__(self, driver: ModuleType, stream: Stream) -> None:
        self._driver = driver
        self._stream = stream
        self._staging = PinnedBuffer(driver, np.float32)
        self._device = DeviceBuffer(driver, stream)

    def upload(self, planes: np.ndarray) -> int:
        """Enqueue the copy of ``planes`` (N, C, H, W) on the stream; returns their address.
        The caller synchronizes the stream before the next upload reuses the staging array."""
        staging = self._staging.at_least(planes.size)
        np.copyto(staging, planes.reshape(-1))
        allocation = self._device.at_least(planes.nbytes)
        self._driver.memcpy_htod_async(allocation, staging, self._stream)
        return device_pointer(allocation)

    def close(self) -> None:
        self._staging.free()
        self._device.free()
