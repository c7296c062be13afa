"""The GPU detector (raw bytes -> GPU preprocessing -> backend in GPU memory -> GPU decoding)
must give the CPU detector's grasps, frame after frame, on the inference thread.

The backend is PyTorch on CUDA: TensorRT cannot execute engines on the machines this project
runs on (see the README), and the detector drives both through the same ``infer_device``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import pathlib
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from test_gpu_processing import (
    GPU_MISSING,
    TO_ENCODING,
    assert_same_grasps,
    image_message,
    pixels_and_classes,
    run_python_cleanly,
)

from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.frames import raw_image_from_message, raw_image_to_bgr
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.training.scenes import render_tabletop_scene


def _torch_cuda_missing() -> str | None:
    if GPU_MISSING is not None:
        return GPU_MISSING
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (the GPU detector is tested around the torch backend)"
    import torch

    if not torch.cuda.is_available():
        return "this PyTorch sees no CUDA GPU"
    return None


MISSING = _torch_cuda_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

TRAIN_STEPS = 500


@pytest.fixture(scope="module")
def trained_light(tmp_path_factory) -> pathlib.Path:
    """A light SGDN trained briefly on the GPU: real peaks on real scenes, in seconds."""
    from sgdn_ros.training.train import TrainConfig, train

    output = tmp_path_factory.getbasetemp() / "trained_light"
    if (output / "checkpoint.pt").exists():  # trained for another module of this run
        return output / "checkpoint.pt"
    train(TrainConfig(preset="light", steps=TRAIN_STEPS, batch_size=32, workers=12,
                      device="cuda", log_every=100, checkpoint_every=TRAIN_STEPS), output,
          command="test_gpu_detector")
    return output / "checkpoint.pt"


@pytest.fixture(scope="module")
def resnet_k120(tmp_path_factory) -> pathlib.Path:
    """The published architecture (ResNet-101, K = 120, 120 width channels), random weights
    whose able logits are spread so that a threshold can select a few grasps."""
    import torch

    from sgdn_ros.network.checkpoint import save_checkpoint
    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.tools.torch_benchmark import calibrate_batch_norm, spread_able_logits
    from sgdn_ros.training.train import preset_config

    torch.manual_seed(0)
    config = preset_config("resnet101", 120)
    planes = np.concatenate([Preprocessor(PreprocessConfig())(raw_image_to_bgr(frame))[0]
                             for frame in _frames("bgr8", 0, count=3)])
    model = calibrate_batch_norm(build_sgdn(config).to("cuda"))
    model = spread_able_logits(model, planes).cpu()
    path = tmp_path_factory.mktemp("resnet") / "resnet101_k120.pt"
    save_checkpoint(path, model, config)
    return path


def _torch_backend(checkpoint: pathlib.Path, **options):
    from sgdn_ros.backends.torch_backend import TorchBackend

    return TorchBackend(checkpoint, device="cuda", **options)


@contextlib.contextmanager
def _detectors(backend, preprocess_config: PreprocessConfig | None = None):
    """(CPU detector, GPU detector) sharing one backend; both closed on the way out."""
    from sgdn_ros.pipeline.factory import cpu_detector, gpu_detector

    preprocess_config = preprocess_config or PreprocessConfig()
    gpu = gpu_detector(backend, preprocess_config, DecodeConfig())
    try:
        yield cpu_detector(backend, preprocess_config, DecodeConfig()), gpu
    finally:
        gpu.close()  # closes the shared backend too


def _frames(encoding: str, row_padding: int, count: int = 4):
    for seed in range(count):
        image, _ = render_tabletop_scene(100 + seed, 480, 640, num_objects=1 + seed % 3)
        yield raw_image_from_message(image_message(image, encoding, row_padding))


@pytest.mark.parametrize("encoding", sorted(TO_ENCODING))
@pytest.mark.parametrize("row_padding", [0, 5])
def test_trained_model_same_grasps_as_the_cpu_detector(trained_light, encoding, row_padding):
    with _detectors(_torch_backend(trained_light)) as (cpu, gpu):
        found = 0
        for frame in _frames(encoding, row_padding):
            expected = cpu.detect(frame)
            got = gpu.detect(frame)
            assert got.geometry == expected.geometry
            assert_same_grasps(got.grasps, expected.grasps)
            found += len(expected.grasps)
        assert found > 0, "the briefly trained model found no grasp: nothing was compared"


@pytest.mark.parametrize("mode", ["peaks", "max"])
def test_published_architecture_k120_same_grasps(resnet_k120, mode):
    """Random weights: the threshold is set where some 100 pixels of the frame pass it."""
    with _detectors(_torch_backend(resnet_k120, precision="fp16", cuda_graph=True)) as (cpu, gpu):
        for frame in _frames("bgr8", 0, count=3):
            threshold = float(np.quantile(cpu.detect(frame).confidence_map(), 0.999))
            cpu.decode_config = gpu.decode_config = DecodeConfig(
                mode=mode, confidence_threshold=threshold)
            expected = cpu.detect(frame)
            got = gpu.detect(frame)
            assert expected.grasps, "no grasp above the quantile threshold"
            assert_same_grasps(got.grasps, expected.grasps)
            assert gpu.path.bytes_copied_device_to_host() < 10_000


@pytest.fixture
def full_fp32_convolutions():
    """TF32 off for the test: cuDNN runs a batch and a single frame with different kernels, and
    TF32's 10-bit mantissa would part their logits by far more than float32 rounding."""
    import torch

    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = saved


