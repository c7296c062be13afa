"""GPU benchmarks, each comparing the GPU path with the CPU path in the same run.

``python3 -m sgdn_ros.tools.gpu_benchmark`` prints both tables (docs/performance-gpu.md):

- ``benchmark_gpu_vs_cpu``: the pre- and post-processing steps alone, on output maps already
  on the GPU (as TensorRT leaves them).
- ``benchmark_detectors``: whole frames, raw 640x480 camera bytes to grasps, through the CPU
  ``GraspDetector`` and the GPU one (``GpuPath``) around the same PyTorch CUDA backend (TensorRT
  cannot execute on the machines this project was measured on; the GPU path treats both
  backends alike through ``infer_device``).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, decode_grasps
from sgdn_ros.core.frames import bgr_as_raw_image
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.gpu.cuda_context import CudaContext, import_pycuda_driver
from sgdn_ros.gpu.decode_kernels import GpuDecoder, decode_on_gpu
from sgdn_ros.gpu.errors import GpuProcessingError
from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor

FRAME_HEIGHT, FRAME_WIDTH = 480, 640
DETECTOR_MODELS = (("resnet101", 120), ("light", 18))


def benchmark_gpu_vs_cpu(repeats: int = 50) -> list[str]:
    """Time GPU preprocess + decode against the CPU path on one 640x480 bgr8 frame, K = 120.

    The CPU path decodes host copies of the maps, so the copy of the 1 + 2K maps it needs
    after inference on the GPU is timed as its own row. Returns markdown table lines.
    """
    from sgdn_ros.training.scenes import render_tabletop_scene

    _check_repeats(repeats)
    context = CudaContext()
    context.push()
    try:
        return _benchmark(context.device_name, repeats, render_tabletop_scene(0)[0])
    finally:
        context.pop()
        context.release()


def _benchmark(device_name: str, repeats: int, frame: np.ndarray) -> list[str]:
    driver = import_pycuda_driver()
    classes, size = 120, 320
    rng = np.random.default_rng(0)
    host_maps = [rng.normal(-1.0, 2.0, (1, channels, size, size)).astype(np.float32)
                 for channels in (1, classes, classes)]
    device_maps = [driver.to_device(maps) for maps in host_maps]
    pinned_maps = [driver.pagelocked_empty(maps.shape, np.float32) for maps in host_maps]
    stream = driver.Stream()
    preprocessor = GpuPreprocessor(stream)
    decoder = GpuDecoder(stream, size, size, classes, classes)
    config = DecodeConfig()
    height, width = frame.shape[:2]
    geometry = preprocessor.geometry_for(height, width)
    cpu_preprocessor = Preprocessor(PreprocessConfig())
    raw = bgr_as_raw_image(frame)

    def gpu_preprocess() -> None:
        preprocessor.upload_and_preprocess(raw, geometry)
        stream.synchronize()

    def copy_maps() -> None:
        for pinned, device in zip(pinned_maps, device_maps):
            driver.memcpy_dtoh_async(pinned, device, stream)
        stream.synchronize()

    try:
        gpu_grasps = decode_on_gpu(decoder, *device_maps, geometry, config)
        cpu_grasps = decode_grasps(*host_maps, geometry, config)
        agree = [(g.crop_row, g.crop_col, g.angle_class) for g in gpu_grasps] == [
            (g.crop_row, g.crop_col, g.angle_class) for g in cpu_grasps]
        timings = {
            "gpu_pre": _median_ms(gpu_preprocess, repeats),
            "cpu_pre": _median_ms(lambda: cpu_preprocessor(frame), repeats),
            "gpu_dec": _median_ms(lambda: decoder.decode(*device_maps, config), repeats),
            "cpu_dec": _median_ms(lambda: decode_grasps(*host_maps, geometry, config), repeats),
            "copy": _median_ms(copy_maps, repeats),
        }
        gpu_bytes = decoder.bytes_copied_device_to_host()
        map_bytes = sum(maps.nbytes for maps in host_maps)
    finally:
        preprocessor.close()
        decoder.close()
        for pinned, device in zip(pinned_maps, device_maps):
            pinned.base.free()
            device.free()
    gpu_total = timings["gpu_pre"] + timings["gpu_dec"]
    cpu_total = timings["cpu_pre"] + timings["copy"] + timings["cpu_dec"]
    return [
        f"GPU: {device_name}; 640x480 bgr8 frame, K = {classes}, width channels = {classes}, "
        f"{config.mode} mode, median of {repeats}; same grasps: {'yes' if agree else 'NO'}",
        "",
        "| step | GPU path (ms) | CPU path (ms) |",
        "|---|---|---|",
        f"| preprocess | {timings['gpu_pre']:.3f} | {timings['cpu_pre']:.3f} |",
        f"| copy output maps to host | 0 | {timings['copy']:.3f} |",
        f"| decode | {timings['gpu_dec']:.3f} | {timings['cpu_dec']:.3f} |",
        f"| total | {gpu_total:.3f} | {cpu_total:.3f} |",
        f"| bytes copied GPU -> host per frame | {gpu_bytes} | {map_bytes} |",
    ]


def _median_ms(work, repeats: int) -> float:
    work()  # warm-up: first-call allocations and lazy loading stay out of the timing
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        durations.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(durations)


def benchmark_detectors(repeats: int = 50,
                        models: tuple[tuple[str, int], ...] = DETECTOR_MODELS) -> list[str]:
    """Whole frames through the CPU and the GPU detector around one PyTorch CUDA backend per
    model (FP16, CUDA graph; random weights, batch norm calibrated and able logits rescaled).
    Markdown lines.

    Random weights give no meaningful confidences, so each model's threshold is set at the
    99.9th percentile of its confidence map on the frame: about 100 pixels pass it, as a
    cluttered scene gives a trained model.
    """
    import torch

    from sgdn_ros.backends.torch_backend import TorchBackend
    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.pipeline.factory import cpu_detector, gpu_detector
    from sgdn_ros.tools.torch_benchmark import calibrate_batch_norm, spread_able_logits
    from sgdn_ros.training.scenes import render_tabletop_scene
    from sgdn_ros.training.train import preset_config

    _check_repeats(repeats)
    if not torch.cuda.is_available():
        raise GpuProcessingError("benchmark_detectors needs PyTorch with a CUDA GPU")
    bgr, _objects = render_tabletop_scene(0, FRAME_HEIGHT, FRAME_WIDTH, num_objects=3)
    frame = bgr_as_raw_image(bgr)
    planes, _geometry = Preprocessor(PreprocessConfig())(bgr)
    lines = [
        f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}, {_pycuda_version()}; "
        f"one {FRAME_WIDTH}x{FRAME_HEIGHT} bgr8 frame as raw bytes; torch backend FP16 + CUDA "
        f"graph; peaks mode, at most 5 grasps; median of {repeats} frames per path, the two "
        "paths alternating",
        "",
        "| model | pre/post-processing | preprocess ms | infer ms | decode ms | frame ms | "
        "frame speed-up | bytes GPU -> host | same grasps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, classes in models:
        torch.manual_seed(0)
        config = preset_config(preset, classes)
        model = spread_able_logits(calibrate_batch_norm(build_sgdn(config).to("cuda")), planes)
        backend = TorchBackend.from_module(model, config, device="cuda", precision="fp16",
                                           cuda_graph=True)
        cpu = cpu_detector(backend, PreprocessConfig(), DecodeConfig())
        gpu = gpu_detector(backend, PreprocessConfig(), DecodeConfig())
        try:
            threshold = float(np.quantile(cpu.detect(frame).confidence_map(), 0.999))
            cpu.decode_config = gpu.decode_config = DecodeConfig(confidence_threshold=threshold)
            timings = _alternate(cpu.detect, gpu.detect, frame, repeats)
            cpu_grasps, gpu_grasps = cpu.detect(frame).grasps, gpu.detect(frame).grasps
            gpu_bytes = gpu.path.bytes_copied_device_to_host()
        finally:
            gpu.close()  # closes the shared backend too
        info = backend.info
        map_bytes = 4 * info.output_height * info.output_width * (
            1 + info.num_angle_classes + info.width_channels)
        same = "yes" if _same_grasps(cpu_grasps, gpu_grasps) else "NO"
        name = (f"{preset}, K = {classes}, {len(cpu_grasps)} grasps "
                f"(threshold {threshold:.4f})")
        cpu_frame, gpu_frame = timings["cpu"]["frame"], timings["gpu"]["frame"]
        for path, bytes_back in (("cpu", map_bytes), ("gpu", gpu_bytes)):
            stages = timings[path]
            speed_up = f"{cpu_frame / gpu_frame:.1f}x" if path == "gpu" else "1.0x"
            lines.append(
                f"| {name} | {path.upper()} | {stages['preprocess']:.3f} | "
                f"{stages['infer']:.3f} | {stages['decode']:.3f} | {stages['frame']:.3f} | "
                f"{speed_up} | {bytes_back:,} | {same} |")
    return lines


def _alternate(cpu_detect: Callable, gpu_detect: Callable, frame: object,
               repeats: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per stage and per frame of both paths, run turn about so that
    drifts in clock speed or load hit both alike."""
    samples: dict[str, dict[str, list[float]]] = {"cpu": {}, "gpu": {}}
    for round_index in range(repeats + 3):  # three warm-up rounds, not recorded
        for path, detect in (("cpu", cpu_detect), ("gpu", gpu_detect)):
            started = time.perf_counter()
            detection = detect(frame)
            elapsed = time.perf_counter() - started
            if round_index < 3:
                continue
            stages = {**detection.stage_seconds, "frame": elapsed}
            for stage, seconds in stages.items():
                samples[path].setdefault(stage, []).append(seconds * 1000.0)
    return {path: {stage: statistics.median(values) for stage, values in stages.items()}
            for path, stages in samples.items()}


def _same_grasps(cpu_grasps: list, gpu_grasps: list) -> bool:
    def key(grasp) -> tuple[int, int, int]:
        return grasp.crop_row, grasp.crop_col, grasp.angle_class

    return [key(g) for g in cpu_grasps] == [key(g) for g in gpu_grasps] and all(
        abs(c.confidence - g.confidence) <= 1e-5 for c, g in zip(cpu_grasps, gpu_grasps))


def _check_repeats(repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise GpuProcessingError(f"repeats must be a positive integer, got {repeats!r}")


def _pycuda_version() -> str:
    import pycuda

    return f"pycuda {pycuda.VERSION_TEXT}, CUDA driver {_driver_version()}"


def _driver_version() -> str:
    version = import_pycuda_driver().get_driver_version()
    return f"{version // 1000}.{version % 1000 // 10}"


def main() -> int:
    print(f"Python {platform.python_version()}")
    print("\n## Pre- and post-processing alone (maps already on the GPU)\n")
    print("\n".join(benchmark_gpu_vs_cpu()))
    print("\n## Whole frames: raw bytes to grasps, same backend\n")
    print("\n".join(benchmark_detectors()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
