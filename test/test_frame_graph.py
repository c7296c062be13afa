"""One CUDA graph per frame (GPU machine): the same grasps as the step-by-step GPU path for
every encoding the kernel converts, with changing decode settings, in batches; frames the
kernel does not convert still work; and the driver-level recording the TensorRT backend uses,
with its overflow fallback, on maps in plain device memory."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from test_gpu_detector import MISSING, trained_light  # noqa: F401 - the fixture is used
from test_gpu_processing import TO_ENCODING, assert_same_grasps, image_message

from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.frames import raw_image_from_message
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.training.scenes import render_tabletop_scene

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def _frames(encoding: str, row_padding: int, count: int = 4):
    for seed in range(count):
        image, _ = render_tabletop_scene(100 + seed, 480, 640, num_objects=1 + seed % 3)
        yield raw_image_from_message(image_message(image, encoding, row_padding))


def _torch_backend(checkpoint, **options):
    from sgdn_ros.backends.torch_backend import TorchBackend

    return TorchBackend(checkpoint, device="cuda", **options)


@contextlib.contextmanager
def _graph_and_step(backend, preprocess_config: PreprocessConfig | None = None):
    """(step-by-step GPU detector, frame-graph GPU detector) on one backend."""
    from sgdn_ros.pipeline.factory import gpu_detector

    preprocess_config = preprocess_config or PreprocessConfig()
    step = gpu_detector(backend, preprocess_config, DecodeConfig(), frame_graph=False)
    graph = gpu_detector(backend, preprocess_config, DecodeConfig())
    try:
        assert "one CUDA graph per frame" in graph.processing_reason
        assert "step by step (frame_graph is off)" in step.processing_reason
        yield step, graph
    finally:
        graph.path.close()
        step.close()


def _threshold(detector, frame) -> None:
    detector.decode_config = DecodeConfig(
        confidence_threshold=float(np.quantile(detector.detect(frame).confidence_map(), 0.999)))


@pytest.mark.parametrize("encoding", sorted(TO_ENCODING))
@pytest.mark.parametrize("row_padding", [0, 5])
def test_graph_gives_the_step_by_step_grasps(trained_light, encoding, row_padding):  # noqa: F811
    with _graph_and_step(_torch_backend(trained_light, cuda_graph=True)) as (step, graph):
        found = 0
        for frame in _frames(encoding, row_padding, count=3):
            expected = step.detect(frame)
            got = graph.detect(frame)
            assert got.geometry == expected.geometry
            assert_same_grasps(got.grasps, expected.grasps)
            np.testing.assert_allclose(got.confidence_map(), expected.confidence_map(),
                                       rtol=0, atol=1e-6)
            found += len(expected.grasps)
        assert graph.path.frame_graph_disabled_reason is None
        assert graph.path.bytes_copied_device_to_host() == 2052
        assert found > 0, "no grasp: nothing was compared"


def test_decode_settings_change_between_replays(trained_light):  # noqa: F811
    with _graph_and_step(_torch_backend(trained_light)) as (step, graph):
        frame = next(_frames("bgr8", 0))
        for config in (DecodeConfig(mode="max"), DecodeConfig(max_grasps=2, min_distance=30),
                       DecodeConfig(confidence_threshold=1.0),
                       DecodeConfig(confidence_threshold=0.05, max_grasps=100, min_distance=1),
                       DecodeConfig()):
            step.decode_config = graph.decode_config = config
            assert_same_grasps(graph.detect(frame).grasps, step.detect(frame).grasps)
        assert graph.path.frame_graph_disabled_reason is None


def test_a_batch_in_one_graph_gives_the_grasps_of_single_frames(trained_light):  # noqa: F811
    small, _ = render_tabletop_scene(9, 240, 300, num_objects=2)
    batch = [*_frames("bgra8", 1, count=2), next(_frames("mono8", 0)), small]
    with _graph_and_step(_torch_backend(trained_light, max_batch=4)) as (step, graph):
        _threshold(step, batch[0])
        graph.decode_config = step.decode_config
        detections = graph.detect_batch(batch)
        expected = step.detect_batch(batch)
        for detection, want in zip(detections, expected):
            assert detection.geometry == want.geometry
            assert_same_grasps(detection.grasps, want.grasps)
        singles = [graph.detect(frame) for frame in batch]
        for detection, single in zip(detections, singles):
            assert [(g.crop_row, g.crop_col, g.angle_class) for g in detection.grasps] == [
                (g.crop_row, g.crop_col, g.angle_class) for g in single.grasps]
        assert sum(len(want.grasps) for want in expected) > 0
        assert graph.path.frame_graph_disabled_reason is None


def test_frames_the_kernel_does_not_convert_go_step_by_step(trained_light):  # noqa: F811
    image, _ = render_tabletop_scene(7, 480, 640, num_objects=2)
    wide = (image.astype(np.uint16) * 257).reshape(-1).view(np.uint8)
    from types import SimpleNamespace

    bgr16 = raw_image_from_message(SimpleNamespace(
        height=480, width=640, step=640 * 6, encoding="bgr16", is_bigendian=0, data=wide))
    small, _ = render_tabletop_scene(8, 240, 300, num_objects=1)
    for config, frame in ((PreprocessConfig(), bgr16),
                          (PreprocessConfig(small_image_policy="resize"), small)):
        with _graph_and_step(_torch_backend(trained_light), config) as (step, graph):
            assert_same_grasps(graph.detect(frame).grasps, step.detect(frame).grasps)
            assert graph.path.frame_graph_disabled_reason is None


def test_driver_recording_with_plain_device_maps_and_overflow():
    """As the TensorRT backend records: the driver's stream capture, the maps in device memory
    of their own (random, K = 120). Thresholds from none to every pixel: a record too full
    goes step by step on the same maps, with the same grasps."""
    import pycuda.driver as driver

    from sgdn_ros.gpu.candidates import decoded_candidates, grasps_from_decoded
    from sgdn_ros.gpu.cuda_context import CudaContext
    from sgdn_ros.gpu.decode_kernels import GpuDecoder, decode_on_gpu
    from sgdn_ros.gpu.frame_graph import FrameGraph, GraphKernels
    from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor
    from sgdn_ros.gpu.stream_capture import DriverStreamCapture

    rng = np.random.default_rng(1)
    maps = [rng.normal(-1.0, 2.0, (1, channels, 320, 320)).astype(np.float32)
            for channels in (1, 120, 120)]
    maps[0][0, 0, 100:160, 100:160] = 3.0  # a plateau: ties suppress each other
    context = CudaContext()
    context.push()
    try:
        stream = driver.Stream()
        device_maps = [driver.to_device(array) for array in maps]
        preprocessor = GpuPreprocessor(stream)
        kernels = GraphKernels(stream, 320, 320, 120, 120)
        decoder = GpuDecoder(stream, 320, 320, 120, 120)
        frame = next(_frames("rgb8", 0))
        geometry = preprocessor.geometry_for(frame.height, frame.width)
        graph = FrameGraph(kernels, preprocessor, [frame], [geometry],
                           lambda _planes, _batch: [int(m) for m in device_maps],
                           lambda enqueue: DriverStreamCapture(stream.handle, enqueue),
                           DecodeConfig())
        fallbacks = 0
        try:
            for config in (DecodeConfig(), DecodeConfig(confidence_threshold=0.9),
                           DecodeConfig(confidence_threshold=0.5, min_distance=1,
                                        max_grasps=100),
                           DecodeConfig(confidence_threshold=0.93, min_distance=2,
                                        max_grasps=100),
                           DecodeConfig(mode="max")):
                graph.load([frame], config)
                record = graph.replay()[0]
                decoded = decoded_candidates(record, 320, kernels.capacity, config)
                want = decode_on_gpu(decoder, *device_maps, geometry, config)
                if decoded is None:
                    fallbacks += 1
                    continue
                assert_same_grasps(grasps_from_decoded(decoded, 120, geometry, config), want)
        finally:
            graph.close()
            for closing in (kernels, preprocessor, decoder):
                closing.close()
            for allocation in device_maps:
                allocation.free()
            stream = None
    finally:
        context.release()
    assert fallbacks >= 1, "no record overflowed: the fallback was not exercised"
