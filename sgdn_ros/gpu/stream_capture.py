"""Recording a stream's work once as a CUDA graph and replaying it, at the driver level.

The frame graph (``sgdn_ros.gpu.frame_graph``) records the upload, the preprocessing kernel, the
network and the decoding kernels of a frame once and replays them per frame. Who records
depends on the network: PyTorch must record its own work (its allocator hands out graph-private
memory while it records), so the torch backend captures with ``torch.cuda.graph``; a TensorRT
engine is plain stream work once it has run once (NVIDIA documents capturing
``execute_async_v3`` after one warm-up run), so the TensorRT backend captures with
``DriverStreamCapture`` here, through libcuda itself: pycuda 2026.1 offers no stream capture.
Both hand back a ``CapturedGraph``.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Protocol

_CAPTURE_MODE_THREAD_LOCAL = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: other threads unaffected


class CapturedGraph(Protocol):
    """Recorded stream work that runs again, unchanged, with one launch."""

    def replay(self, stream_handle: int) -> None:
        """Enqueue the recorded work on the stream ``stream_handle``."""

    def close(self) -> None:
        """Free the graph; safe to call twice."""


class GraphCaptureError(RuntimeError):
    """The driver refused to record or launch a graph."""


def launch_graph(exec_handle: int, stream_handle: int) -> None:
    """Enqueue an instantiated graph (a ``CUgraphExec``, which is also a ``cudaGraphExec_t``)
    on a stream: one driver call, with none of the per-call device and stream look-ups of a
    framework's replay (profiled on the H200: those cost more host time than the launch)."""
    result = _libcuda().cuGraphLaunch(ctypes.c_void_p(exec_handle),
                                      ctypes.c_void_p(int(stream_handle)))
    _check("cuGraphLaunch", result)


@functools.cache
def _libcuda() -> ctypes.CDLL:
    return ctypes.CDLL("libcuda.so.1")


def _check(call: str, result: int) -> None:
    if result != 0:
        raise GraphCaptureError(
            f"{call} failed with CUDA error {result}: work on the stream could not be "
            "recorded or replayed as a CUDA graph (use the step-by-step GPU path)")


class DriverStreamCapture:
    """``CapturedGraph`` recorded with cuStreamBeginCapture / cuStreamEndCapture."""

    def __init__(self, stream_handle: int, enqueue: Callable[[], None]) -> None:
        cuda = _libcuda()
        stream = ctypes.c_void_p(int(stream_handle))
        _check("cuStreamBeginCapture_v2",
               cuda.cuStreamBeginCapture_v2(stream, _CAPTURE_MODE_THREAD_LOCAL))
        graph = ctypes.c_void_p()
        try:
            enqueue()
        finally:
            ended = cuda.cuStreamEndCapture(stream, ctypes.byref(graph))
        _check("cuStreamEndCapture", ended)
        self._graph = graph
        self._exec = ctypes.c_void_p()
        _check("cuGraphInstantiateWithFlags", cuda.cuGraphInstantiateWithFlags(
            ctypes.byref(self._exec), graph, ctypes.c_ulonglong(0)))

    def replay(self, stream_handle: int) -> None:
        if self._exec is None:
            raise GraphCaptureError("the graph is closed")
        launch_graph(self._exec.value, stream_handle)

    def close(self) -> None:
        if self._exec is not None:
            _libcuda().cuGraphExecDestroy(self._exec)
            _libcuda().cuGraphDestroy(self._graph)
        self._exec = self._graph = None