def _assert_same_grasps_to_rounding(got, want) -> None:
    """A batch and single frames differ by the convolutions' rounding: the same pixels and
    classes, confidence and width to 1e-3 of their range."""
    assert pixels_and_classes(got) == pixels_and_classes(want)
    np.testing.assert_allclose([g.confidence for g in got], [g.confidence for g in want],
                               rtol=0, atol=1e-3)
    np.testing.assert_allclose([g.crop_width_px for g in got], [g.crop_width_px for g in want],
                               rtol=0, atol=1e-3 * DecodeConfig().max_width_px)


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_a_batch_gives_each_frame_the_grasps_of_single_calls(trained_light, frames,
                                                              full_fp32_convolutions):
    """N frames of several encodings and sizes in one call (one inference): per frame the
    grasps, geometry and heatmap of the CPU path's batch, and the grasps of N single calls."""
    small, _ = render_tabletop_scene(9, 240, 300, num_objects=2)
    batch = [*_frames("bgra8", 1, count=3), small][:frames]
    with _detectors(_torch_backend(trained_light, max_batch=4)) as (cpu, gpu):
        assert gpu.backend.info.max_batch == 4
        threshold = float(np.quantile(cpu.detect(batch[0]).confidence_map(), 0.999))
        cpu.decode_config = gpu.decode_config = DecodeConfig(confidence_threshold=threshold)
        detections = gpu.detect_batch(batch)
        heatmaps = [detection.confidence_map() for detection in detections]
        expected = cpu.detect_batch(batch)
        expected_heatmaps = [detection.confidence_map() for detection in expected]
        singles = [gpu.detect(frame) for frame in batch]
        cpu_singles = [cpu.detect(frame) for frame in batch]
    assert len(detections) == frames
    for detection, heatmap, want, want_heatmap, single, cpu_single in zip(
            detections, heatmaps, expected, expected_heatmaps, singles, cpu_singles):
        assert detection.geometry == want.geometry == single.geometry
        assert set(detection.stage_seconds) == {"preprocess", "infer", "decode"}
        assert_same_grasps(detection.grasps, want.grasps)
        np.testing.assert_allclose(heatmap, want_heatmap, rtol=0, atol=1e-6)
        _assert_same_grasps_to_rounding(detection.grasps, single.grasps)
        _assert_same_grasps_to_rounding(detection.grasps, cpu_single.grasps)
    assert all(detection.image is frame for detection, frame in zip(detections, batch))
    assert sum(len(want.grasps) for want in expected) > 0, "no grasp: nothing was compared"


