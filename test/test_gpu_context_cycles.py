"""On a real GPU: creating and closing CUDA contexts and GPU detectors over and over on one
thread (as a node does over configure/cleanup cycles) leaves the thread's context stack as it
found it and GPU memory flat."""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import pytest
from test_gpu_processing import GPU_MISSING

pytestmark = pytest.mark.skipif(GPU_MISSING is not None, reason=GPU_MISSING or "")

CYCLES = 100
DETECTOR_CYCLES = int(os.environ.get("SGDN_GPU_DETECTOR_CYCLES", "100"))


def _on_a_fresh_thread(work):
    """Run ``work`` on a new thread (a clean context stack) and return what it returns."""
    result: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _stack_depth() -> int:
    """How many contexts the driver's stack of this thread holds (put back afterwards)."""
    libcuda = ctypes.CDLL("libcuda.so.1")
    popped = []
    for _ in range(64):  # bounded: a stack deeper than this is a failure in itself
        handle = ctypes.c_void_p()
        libcuda.cuCtxGetCurrent(ctypes.byref(handle))
        if not handle.value:
            break
        popped.append(handle.value)
        libcuda.cuCtxSetCurrent(ctypes.c_void_p(None))  # pops even a context already gone
    for handle in reversed(popped):
        libcuda.cuCtxPushCurrent(ctypes.c_void_p(handle))
    return len(popped)


def test_context_cycles_on_one_thread_leave_no_context_current():
    from sgdn_ros.gpu.cuda_context import CudaContext, DriverContextStack

    def cycles() -> list[int | None]:
        left_current = []
        for _ in range(CYCLES):
            context = CudaContext(0)
            context.push()
            context.release()
            left_current.append(DriverContextStack().current())
        return left_current

    assert _on_a_fresh_thread(cycles) == [None] * CYCLES


@pytest.mark.parametrize("first_released", ["inner", "outer"])
def test_two_holders_release_in_either_order_on_the_gpu(first_released):
    """The outer holder released first is a detector replaced while the next one runs."""
    from sgdn_ros.gpu.cuda_context import CudaContext, DriverContextStack

    def holders() -> tuple[int, int | None, int | None]:
        outer, inner = CudaContext(0), CudaContext(0)
        outer.push()
        inner.push()
        first, last = (inner, outer) if first_released == "inner" else (outer, inner)
        first.release()
        still_current = DriverContextStack().current()
        depth = _stack_depth()
        last.release()
        return depth, still_current, DriverContextStack().current()

    depth, still_current, after = _on_a_fresh_thread(holders)
    assert depth == 1 and still_current is not None and after is None


def test_gpu_detector_cycles_keep_the_stack_and_gpu_memory_flat(tmp_path):
    torch = pytest.importorskip("torch", reason="the GPU detector is tested with torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch sees no CUDA GPU")
    from sgdn_ros.backends import create_backend
    from sgdn_ros.core.decoding import DecodeConfig
    from sgdn_ros.core.preprocessing import PreprocessConfig
    from sgdn_ros.network.checkpoint import save_checkpoint
    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.pipeline.factory import create_detector
    from sgdn_ros.training.scenes import render_tabletop_scene
    from sgdn_ros.training.train import preset_config

    torch.manual_seed(0)
    config = preset_config("light")
    checkpoint = tmp_path / "light.pt"
    save_checkpoint(checkpoint, build_sgdn(config), config)
    image, _objects = render_tabletop_scene(0, 480, 640)

    def cycles() -> tuple[list[int], list[int]]:
        depths, used = [], []
        for _ in range(DETECTOR_CYCLES):
            detector = create_detector(create_backend("torch", checkpoint), PreprocessConfig(),
                                       DecodeConfig(), "on")
            assert detector.processing == "gpu"
            detector.detect(image)
            detector.close()
            depths.append(_stack_depth())
            free, total = torch.cuda.mem_get_info()
            used.append(total - free)
        return depths, used

    depths, used = _on_a_fresh_thread(cycles)
    warm = min(9, DETECTOR_CYCLES - 1)
    print(f"GPU detector cycles: stack depth first/last {depths[0]}/{depths[-1]}, GPU memory "
          f"used after cycle {warm + 1} {used[warm] / 2**20:.0f} MiB, after {DETECTOR_CYCLES} "
          f"{used[-1] / 2**20:.0f} MiB")
    assert depths[-1] == depths[0] <= 1
    assert used[-1] - used[warm] < 64 * 2**20
    assert np.all(np.array(depths) == depths[0])
