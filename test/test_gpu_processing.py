"""GPU pre- and post-processing must give what the CPU path gives, on the inference thread."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import threading
from contextlib import closing
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sgdn_ros.core.decoding import DecodeConfig, confidence_map, decode_grasps
from sgdn_ros.core.frames import image_message_to_bgr, raw_image_from_message
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.gpu.cuda_context import CudaContext
from sgdn_ros.gpu.decode_kernels import GpuDecoder, decode_on_gpu
from sgdn_ros.gpu.errors import GpuProcessingError, UnsupportedOnGpuError
from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor
from sgdn_ros.tools.gpu_benchmark import benchmark_gpu_vs_cpu
from sgdn_ros.training.scenes import render_tabletop_scene


def _gpu_missing() -> str | None:
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed (it runs on the GPU machine only)"
    import pycuda.driver as driver

    try:
        driver.init()
        if driver.Device.count() == 0:
            return "no CUDA device"
    except driver.Error as error:
        return f"CUDA is not usable here: {error}"
    return None


GPU_MISSING = _gpu_missing()
pytestmark = pytest.mark.skipif(GPU_MISSING is not None, reason=GPU_MISSING or "")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TO_ENCODING = {
    "bgr8": lambda bgr: bgr,
    "rgb8": lambda bgr: bgr[..., ::-1],
    "bgra8": lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]),
    "rgba8": lambda bgr: np.dstack([bgr[..., ::-1], np.full(bgr.shape[:2], 9, np.uint8)]),
    "mono8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., np.newaxis],
}


def _with_context(work):
    """Push the primary context on this thread, run work, pop and release.

    work's pycuda objects are its own locals, so they are gone before the pop.
    """
    context = CudaContext()
    context.push()
    try:
        return _with_stream(work)
    finally:
        context.pop()
        context.release()


def _with_stream(work):
    import pycuda.driver as driver

    return work(driver.Stream())


def image_message(bgr: np.ndarray, encoding: str, row_padding: int) -> SimpleNamespace:
    pixels = np.ascontiguousarray(TO_ENCODING[encoding](bgr))
    height, width, channels = pixels.shape
    step = width * channels + row_padding
    rows = np.full((height, step), 77, np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    return SimpleNamespace(height=height, width=width, step=step, encoding=encoding,
                           is_bigendian=0, data=rows.reshape(-1))


def _preprocess_both(stream, message: SimpleNamespace) -> tuple[np.ndarray, np.ndarray]:
    """(GPU planes, CPU planes) of one image message; the geometries must agree."""
    import pycuda.driver as driver

    cpu_planes, cpu_geometry = Preprocessor(PreprocessConfig())(image_message_to_bgr(message))
    with closing(GpuPreprocessor(stream)) as preprocessor:
        geometry = preprocessor.geometry_for(message.height, message.width)
        assert geometry == cpu_geometry
        planes = preprocessor.upload_and_preprocess(raw_image_from_message(message), geometry)
        stream.synchronize()
        gpu_planes = driver.from_device(planes, (1, 3, 320, 320), np.float32)
    return gpu_planes, cpu_planes


def _random_maps(seed: int, classes: int, width_channels: int, quantised: bool,
                 size: int = 320) -> list[np.ndarray]:
    """able, angle, width logits; quantised maps have plateaus and argmax ties."""
    rng = np.random.default_rng(seed)
    maps = [rng.normal(0.0, 2.0, (1, channels, size, size)).astype(np.float32)
            for channels in (1, classes, width_channels)]
    if quantised:
        maps[0], maps[1] = np.round(maps[0]), np.round(maps[1])
    return maps


def _decode_both(stream, maps: list[np.ndarray], config: DecodeConfig,
                 max_candidates: int = 4096):
    """(GPU grasps, CPU grasps, bytes the GPU decode copied back) for host maps."""
    import pycuda.driver as driver

    geometry = Preprocessor(PreprocessConfig())(np.zeros((480, 640, 3), np.uint8))[1]
    device_maps = [driver.to_device(np.ascontiguousarray(m)) for m in maps]
    height, width = maps[0].shape[-2:]
    with closing(GpuDecoder(stream, height, width, maps[1].shape[1], maps[2].shape[1],
                            max_candidates)) as decoder:
        gpu = decode_on_gpu(decoder, *device_maps, geometry, config)
        copied = decoder.bytes_copied_device_to_host()
    for allocation in device_maps:
        allocation.free()
    return gpu, decode_grasps(*maps, geometry, config), copied


def pixels_and_classes(grasps) -> list[tuple[int, int, int]]:
    return [(g.crop_row, g.crop_col, g.angle_class) for g in grasps]


def assert_same_grasps(gpu, cpu) -> None:
    assert pixels_and_classes(gpu) == pixels_and_classes(cpu)
    for field in ("crop_width_px", "confidence", "row", "col", "angle"):
        np.testing.assert_allclose([getattr(g, field) for g in gpu],
                                   [getattr(g, field) for g in cpu], rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoding", sorted(TO_ENCODING))
@pytest.mark.parametrize(("height", "width", "row_padding"),
                         [(480, 640, 0), (480, 640, 6), (200, 280, 3), (240, 400, 0)])
def test_gpu_preprocess_equals_cpu(encoding, height, width, row_padding):
    image, _ = render_tabletop_scene(height + width, height=height, width=width,
                                     num_objects=2)
    message = image_message(image, encoding, row_padding)
    gpu_planes, cpu_planes = _with_context(lambda stream: _preprocess_both(stream, message))
    np.testing.assert_allclose(gpu_planes, cpu_planes, rtol=0, atol=1e-6)
    if height < 320:
        assert np.all(gpu_planes[..., :(320 - height) // 2, :] == 0.0)


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_a_batch_of_frames_is_preprocessed_into_one_buffer(frames):
    """Frame i's planes at offset i * 3 * H * W, equal to a single frame's and to the CPU's;
    frames of other sizes and encodings, and one uploaded from the CPU, share the batch."""
    import pycuda.driver as driver

    sizes = [(480, 640, "bgr8"), (200, 280, "rgb8"), (240, 400, "bgra8"), (480, 640, "mono8")]
    messages = [image_message(render_tabletop_scene(seed, height=height, width=width)[0],
                               encoding, seed % 3)
                for seed, (height, width, encoding) in enumerate(sizes[:frames])]
    cpu_planes = [Preprocessor(PreprocessConfig())(image_message_to_bgr(message))[0]
                  for message in messages]

    def preprocess(stream):
        singles = [_preprocess_both(stream, message)[0] for message in messages]
        with closing(GpuPreprocessor(stream, max_batch=4)) as preprocessor:
            for frame, message in enumerate(messages[:-1]):
                geometry = preprocessor.geometry_for(message.height, message.width)
                address = preprocessor.upload_and_preprocess(
                    raw_image_from_message(message), geometry, frame)
                assert address == preprocessor.planes_ptr + frame * 3 * 320 * 320 * 4
            preprocessor.upload_planes(cpu_planes[-1], frames - 1)
            stream.synchronize()
            batch = driver.from_device(preprocessor.planes_ptr, (frames, 3, 320, 320),
                                       np.float32)
        return batch, singles

    batch, singles = _with_context(preprocess)
    for frame in range(frames):
        np.testing.assert_array_equal(batch[frame:frame + 1], singles[frame])
        np.testing.assert_allclose(batch[frame:frame + 1], cpu_planes[frame], rtol=0, atol=1e-6)


def test_a_frame_outside_the_batch_is_refused():
    def preprocess(stream):
        with closing(GpuPreprocessor(stream, max_batch=2)) as preprocessor:
            preprocessor.upload_planes(np.zeros((1, 3, 320, 320), np.float32), 2)

    with pytest.raises(GpuProcessingError, match="batch slot from 0 to 1"):
        _with_context(preprocess)


def test_resize_policy_is_refused_on_gpu():
    image, _ = render_tabletop_scene(1, height=200, width=280)
    message = image_message(image, "bgr8", 0)

    def preprocess(stream):
        with closing(GpuPreprocessor(stream)) as preprocessor:
            geometry = preprocessor.geometry_for(200, 280, small_image_policy="resize")
            preprocessor.upload_and_preprocess(raw_image_from_message(message), geometry)

    with pytest.raises(UnsupportedOnGpuError, match="resize"):
        _with_context(preprocess)


DECODE_CASES = [
    DecodeConfig("peaks", 0.5, 10, 5),
    DecodeConfig("peaks", 0.9, 3, 20),
    DecodeConfig("peaks", 0.0, 1, 7),  # a ninth of the pixels or more: the overflow fallback
    DecodeConfig("peaks", 0.3, 16, 10),  # the largest radius the shared-memory tile takes
    DecodeConfig("peaks", 0.5, 24, 5),  # beyond it: each pixel reads its window itself
    DecodeConfig("max", 0.5, 10, 5),
]


@pytest.mark.parametrize("classes", [18, 120])
@pytest.mark.parametrize("per_class_width", [False, True])
@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("config", DECODE_CASES, ids=lambda c: f"{c.mode}-{c.confidence_threshold}"
                         f"-d{c.min_distance}-n{c.max_grasps}")
def test_gpu_decode_equals_decode_grasps(classes, per_class_width, quantised, config):
    maps = _random_maps(classes, classes, classes if per_class_width else 1, quantised)
    gpu, cpu, copied = _with_context(lambda stream: _decode_both(stream, maps, config))
    assert cpu, "the random maps must give grasps, or the comparison proves nothing"
    assert_same_grasps(gpu, cpu)
    if config.min_distance >= 10 and not quantised:
        assert 0 < copied < 100_000


@pytest.mark.parametrize("frames", [1, 2, 4])
@pytest.mark.parametrize("config", [DECODE_CASES[0], DECODE_CASES[2], DECODE_CASES[-1]],
                         ids=["peaks", "overflow", "max"])
def test_each_frame_of_batched_maps_decodes_as_alone(frames, config):
    """Frame i decoded at its offset in (N, C, H, W) maps: the grasps and the confidence map of
    that frame decoded alone, and decode_grasps' on the CPU."""
    import pycuda.driver as driver

    per_frame = [_random_maps(30 + frame, 18, 18, quantised=frame % 2 == 1)
                 for frame in range(frames)]
    batched = [np.concatenate(maps) for maps in zip(*per_frame)]
    geometry = Preprocessor(PreprocessConfig())(np.zeros((480, 640, 3), np.uint8))[1]

    def decode(stream):
        device_maps = [driver.to_device(maps) for maps in batched]
        with closing(GpuDecoder(stream, 320, 320, 18, 18)) as decoder:
            results = [(decode_on_gpu(decoder, *device_maps, geometry, config, frame),
                        decoder.confidence_map(device_maps[0], frame))
                       for frame in range(frames)]
        for allocation in device_maps:
            allocation.free()
        return results

    results = _with_context(decode)
    for maps, (grasps, confidences) in zip(per_frame, results):
        alone, cpu, _copied = _with_context(lambda stream, m=maps: _decode_both(stream, m, config))
        assert cpu, "the random maps must give grasps, or the comparison proves nothing"
        assert_same_grasps(grasps, alone)
        assert_same_grasps(grasps, cpu)
        np.testing.assert_allclose(confidences, confidence_map(maps[0]), atol=1e-6)


