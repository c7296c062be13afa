"""GPU benchmarks, each comparing ways of running in the same run.

``python3 -m sgdn_ros.tools.gpu_benchmark`` prints (docs/performance-gpu.md):

- ``benchmark_detectors``: whole frames, raw 640x480 camera bytes to grasps: the author's way,
  today's GPU path step by step, and the compiled network in one CUDA graph per frame, on the
  PyTorch CUDA backend (TensorRT cannot execute on the machines this project was measured on;
  the GPU path treats both backends alike through ``infer_device`` and ``capture_graph``).
  It runs first, and the author's way runs in a process of its own: that way's 100 MB of maps
  copied to the host per frame left the host side of later frames slower
  (``authors_way_in_a_child``).
- ``benchmark_gpu_vs_cpu``: the pre- and post-processing steps alone, on output maps already
  on the GPU (as TensorRT leaves them).
- the compile time of a restart, from the cache the first compile filled.

It lives in tools, not in ``sgdn_ros.gpu`` as issue 13 named it: it builds networks and
detectors, and the gpu layer imports only core (``.importlinter``).
"""

from __future__ import annotations

import copy
import platform
import statistics
import subprocess
import sys
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
from sgdn_ros.tools.authors_way import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    authors_way_in_a_child,
    benchmark_scene,
)
from sgdn_ros.tools.timing import median_wall_ms

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
            "gpu_pre": median_wall_ms(gpu_preprocess, repeats),
            "cpu_pre": median_wall_ms(lambda: cpu_preprocessor(frame), repeats),
            "gpu_dec": median_wall_ms(lambda: decoder.decode(*device_maps, config), repeats),
            "cpu_dec": median_wall_ms(lambda: decode_grasps(*host_maps, geometry, config), repeats),
            "copy": median_wall_ms(copy_maps, repeats),
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


def benchmark_detectors(repeats: int = 50,
                        models: tuple[tuple[str, int], ...] = DETECTOR_MODELS,
                        author_repeats: int = 5) -> list[str]:
    """Whole frames, raw 640x480 bgr8 bytes to grasps, three ways per model (markdown lines):

    - the author's: eager FP32, every output map copied to the host, CPU preprocessing and
      whole-map decoding (``reference_planes``, ``decode_grasps_full``);
    - today's GPU path, step by step: FP16 eager network in the backend's CUDA graph, GPU
      preprocessing and decoding with synchronisations between the stages;
    - compiled + one graph: FP16 TorchInductor network, the whole frame one CUDA graph.

    Random weights (batch norm calibrated, able logits spread), so each model's threshold is
    the 99.9th percentile of its confidence map on the frame: about 100 pixels pass it, as a
    cluttered scene gives a trained model. The two GPU paths alternate frame by frame.
    """
    import torch

    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.tools.torch_benchmark import calibrate_batch_norm, spread_able_logits
    from sgdn_ros.training.train import preset_config

    _check_repeats(repeats)
    _check_repeats(author_repeats)
    if not torch.cuda.is_available():
        raise GpuProcessingError("benchmark_detectors needs PyTorch with a CUDA GPU")
    bgr = benchmark_scene()
    frame = bgr_as_raw_image(bgr)
    planes, _geometry = Preprocessor(PreprocessConfig())(bgr)
    lines = [
        f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}, {_pycuda_version()}; "
        f"one {FRAME_WIDTH}x{FRAME_HEIGHT} bgr8 frame as raw bytes; peaks mode, at most 5 "
        f"grasps; median of {repeats} frames per GPU path (alternating), {author_repeats} for "
        f"the author's way (in a process of its own); \"alone\": each GPU path's median of "
        f"{repeats} frames back to back, as a node runs it",
        "",
        "| model | path | preprocess ms | infer ms | decode ms | frame ms | frame ms alone | "
        "speed-up vs the author's | vs step by step | bytes GPU -> host | same grasps as step "
        "by step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for preset, classes in models:
        torch.manual_seed(0)
        config = preset_config(preset, classes)
        model = spread_able_logits(calibrate_batch_norm(build_sgdn(config).to("cuda")), planes)
        rows, note = _three_ways(model, config, frame, repeats, author_repeats)
        lines += [f"| {preset}, K = {classes}{row}" for row in rows]
        notes.append(f"{preset}: {note}")
    return [*lines, "", *notes]


