"""A stand-in for ``pycuda.driver``: the context bookkeeping of pycuda and of the CUDA driver's
per-thread stack (modelled after pycuda's cuda.hpp: ``detach`` of a context that is not current
pushes it and counts on the release to pop it), allocations that only record their frees, and
copies that are recorded but move no data. Nothing here computes."""

from __future__ import annotations

import types

import numpy as np


class FakeError(Exception):
    """pycuda.driver.Error."""


class FakeCuda:
    """The driver module, the driver's context stack and what was asked of it, in order."""

    def __init__(self, failing_frees: int = 0) -> None:
        self.driver_stack: list[int] = []      # the CUDA driver's stack on the one test thread
        self.pycuda_stack: list[FakeContext] = []
        self.events: list[str] = []
        self.failing_frees = failing_frees
        self.retained = 0
        self._next_address = 0x7F0000000000
        fake = self

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            @staticmethod
            def count() -> int:
                return 1

            def name(self) -> str:
                return "Fake GPU"

            def compute_capability(self) -> tuple[int, int]:
                return 8, 9

            def retain_primary_context(self) -> FakeContext:
                fake.retained += 1
                return FakeContext(fake, 0xC0)

        class Context:
            @staticmethod
            def pop() -> None:
                if fake.pycuda_stack:
                    fake.driver_stack.pop()
                if not fake.pycuda_stack:
                    raise FakeError("cannot pop non-current context")
                fake.pycuda_stack.pop()
                if fake.pycuda_stack:
                    fake.driver_stack.append(fake.pycuda_stack[-1].handle)

        class Stream:
            handle = 0x5E

            def synchronize(self) -> None:
                fake.events.append("stream synchronize")

        self.driver = types.ModuleType("pycuda.driver")
        self.driver.Error, self.driver.Device, self.driver.Context = FakeError, Device, Context
        self.driver.Stream = Stream
        self.driver.init = lambda: None
        self.driver.mem_alloc = self.mem_alloc
        self.driver.pagelocked_empty = self.pagelocked_empty
        self.driver.memcpy_htod_async = lambda device, host, stream: self.events.append("htod")
        self.driver.memcpy_dtoh_async = lambda host, device, stream: self.events.append("dtoh")
        self.package = types.ModuleType("pycuda")
        self.package.driver = self.driver

    def mem_alloc(self, size: int) -> FakeAllocation:
        self._next_address += max(size, 256)
        return FakeAllocation(self, self._next_address, "device")

    def pagelocked_empty(self, shape, dtype) -> np.ndarray:
        block = FakeHostBlock(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        block.owner = FakeAllocation(self, 0, "host")
        return np.ndarray(shape, dtype, buffer=block)

    def free_one(self, kind: str) -> None:
        if self.failing_frees:
            self.failing_frees -= 1
            self.events.append(f"{kind} free failed")
            raise FakeError("cuMemFree failed: an illegal memory access was encountered")
        self.events.append(f"{kind} freed")


class FakeDriverStack:
    """``cuda_context.DriverContextStack`` over the fake driver stack."""

    def __init__(self, cuda: FakeCuda) -> None:
        self._cuda = cuda

    def current(self) -> int | None:
        return self._cuda.driver_stack[-1] if self._cuda.driver_stack else None

    def pop(self) -> None:
        self._cuda.driver_stack.pop()


class FakeAllocation:
    def __init__(self, cuda: FakeCuda, address: int, kind: str) -> None:
        self._cuda, self._address, self._kind = cuda, address, kind

    def __int__(self) -> int:
        return self._address

    def free(self) -> None:
        self._cuda.free_one(self._kind)


class FakeHostBlock(bytearray):
    """Page-locked host memory: a bytearray whose ``free`` is recorded."""

    owner: FakeAllocation

    def free(self) -> None:
        self.owner.free()


class FakeContext:
    """A retained primary context, with pycuda's push and detach."""

    def __init__(self, cuda: FakeCuda, handle: int) -> None:
        self._cuda, self.handle, self._valid = cuda, handle, True

    def push(self) -> None:
        if self._cuda.pycuda_stack:
            self._cuda.driver_stack.pop()
        self._cuda.driver_stack.append(self.handle)
        self._cuda.pycuda_stack.append(self)

    def detach(self) -> None:
        cuda = self._cuda
        active = bool(cuda.pycuda_stack) and cuda.pycuda_stack[-1] is self
        if not active:
            cuda.driver_stack.append(self.handle)  # cuCtxPushCurrent; "pop is implicit"
        cuda.retained -= 1                          # cuDevicePrimaryCtxRelease: no pop
        cuda.events.append("primary context released")
        self._valid = False
        cuda.pycuda_stack[:] = [entry for entry in cuda.pycuda_stack if entry is not self]