@pytest.mark.parametrize("channel_size", [(160, 160), (97, 131), (1, 1)])
@pytest.mark.parametrize("frames", [1, 3])
def test_angle_and_width_maps_before_the_last_upsampling_are_sampled_as_upsampled(
        channel_size, frames):
    """Angle and width maps smaller than the output (the torch backend hands them over at its
    heads' size: ``device_channel_size``) give, for every frame of a batch, the grasps of the
    same maps upsampled by PyTorch (bilinear, aligned corners) and decoded on the CPU."""
    torch = pytest.importorskip("torch", reason="PyTorch's upsampling is the reference")
    import pycuda.driver as driver

    rng = np.random.default_rng(sum(channel_size) + frames)
    able = rng.normal(0.0, 2.0, (frames, 1, 320, 320)).astype(np.float32)
    channels = [rng.normal(0.0, 2.0, (frames, 120, *channel_size)).astype(np.float32)
                for _ in ("angle", "width")]
    upsampled = [torch.nn.functional.interpolate(
        torch.from_numpy(maps), size=(320, 320), mode="bilinear", align_corners=True).numpy()
        for maps in channels]
    geometry = Preprocessor(PreprocessConfig())(np.zeros((480, 640, 3), np.uint8))[1]
    config = DECODE_CASES[0]

    def decode(stream):
        device_maps = [driver.to_device(maps) for maps in (able, *channels)]
        with closing(GpuDecoder(stream, 320, 320, 120, 120,
                                channel_size=channel_size)) as decoder:
            grasps = [decode_on_gpu(decoder, *device_maps, geometry, config, frame)
                      for frame in range(frames)]
        for allocation in device_maps:
            allocation.free()
        return grasps

    for frame, got in enumerate(_with_context(decode)):
        want = decode_grasps(able[frame:frame + 1], *(maps[frame:frame + 1] for maps in upsampled),
                             geometry, config)
        assert want, "the random maps must give grasps, or the comparison proves nothing"
        assert_same_grasps(got, want)


