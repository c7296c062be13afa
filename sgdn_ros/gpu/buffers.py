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