def test_more_frames_than_max_batch_run_in_groups_with_a_graph_per_size(resnet_k120):
    """Five frames at max_batch 2: groups of 2, 2 and 1, each replaying its CUDA graph; the
    CPU path groups them alike, so the same grasps come out. A GPU frame's confidence map lives
    in the graph's outputs until the next inference: the last group's equals the CPU path's,
    an earlier group's is refused, not returned wrong."""
    frames = [*_frames("bgr8", 0, count=3), *_frames("rgb8", 2, count=2)]
    backend = _torch_backend(resnet_k120, precision="fp16", cuda_graph=True, max_batch=2)
    with _detectors(backend) as (cpu, gpu):
        threshold = float(np.quantile(cpu.detect(frames[0]).confidence_map(), 0.999))
        cpu.decode_config = gpu.decode_config = DecodeConfig(confidence_threshold=threshold)
        detections = gpu.detect_batch(frames)
        last_heatmap = detections[-1].confidence_map()
        with pytest.raises(RuntimeError, match="overwritten by a later inference"):
            detections[0].confidence_map()
        expected = cpu.detect_batch(frames)
        np.testing.assert_allclose(last_heatmap, expected[-1].confidence_map(), rtol=0,
                                   atol=1e-6)
        assert expected[0].confidence_map().shape == last_heatmap.shape  # host maps stay
    assert all(detection.image is frame for detection, frame in zip(detections, frames))
    for detection, want in zip(detections, expected):
        assert_same_grasps(detection.grasps, want.grasps)
    assert sum(len(want.grasps) for want in expected) > 0, "no grasp: nothing was compared"


def test_heatmap_comes_back_only_when_asked_and_equals_the_cpu_map(trained_light):
    with _detectors(_torch_backend(trained_light)) as (cpu, gpu):
        frame = next(_frames("rgb8", 3))
        expected = cpu.detect(frame).confidence_map()
        detection = gpu.detect(frame)
        assert gpu.path.bytes_copied_device_to_host() < 10_000  # grasps only, no map
        heatmap = detection.confidence_map()
        assert heatmap.shape == expected.shape == (320, 320)
        np.testing.assert_allclose(heatmap, expected, rtol=0, atol=1e-6)


def test_frames_the_kernel_does_not_convert_still_decode_on_the_gpu(trained_light):
    """A decoded compressed image (BGR array), a 16-bit frame and the resize policy are
    preprocessed on the CPU, then uploaded: the same grasps as the CPU detector."""
    image, _ = render_tabletop_scene(7, 480, 640, num_objects=2)
    wide = image.astype(np.uint16) * 257
    bgr16 = SimpleNamespace(height=480, width=640, step=640 * 6, encoding="bgr16",
                            is_bigendian=0, data=wide.reshape(-1).view(np.uint8))
    small, _ = render_tabletop_scene(8, 240, 300, num_objects=1)
    cases = [
        (PreprocessConfig(), image),
        (PreprocessConfig(), raw_image_from_message(bgr16)),
        (PreprocessConfig(small_image_policy="resize"), small),
    ]
    for preprocess_config, frame in cases:
        with _detectors(_torch_backend(trained_light), preprocess_config) as (cpu, gpu):
            expected = cpu.detect(frame)
            got = gpu.detect(frame)
            assert got.geometry == expected.geometry
            assert_same_grasps(got.grasps, expected.grasps)


