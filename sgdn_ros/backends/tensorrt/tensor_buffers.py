"""GPU buffers for an engine's named I/O tensors, with page-locked host mirrors.

TensorRT reads and writes tensors at addresses bound by NAME; this module owns those
allocations, so the TensorRT backend keeps only the engine calls. It needs pycuda, not
TensorRT, which lets it run (and be tested) on GPUs where no TensorRT engine can execute.
Create, use and free it on the thread where the CUDA context is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One static I/O tensor of an engine."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


class TensorBuffers:
    """One device allocation per tensor; page-locked host arrays for every input and for the
    outputs named in ``host_outputs`` (the ones the host path reads). Copies are asynchronous
    on ``stream``; ``download`` synchronizes it.
    """

    def __init__(self, driver: ModuleType, tensors: Sequence[TensorSpec], stream,
                 host_outputs: Sequence[str] = ()) -> None:
        names = [tensor.name for tensor in tensors]
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique, got {names}")
        unknown = set(host_outputs) - set(names)
        if unknown:
            raise ValueError(f"host_outputs names unknown tensors: {sorted(unknown)}")
        self._driver = driver
        self._stream = stream
        self.specs = {tensor.name: tensor for tensor in tensors}
        self._device: dict[str, object] = {}
        self._host: dict[str, np.ndarray] = {}
        try:
            for tensor in tensors:
                self._device[tensor.name] = driver.mem_alloc(tensor.nbytes)
                if tensor.is_input or tensor.name in host_outputs:
                    self._host[tensor.name] = driver.pagelocked_empty(tensor.shape, tensor.dtype)
        except BaseException:
            self.free()
            raise

    def address(self, name: str) -> int:
        """The device address of tensor ``name`` (what ``set_tensor_address`` takes)."""
        return int(self._allocation(name))

    def upload(self, name: str, array: np.ndarray) -> None:
        """Stage ``array`` in the tensor's page-locked mirror and copy it up on the stream.

        ``array`` may hold fewer frames (first axis) than the buffer: those go to its start.
        """
        host = self._host_mirror(name)
        frames = array.shape[0] if array.ndim else 0
        if (array.shape[1:] != host.shape[1:] or not 1 <= frames <= host.shape[0]
                or array.dtype != host.dtype):
            raise ValueError(
                f"tensor {name!r} is {host.dtype} {host.shape} (1 to {host.shape[0]} frames), "
                f"got {array.dtype} {array.shape}")
        np.copyto(host[:frames], array)
        self._driver.memcpy_htod_async(self._allocation(name), host[:frames], self._stream)

    def download(self, names: Sequence[str], frames: int | None = None) -> tuple[np.ndarray, ...]:
        """Copy the named tensors down (their first ``frames`` frames; all by default), wait for
        the stream, and return fresh arrays (the page-locked mirrors are reused by the next
        call)."""
        mirrors = [self._host_mirror(name)[:frames] for name in names]
        for name, host in zip(names, mirrors):
            self._driver.memcpy_dtoh_async(host, self._allocation(name), self._stream)
        self._stream.synchronize()
        return tuple(host.copy() for host in mirrors)

    def free(self) -> None:
        """Release every allocation now (not whenever the garbage collector runs, perhaps on
        another thread), each one even when another fails (the first failure is raised after);
        safe to call twice."""
        allocations = [*self._device.values(), *(host.base for host in self._host.values())]
        self._device, self._host = {}, {}
        self._stream = None
        failure = None
        for allocation in allocations:
            try:
                allocation.free()
            except Exception as error:  # a sticky CUDA error fails every free: try them all
                failure = failure or error
        if failure is not None:
            raise failure

    def _allocation(self, name: str):
        if name not in self._device:
            raise KeyError(f"no device buffer for tensor {name!r}"
                           + ("; the buffers were freed" if not self._device else ""))
        return self._device[name]

    def _host_mirror(self, name: str) -> np.ndarray:
        if name not in self._host:
            raise KeyError(f"tensor {name!r} has no host mirror (inputs and host_outputs do)")
        return self._host[name]
