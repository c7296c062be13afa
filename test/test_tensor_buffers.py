"""The TensorRT backend's named I/O buffers, run for real with pycuda on a GPU.

No TensorRT engine can execute on the machines this project is tested on (README), so the
engine call is the one part of the backend's frame path not run here; these tests run the
rest: allocation by tensor name, page-locked staging, async copies on one stream, fresh
outputs, release on the inference thread.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gpu_processing import GPU_MISSING, run_python_cleanly

from sgdn_ros.backends.tensorrt.tensor_buffers import TensorBuffers, TensorSpec

needs_gpu = pytest.mark.skipif(GPU_MISSING is not None, reason=GPU_MISSING or "")
OUTPUTS = ("output_able", "output_angle", "output_width")


def sgdn_tensors(classes: int = 120) -> list[TensorSpec]:
    """An SGDN engine's I/O as TensorRT reports it: one input, three outputs, float32."""
    float32 = np.dtype(np.float32)
    return [
        TensorSpec("input", True, (1, 3, 320, 320), float32),
        TensorSpec("output_able", False, (1, 1, 320, 320), float32),
        TensorSpec("output_angle", False, (1, classes, 320, 320), float32),
        TensorSpec("output_width", False, (1, classes, 320, 320), float32),
    ]


def test_sizes_and_names_are_checked_before_any_allocation():
    assert sgdn_tensors()[2].nbytes == 120 * 320 * 320 * 4
    twice = [sgdn_tensors()[0], sgdn_tensors()[0]]
    with pytest.raises(ValueError, match="unique"):
        TensorBuffers(None, twice, None)
    with pytest.raises(ValueError, match="unknown tensors"):
        TensorBuffers(None, sgdn_tensors(), None, host_outputs=("output_grasp",))


def round_trip(classes: int, seed: int) -> bool:
    """Upload planes and download outputs through the buffers, checking every byte; the
    CUDA context is pushed and popped here, on the calling thread."""
    import pycuda.driver as driver

    from sgdn_ros.gpu.cuda_context import CudaContext

    rng = np.random.default_rng(seed)
    context = CudaContext()
    context.push()
    try:
        stream = driver.Stream()
        buffers = TensorBuffers(driver, sgdn_tensors(classes), stream, OUTPUTS)
        try:
            planes = rng.normal(size=(1, 3, 320, 320)).astype(np.float32)
            buffers.upload("input", planes)
            stream.synchronize()
            on_device = np.empty_like(planes)
            driver.memcpy_dtoh(on_device, buffers.address("input"))
            assert np.array_equal(on_device, planes)

            written = [rng.normal(size=spec.shape).astype(np.float32)
                       for spec in sgdn_tensors(classes)[1:]]
            for name, maps in zip(OUTPUTS, written):
                driver.memcpy_htod(buffers.address(name), maps)  # what the engine would write
            first = buffers.download(OUTPUTS)
            assert all(np.array_equal(got, want) for got, want in zip(first, written))
            driver.memcpy_htod(buffers.address("output_able"), -written[0])
            second = buffers.download(OUTPUTS)
            assert np.array_equal(second[0], -written[0])
            assert np.array_equal(first[0], written[0])  # earlier results are not overwritten
        finally:
            buffers.free()
        del stream
    finally:
        context.pop()
        context.release()
    return True


@needs_gpu
@pytest.mark.parametrize("classes", [18, 120])
def test_named_buffers_round_trip_every_byte(classes):
    assert round_trip(classes, seed=classes)


@needs_gpu
def test_addresses_are_distinct_and_do_not_overlap():
    import pycuda.driver as driver

    from sgdn_ros.gpu.cuda_context import CudaContext

    with CudaContext():
        stream = driver.Stream()
        buffers = TensorBuffers(driver, sgdn_tensors(), stream, OUTPUTS)
        try:
            spans = sorted((buffers.address(spec.name), spec.nbytes) for spec in sgdn_tensors())
            assert all(start + size <= next_start
                       for (start, size), (next_start, _) in zip(spans, spans[1:]))
            with pytest.raises(ValueError, match="float32 \\(1, 3, 320, 320\\)"):
                buffers.upload("input", np.zeros((1, 3, 160, 160), np.float32))
            with pytest.raises(KeyError, match="no host mirror"):
                TensorBuffers(driver, sgdn_tensors(), stream).download(OUTPUTS)
        finally:
            buffers.free()
        buffers.free()  # twice is fine
        with pytest.raises(KeyError, match="freed"):
            buffers.address("input")
        del stream


@needs_gpu
def test_worker_thread_cycles_exit_cleanly():
    """Three inference threads in turn, each owning its buffers and context, in a fresh
    interpreter: pycuda reports a context left pushed only at exit."""
    script = ("import threading, test_tensor_buffers as t\n"
              "results = []\n"
              "def run(seed):\n"
              "    results.append(t.round_trip(18, seed))\n"
              "for seed in range(3):\n"
              "    thread = threading.Thread(target=run, args=(seed,))\n"
              "    thread.start(); thread.join()\n"
              "raise SystemExit(0 if results == [True] * 3 else 3)\n")
    run_python_cleanly(script)


@needs_gpu
def test_fewer_frames_than_the_buffers_hold_go_to_their_start():
    """A dynamic-batch engine's buffers hold max_batch frames; a run of fewer frames uploads
    and downloads only those."""
    import pycuda.driver as driver

    from sgdn_ros.gpu.cuda_context import CudaContext

    float32 = np.dtype(np.float32)
    tensors = [TensorSpec("input", True, (4, 3, 8, 8), float32),
               TensorSpec("output_able", False, (4, 1, 8, 8), float32)]
    rng = np.random.default_rng(4)
    with CudaContext():
        stream = driver.Stream()
        buffers = TensorBuffers(driver, tensors, stream, ("output_able",))
        try:
            planes = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
            buffers.upload("input", planes)
            stream.synchronize()
            on_device = np.empty((4, 3, 8, 8), np.float32)
            driver.memcpy_dtoh(on_device, buffers.address("input"))
            assert np.array_equal(on_device[:2], planes)

            written = rng.normal(size=(4, 1, 8, 8)).astype(np.float32)
            driver.memcpy_htod(buffers.address("output_able"), written)
            (able,) = buffers.download(("output_able",), frames=2)
            assert able.shape == (2, 1, 8, 8) and np.array_equal(able, written[:2])
            with pytest.raises(ValueError, match="1 to 4 frames"):
                buffers.upload("input", np.zeros((5, 3, 8, 8), np.float32))
        finally:
            buffers.free()
        del stream