def test_create_detector_picks_the_gpu_for_torch_on_cuda(trained_light):
    from sgdn_ros.backends import BackendOptions, create_backend
    from sgdn_ros.pipeline.factory import create_detector

    backend = create_backend("auto", trained_light, BackendOptions(cuda_device=0))
    assert backend.cuda_device == 0 and backend.name.startswith("torch-cuda")
    detector = create_detector(backend, PreprocessConfig(), DecodeConfig(), "auto")
    try:
        assert detector.processing == "gpu"
        assert "CUDA device 0" in detector.processing_reason
    finally:
        detector.close()
    backend = create_backend("torch", trained_light)
    detector = create_detector(backend, PreprocessConfig(), DecodeConfig(), "off")
    try:
        assert detector.processing == "cpu" and "off" in detector.processing_reason
    finally:
        detector.close()


def test_decode_settings_change_between_frames(trained_light):
    with _detectors(_torch_backend(trained_light)) as (cpu, gpu):
        frame = next(_frames("bgr8", 0))
        for config in (DecodeConfig(mode="max"), DecodeConfig(max_grasps=2, min_distance=30),
                       DecodeConfig(confidence_threshold=1.0)):
            cpu.decode_config = gpu.decode_config = config
            assert_same_grasps(gpu.detect(frame).grasps, cpu.detect(frame).grasps)


def _current_context():
    import pycuda.driver as driver

    return driver.Context.get_current()


def run_on_inference_worker(checkpoint: str, cycles: int) -> list[int]:
    """The node's arrangement: load, detect and close on the worker thread, frames submitted
    from this thread; returns the grasp count of each cycle's frames."""
    frames = list(_frames("bgra8", 2, count=3))
    return [_worker_cycle(checkpoint, frames) for _ in range(cycles)]


def _worker_cycle(checkpoint: str, frames: list) -> int:
    from sgdn_ros.backends import create_backend
    from sgdn_ros.pipeline.cameras import CameraScheduler
    from sgdn_ros.pipeline.detector import GraspDetector
    from sgdn_ros.pipeline.factory import create_detector
    from sgdn_ros.pipeline.worker import InferenceWorker

    counts: list[int] = []
    done = threading.Semaphore(0)

    def load() -> GraspDetector:
        detector = create_detector(create_backend("torch", checkpoint), PreprocessConfig(),
                                   DecodeConfig(), "on")
        assert _current_context() is not None
        return detector

    def handle(detector: GraspDetector, batch) -> None:
        counts.extend(len(detector.detect(item.frame).grasps) for item in batch)
        done.release()

    mailbox: CameraScheduler = CameraScheduler(1, 1)
    worker = InferenceWorker(load, handle, lambda detector: detector.close(), mailbox)
    worker.start()
    try:
        assert worker.resource.processing == "gpu"
        for frame in frames:
            mailbox.put(0, frame)
            assert done.acquire(timeout=60), "the inference thread did not answer"
    finally:
        worker.stop()
    return sum(counts)


def test_start_stop_cycles_on_the_inference_worker(trained_light):
    counts = run_on_inference_worker(str(trained_light), cycles=3)
    assert len(set(counts)) == 1 and counts[0] > 0


def test_closing_on_another_thread_is_refused_then_works_on_its_own(trained_light):
    errors: list[BaseException] = []
    with _detectors(_torch_backend(trained_light)) as (cpu, gpu):

        def close_elsewhere() -> None:
            try:
                gpu.close()
            except RuntimeError as error:
                errors.append(error)

        thread = threading.Thread(target=close_elsewhere)
        thread.start()
        thread.join()
        assert errors and "thread that created it" in str(errors[0])
        frame = next(_frames("bgr8", 0))
        assert_same_grasps(gpu.detect(frame).grasps, cpu.detect(frame).grasps)  # still usable
        gpu.close()
    gpu.close()  # closing again (the context manager did too) is fine
    with pytest.raises(RuntimeError, match="closed"):
        gpu.detect(frame)


def test_process_exits_cleanly_after_worker_cycles(trained_light):
    run_python_cleanly(
        "import sys, test_gpu_detector as t; "
        f"counts = t.run_on_inference_worker({str(trained_light)!r}, 2); "
        "sys.exit(0 if counts[0] > 0 and counts[0] == counts[1] else 3)")