def test_channel_maps_larger_than_the_output_are_refused():
    with pytest.raises(GpuProcessingError, match="cannot be sampled for 320x320"):
        _with_context(lambda stream: GpuDecoder(stream, 320, 320, 18, 1, channel_size=(640, 320)))


def test_small_candidate_buffer_falls_back_to_the_same_grasps():
    maps = _random_maps(5, 18, 1, quantised=False)
    config = DecodeConfig("peaks", 0.5, 2, 10)
    gpu, cpu, copied = _with_context(
        lambda stream: _decode_both(stream, maps, config, max_candidates=8))
    assert_same_grasps(gpu, cpu)
    assert copied > 320 * 320 * 4


def test_threshold_one_gives_no_grasps():
    maps = _random_maps(6, 18, 1, quantised=False)
    for mode in ("peaks", "max"):
        config = DecodeConfig(mode, 1.0, 4, 5)
        gpu, cpu, _ = _with_context(lambda stream, c=config: _decode_both(stream, maps, c))
        assert gpu == cpu == []


@pytest.mark.parametrize(("classes", "width_channels"), [(120, 1), (18, 18)])
def test_gpu_decode_of_real_model_outputs(tmp_path, classes, width_channels):
    from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from sgdn_ros.models.synthetic import save_synthetic_sgdn_model

    model = save_synthetic_sgdn_model(tmp_path / "model.onnx", num_angle_classes=classes,
                                      width_channels=width_channels)
    image, _ = render_tabletop_scene(3, num_objects=3)
    planes, _ = Preprocessor(PreprocessConfig())(image)
    with OnnxRuntimeBackend(model, prefer_gpu=False) as backend:
        outputs = backend.infer(planes)
    maps = [outputs.able, outputs.angle, outputs.width]
    for config in (DecodeConfig(), DecodeConfig("max"), DecodeConfig("peaks", 0.3, 5, 10)):
        gpu, cpu, _ = _with_context(lambda stream, c=config: _decode_both(stream, maps, c))
        assert cpu
        assert_same_grasps(gpu, cpu)

    def heatmap(stream):
        import pycuda.driver as driver

        able = driver.to_device(maps[0])
        with closing(GpuDecoder(stream, 320, 320, classes, width_channels)) as decoder:
            result = decoder.confidence_map(able)
        able.free()
        return result

    np.testing.assert_allclose(_with_context(heatmap), confidence_map(maps[0]), atol=1e-6)


