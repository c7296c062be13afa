"""The CUDA primary context, made current on the one thread that runs inference.

A CUDA context is current per CPU thread and pycuda keeps a context stack per thread, so a
context pushed on one thread does not exist for another (``invalid device context``), and one
left pushed when Python exits prints "context stack was not empty". ``pycuda.autoinit`` makes a
new, private context current only on the importing thread; TensorRT and the CUDA runtime use the
device's primary context instead, so this class retains that one and never uses autoinit.

Use it from ONE thread, the inference thread: create and ``push`` it when that thread starts,
create streams, buffers and processors while it is current, close them, then ``pop`` and
``release`` before the thread ends (or use it as a context manager, which pushes and pops).
pycuda releases a context only on the thread that retained it, hence creation on that thread too.

Releasing has one trap: pycuda's ``detach`` of a context that is not current pushes it and
counts on the release to pop it, as ``cuCtxDetach`` does; ``cuDevicePrimaryCtxRelease`` does
not pop, so after every release the primary context would stay current on the thread, one more
driver stack entry per create/close cycle. ``release`` pops that entry at the driver level
(``DriverContextStack``), where pycuda's own stack never recorded it.
"""

from __future__ import annotations

import ctypes
import threading
from types import ModuleType, TracebackType


class GpuUnavailableError(RuntimeError):
    """pycuda or a CUDA device is missing, so GPU processing cannot run."""


def import_pycuda_driver() -> ModuleType:
    """pycuda.driver, imported on first use so the package works without pycuda."""
    try:
        import pycuda.driver as driver
    except ImportError as error:
        raise GpuUnavailableError(
            f"pycuda is not installed ({error}); install pycuda on the GPU machine or use the "
            "CPU pre- and post-processing") from error
    return driver


class DriverContextStack:
    """The CUDA driver's context stack of the calling thread, through libcuda itself."""

    def __init__(self) -> None:
        self._libcuda = ctypes.CDLL("libcuda.so.1")

    def current(self) -> int | None:
        """The handle of the context current on this thread (None for none)."""
        handle = ctypes.c_void_p()
        if self._libcuda.cuCtxGetCurrent(ctypes.byref(handle)) != 0:
            return None
        return handle.value

    def pop(self) -> None:
        """Pop the top entry, even one whose context no longer exists (after the last release
        of a primary context cuCtxPopCurrent refuses it; cuCtxSetCurrent(NULL) pops it)."""
        self._libcuda.cuCtxSetCurrent(ctypes.c_void_p(None))


class CudaContext:
    """The retained primary context of one device (the one the CUDA runtime and TensorRT use)."""

    def __init__(self, device: int = 0) -> None:
        driver = import_pycuda_driver()
        try:
            driver.init()
            count = driver.Device.count()
        except driver.Error as error:
            raise GpuUnavailableError(
                f"CUDA could not start ({error}); check the NVIDIA driver, or use the CPU "
                "processing") from error
        if isinstance(device, bool) or not isinstance(device, int) or not 0 <= device < count:
            raise GpuUnavailableError(
                f"CUDA device {device!r} does not exist: this machine has {count} CUDA "
                f"device(s); pass a device index from 0 to {count - 1}" if count else
                f"no CUDA device found (asked for device {device!r}); run on a machine with "
                "an NVIDIA GPU or use the CPU processing")
        self._driver = driver
        self.device_name: str = driver.Device(device).name()
        self._context = driver.Device(device).retain_primary_context()
        self._driver_stack = DriverContextStack()
        self._pushed_on: int | None = None

    def push(self) -> None:
        """Make the context current on the calling thread (the inference thread)."""
        if self._context is None:
            raise RuntimeError("this CudaContext was released; create a new one")
        if self._pushed_on is not None:
            raise RuntimeError("the CUDA context is already pushed; pop it before pushing again")
        self._context.push()
        self._pushed_on = threading.get_ident()

    def pop(self) -> None:
        """Make the context no longer current; must run on the thread that pushed it."""
        if self._pushed_on is None:
            raise RuntimeError("the CUDA context is not pushed; call push first")
        if self._pushed_on != threading.get_ident():
            raise RuntimeError(
                "the CUDA context must be popped on the thread that pushed it (CUDA contexts "
                "are current per thread); pop it at the end of the inference thread")
        self._driver.Context.pop()
        self._pushed_on = None

    def release(self) -> None:
        """Pop if still pushed, then give the primary context back, leaving the thread's
        context stack as it was before ``push`` (module docstring); safe to call twice."""
        if self._context is None:
            return
        if self._pushed_on is not None:
            self.pop()
        handle = self._context.handle
        self._context.detach()
        self._context = None
        if self._driver_stack.current() == handle:
            self._driver_stack.pop()

    def __enter__(self) -> CudaContext:
        self.push()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.pop()