def test_tensorrt_refusal_on_the_gpu_machine_leaves_no_context_current(tmp_path):
    """Where TensorRT cannot run (not installed, or TensorRT-RTX on an H100) the backend has
    already pushed the context when it finds out; it must pop it before raising."""
    finished = run_python_cleanly(
        "import sys\n"
        "import pycuda.driver as driver\n"
        "from sgdn_ros.backends import BackendUnavailable\n"
        "from sgdn_ros.backends.tensorrt.runtime import TensorRTBackend\n"
        "from sgdn_ros.models.default import TRAINED_MODEL\n"
        "try:\n"
        f"    TensorRTBackend(TRAINED_MODEL, cache_dir={str(tmp_path)!r})\n"
        "except BackendUnavailable as error:\n"
        "    print(error)\n"
        "    sys.exit(0 if driver.Context.get_current() is None else 4)\n"
        "sys.exit(5)\n")
    assert "cannot run here" in finished.stdout


def test_benchmark_reports_the_three_ways(trained_light):
    from sgdn_ros.tools.gpu_benchmark import benchmark_detectors

    lines = benchmark_detectors(repeats=3, models=(("light", 18),), author_repeats=1)
    rows = [line.split("|") for line in lines if line.startswith("| light")]
    assert len(rows) == 3
    author, step, graph = rows
    assert int(author[10].strip().replace(",", "")) == 4 * 320 * 320 * (1 + 18 + 1)
    assert 0 < int(graph[10].strip().replace(",", "")) < 10_000
    assert graph[11].strip().startswith("yes")
    assert float(graph[7]) > 0 and float(author[7]) == float(author[6])
    assert any("one CUDA graph per frame" in line for line in lines)


@pytest.mark.parametrize("channels", [1, 4])
def test_depth_kinds_on_the_gpu_path_give_the_cpu_paths_grasps(tmp_path, channels,
                                                              full_fp32_convolutions):
    """A depth (1 plane) or RGB-D (4 planes) network on the torch CUDA backend: the GPU path
    uploads the planes built on the CPU, infers and decodes on the GPU, and finds the CPU
    path's grasps, frame by frame and as a batch."""
    import torch

    from sgdn_ros.network.checkpoint import save_checkpoint
    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.tools.torch_benchmark import calibrate_batch_norm
    from sgdn_ros.training.rgbd_scenes import realsense_camera, render_rgbd_scene
    from sgdn_ros.training.train import preset_config

    torch.manual_seed(channels)
    config = dataclasses.replace(preset_config("light", 18), input_channels=channels)
    path = tmp_path / f"light_{channels}ch.pt"
    save_checkpoint(path, calibrate_batch_norm(build_sgdn(config).to("cuda")).cpu(), config)
    scenes = [render_rgbd_scene(seed, num_objects=3, camera=realsense_camera(0.6))
              for seed in range(3)]
    images = [scene.bgr for scene in scenes]
    depths = [np.where(scene.depth_mm > 0, scene.depth_mm / 1000.0, np.nan).astype(np.float32)
              for scene in scenes]
    with _detectors(_torch_backend(path, max_batch=2)) as (cpu, gpu):
        assert gpu.processing == "gpu" and gpu.input_kind == ("depth" if channels == 1
                                                               else "depth_bgr")
        threshold = float(np.quantile(cpu.detect(images[0], depths[0]).confidence_map(), 0.999))
        cpu.decode_config = gpu.decode_config = DecodeConfig(confidence_threshold=threshold)
        expected = cpu.detect_batch(images, depths)
        batched = gpu.detect_batch(images, depths)
        singles = [gpu.detect(image, depth) for image, depth in zip(images, depths)]
    assert sum(len(detection.grasps) for detection in expected) > 0
    for want, got, single in zip(expected, batched, singles):
        assert_same_grasps(got.grasps, want.grasps)
        _assert_same_grasps_to_rounding(single.grasps, want.grasps)