def run_cycle(seed: int) -> bool:
    """One start/stop of the inference thread's GPU work; True when GPU and CPU agree."""

    def work(stream) -> bool:
        image, _ = render_tabletop_scene(seed, num_objects=2)
        gpu_planes, cpu_planes = _preprocess_both(stream, image_message(image, "rgb8", 2))
        gpu, cpu, _ = _decode_both(stream, _random_maps(seed, 18, 1, False, size=96),
                                   DecodeConfig())
        return bool(np.array_equal(gpu_planes, cpu_planes) and cpu
                    and pixels_and_classes(gpu) == pixels_and_classes(cpu))

    return _with_context(work)


def run_cycle_on_worker_thread(seed: int) -> bool:
    results: dict[str, object] = {}

    def target() -> None:
        try:
            results["agree"] = run_cycle(seed)
        except BaseException as error:  # reported on the calling thread
            results["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in results:
        raise results["error"]
    return results["agree"]


def test_start_stop_cycles_on_fresh_threads():
    assert [run_cycle_on_worker_thread(seed) for seed in range(3)] == [True] * 3


def run_python_cleanly(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (the test folder importable) and check it exited
    0 with no pycuda complaint: pycuda reports a context left pushed, or an object freed on the
    wrong thread, only then."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), str(REPO_ROOT / "test"), os.environ.get("PYTHONPATH")])))
    finished = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=environment,
                              capture_output=True, text=True, timeout=600)
    for complaint in ("context stack was not empty", "PyCUDA WARNING",
                      "could not be cleaned up"):
        assert complaint not in finished.stderr, finished.stderr[-3000:]
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished


def test_process_exits_cleanly_after_a_worker_thread_cycle():
    run_python_cleanly("import sys, test_gpu_processing as t; "
                       "sys.exit(0 if t.run_cycle_on_worker_thread(7) else 3)")


def test_benchmark_reports_its_table():
    lines = benchmark_gpu_vs_cpu(repeats=3)
    assert "same grasps: yes" in lines[0]
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    for step in ("preprocess", "copy output maps to host", "decode", "total"):
        gpu_ms, cpu_ms = (float(value) for value in rows[step].split("|")[2:4])
        assert cpu_ms > 0 and (gpu_ms > 0 or step.startswith("copy"))
    gpu_bytes, cpu_bytes = (int(value) for value in re.findall(
        r"\| (\d+) ", rows["bytes copied GPU -> host per frame"]))
    assert 0 < gpu_bytes < 100_000 and cpu_bytes == (1 + 2 * 120) * 320 * 320 * 4