def _three_ways(model, config, frame, repeats: int, author_repeats: int
                ) -> tuple[list[str], str]:
    """The table rows of one model (after its name) and a note on the compile."""
    import torch

    from sgdn_ros.backends.torch_backend import TorchBackend
    from sgdn_ros.pipeline.factory import gpu_detector

    def backend(**options):
        return TorchBackend.from_module(copy.deepcopy(model), config, device="cuda", **options)

    step = gpu_detector(backend(precision="fp16", cuda_graph=True), PreprocessConfig(),
                        DecodeConfig(), frame_graph=False)
    compiled = backend(precision="fp16", cuda_graph=True, compile=True)
    graph = gpu_detector(compiled, PreprocessConfig(), DecodeConfig())
    try:
        threshold = float(np.quantile(step.detect(frame).confidence_map(), 0.999))
        step.decode_config = graph.decode_config = DecodeConfig(confidence_threshold=threshold)
        timings = _alternate({"step": step.detect, "graph": graph.detect}, frame, repeats)
        for path, detect in (("step", step.detect), ("graph", graph.detect)):
            timings[path]["alone"] = median_wall_ms(lambda detect=detect: detect(frame), repeats)
        grasps = {"step": step.detect(frame).grasps, "graph": graph.detect(frame).grasps}
        bytes_back = {"graph": graph.path.bytes_copied_device_to_host()}
        step.detect(frame)
        bytes_back["step"] = step.path.bytes_copied_device_to_host()
        graph_note = graph.path.frame_graph_reason
        disabled = graph.path.frame_graph_disabled_reason
    finally:  # the GPU paths pop their contexts in the reverse order of their pushes
        graph.close()
        step.close()
        torch.cuda.empty_cache()
    author_ms, grasps["author"], bytes_back["author"] = authors_way_in_a_child(
        model, config, threshold, author_repeats)
    timings["author"] = {"frame": author_ms, "alone": author_ms}
    rows = []
    for path, label in (("author", "author's way (eager FP32, maps to host, CPU decoding)"),
                        ("step", "GPU path step by step (eager FP16 + CUDA graph)"),
                        ("graph", "compiled + one CUDA graph per frame")):
        stages = timings[path]
        cells = [f"{stages[stage]:.3f}" if stage in stages else "-"
                 for stage in ("preprocess", "infer", "decode")]
        frame_ms = stages["frame"]
        same = "-" if path == "step" else _agreement(grasps[path], grasps["step"])
        rows.append(
            f", {len(grasps['step'])} grasps | {label} | {' | '.join(cells)} | {frame_ms:.3f} | "
            f"{stages['alone']:.3f} | "
            f"{timings['author']['frame'] / frame_ms:.1f}x | "
            f"{timings['step']['frame'] / frame_ms:.2f}x | {bytes_back[path]:,} | {same} |")
    return rows, (f"{compiled.name}: {compiled.load_note.lstrip('; ')}; the new path: {graph_note}"
                  + (f"; DISABLED at run time: {disabled}" if disabled else ""))


def _alternate(paths: dict[str, Callable], frame: object, repeats: int
               ) -> dict[str, dict[str, float]]:
    """Median milliseconds per stage and per frame of each path, run turn about so that
    drifts in clock speed or load hit all alike."""
    samples: dict[str, dict[str, list[float]]] = {path: {} for path in paths}
    for round_index in range(repeats + 3):  # three warm-up rounds, not recorded
        for path, detect in paths.items():
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


def _agreement(grasps: list, reference: list) -> str:
    """"yes" when the pixels and angle classes are the same, with the largest confidence
    difference (precision and kernel choice change the logits' rounding)."""
    def key(grasp) -> tuple[int, int, int]:
        return grasp.crop_row, grasp.crop_col, grasp.angle_class

    if [key(g) for g in grasps] != [key(g) for g in reference]:
        return f"NO ({len(grasps)} against {len(reference)})"
    difference = max((abs(g.confidence - r.confidence) for g, r in zip(grasps, reference)),
                     default=0.0)
    return f"yes (confidence within {difference:.1e})"


def restart_compile_note(preset: str, classes: int) -> str:
    """Compile the model again in a fresh process with the cache the first compile filled (a
    node's restart): the load note it logs."""
    code = (
        "import torch\n"
        "from sgdn_ros.backends.torch_backend import TorchBackend\n"
        "from sgdn_ros.network.network import build_sgdn\n"
        "from sgdn_ros.training.train import preset_config\n"
        f"config = preset_config({preset!r}, {classes})\n"
        "backend = TorchBackend.from_module(build_sgdn(config), config, device='cuda', "
        "precision='fp16', cuda_graph=True, compile=True)\n"
        "print(backend.load_note.lstrip('; '))\n")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False, timeout=600)
    lines = finished.stdout.strip().splitlines()
    return lines[-1] if finished.returncode == 0 and lines else (
        f"failed: {finished.stderr.strip()[-300:]}")


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
    print("\n## Whole frames: raw bytes to grasps, three ways\n", flush=True)
    print("\n".join(benchmark_detectors()), flush=True)
    print("\n## Pre- and post-processing alone (maps already on the GPU)\n")
    print("\n".join(benchmark_gpu_vs_cpu()))
    print("\n## torch_compile on a restart (fresh process, the cache the run above filled)\n")
    for preset, classes in DETECTOR_MODELS:
        print(f"{preset}: {restart_compile_note(preset, classes)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
