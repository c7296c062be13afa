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

Several holders on one thread (the TensorRT backend and the GPU processing; two detectors while
one replaces the other) share one retained context and one push per thread and device
(``_ThreadPrimaryContext``): pycuda's ``Context.pop`` pops whatever is on top, so with a push
each, the first holder to release would pop the other's push and leave it without a current
context ("invalid device context") whenever the releases come in another order than the pushes.
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


class _ThreadPrimaryContext:
    """The primary context of one device as retained and pushed on one thread, counted by
    holder and by push, so that it is pushed once and released once whatever the order."""

    def __init__(self, driver: ModuleType, device: int,
                 table: dict[tuple[ModuleType, int], _ThreadPrimaryContext]) -> None:
        self.context = driver.Device(device).retain_primary_context()
        self.holders = 0
        self.pushes = 0
        self._key = driver, device
        self._table = table

    @classmethod
    def held(cls, driver: ModuleType, device: int) -> _ThreadPrimaryContext:
        """This thread's entry for `device`, created (retained) on first use; one more holder."""
        table = getattr(_per_thread, "contexts", None)
        if table is None:
            table = _per_thread.contexts = {}
        entry = table.get((driver, device)) or cls(driver, device, table)
        table[driver, device] = entry
        entry.holders += 1
        return entry

    def let_go(self) -> bool:
        """One holder fewer; True when it was the last (the caller then releases the context)."""
        self.holders -= 1
        if self.holders:
            return False
        del self._table[self._key]
        return True


_per_thread = threading.local()


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
        self._shared: _ThreadPrimaryContext | None = _ThreadPrimaryContext.held(driver, device)
        self._driver_stack = DriverContextStack()
        self._pushed_on: int | None = None

    def push(self) -> None:
        """Make the context current on the calling thread (the inference thread)."""
        if self._shared is None:
            raise RuntimeError("this CudaContext was released; create a new one")
        if self._pushed_on is not None:
            raise RuntimeError("the CUDA context is already pushed; pop it before pushing again")
        if self._shared.pushes == 0:
            self._shared.context.push()
        self._shared.pushes += 1
        self._pushed_on = threading.get_ident()

    def pop(self) -> None:
        """This holder no longer needs the context current; it stops being current when no
        holder on the thread does. Must run on the thread that pushed it."""
        if self._pushed_on is None:
            raise RuntimeError("the CUDA context is not pushed; call push first")
        if self._pushed_on != threading.get_ident():
            raise RuntimeError(
                "the CUDA context must be popped on the thread that pushed it (CUDA contexts "
                "are current per thread); pop it at the end of the inference thread")
        self._shared.pushes -= 1
        if self._shared.pushes == 0:
            self._driver.Context.pop()
        self._pushed_on = None

    def release(self) -> None:
        """Pop if still pushed, then let go of the primary context; the last holder on the
        thread gives it back, leaving the thread's context stack as it was before the first
        ``push`` (module docstring). Safe to call twice."""
        if self._shared is None:
            return
        if self._pushed_on is not None:
            self.pop()
        shared, self._shared = self._shared, None
        if not shared.let_go():
            return
        handle = shared.context.handle
        shared.context.detach()
        if self._driver_stack.current() == handle:
            self._driver_stack.pop()

    def __enter__(self) -> CudaContext:
        self.push()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.pop()
