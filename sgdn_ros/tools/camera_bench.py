"""Cameras 1, 2, 4, 8 through one model: frames per second and latency per camera, and how fair
the model's time is shared (each camera's frames per second against an equal share of all).

    python3 -m sgdn_ros.tools.camera_bench --level detector --backend onnxruntime
    python3 -m sgdn_ros.tools.camera_bench --level detector --backend torch-cuda --model light
    python3 -m sgdn_ros.tools.camera_bench --level node          # the installed node, over DDS

Detector level (no ROS): the node's scheduler and inference thread (``CameraScheduler``,
``InferenceWorker``, ``detect_each``) around one detector; each camera's newest 640x480 frame
waits in its slot, and with ``--rate 0`` (the default) every camera floods: a new frame
replaces the one in its slot every millisecond, so the frame taken is at most that old, as from
a camera far faster than inference. Latency runs from a frame entering its slot to its grasps.
Node level (``camera_bench_node``): the installed ``detector`` with a camera list, each camera
publishing at ``--rate`` over DDS; latency runs from the image stamp to the grasps' arrival.
Ratios within one run are the figures to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.backends import BackendOptions, InferenceBackend, create_backend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.frames import bgr_as_raw_image
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.models.batching import save_dynamic_batch_copy
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.pipeline.cameras import CameraFrame, CameraScheduler, detect_each
from sgdn_ros.pipeline.detector import GraspDetector
from sgdn_ros.pipeline.factory import GPU_PROCESSING_CHOICES, create_detector
from sgdn_ros.pipeline.worker import InferenceWorker
from sgdn_ros.tools.report_file import processor_and_cores
from sgdn_ros.tools.timing import median_wall_ms
from sgdn_ros.training.scenes import render_tabletop_scene

CAMERA_COUNTS = (1, 2, 4, 8)
FRAME_HEIGHT, FRAME_WIDTH = 480, 640
BACKENDS = ("onnxruntime", "torch-cuda", "torch-cpu")
TORCH_MODELS = {"light": 18, "resnet101": 120}  # preset -> K
FLOOD_PERIOD_S = 0.001  # a flooding camera's newest frame is replaced this often
CONFIDENCE_TOLERANCE = 1e-3
BATCH_REPEATS = 20


@dataclass(frozen=True)
class CameraRun:
    """One run of ``cameras`` cameras: per camera the latencies (s) of the frames answered in
    the measured window of ``seconds``."""

    cameras: int
    seconds: float
    latencies_s: list[list[float]]

    def fps(self) -> list[float]:
        return [len(latencies) / self.seconds for latencies in self.latencies_s]

    def total_fps(self) -> float:
        return sum(self.fps())

    def fair_shares(self) -> list[float]:
        """Each camera's frames per second over an equal share of the total (1.0: fair)."""
        equal = self.total_fps() / self.cameras
        return [fps / equal if equal > 0 else 0.0 for fps in self.fps()]


def camera_images(count: int) -> list[np.ndarray]:
    """One tabletop scene per camera, each with other objects."""
    return [render_tabletop_scene(seed, FRAME_HEIGHT, FRAME_WIDTH, num_objects=1 + seed % 3)[0]
            for seed in range(count)]


def measure_detector(make_detector: Callable[[], GraspDetector], max_batch: int,
                     images: Sequence[np.ndarray], cameras: int, seconds: float,
                     warmup_s: float, rate_hz: float) -> CameraRun:
    """``cameras`` cameras through a detector made by ``make_detector`` for ``warmup_s`` +
    ``seconds``; only answers given in the last ``seconds`` count. The worker makes, uses and
    closes the detector on its own thread, as the node's does (a GPU detector's CUDA context is
    current on its creating thread only)."""
    frames = [bgr_as_raw_image(images[camera % len(images)]) for camera in range(cameras)]
    scheduler: CameraScheduler[tuple[object, float]] = CameraScheduler(
        cameras, min(cameras, max_batch))
    answers: list[list[tuple[float, float]]] = [[] for _ in range(cameras)]  # (done, latency)

    def handle(detector: GraspDetector, batch: list[CameraFrame[tuple[object, float]]]
               ) -> None:
        results = detect_each(detector, [item.frame[0] for item in batch], [None] * len(batch))
        done = time.perf_counter()
        for item, result in zip(batch, results):
            if isinstance(result, Exception):
                raise result
            answers[item.camera].append((done, done - item.frame[1]))

    worker = InferenceWorker(make_detector, handle, lambda detector: detector.close(),
                             name="sgdn-camera-bench", mailbox=scheduler)
    worker.start()
    started = time.perf_counter()
    measured_from, end = started + warmup_s, started + warmup_s + seconds
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    due = [started + camera * period / cameras for camera in range(cameras)]
    try:
        while (now := time.perf_counter()) < end:
            if period == 0.0:
                for camera in range(cameras):
                    scheduler.put(camera, (frames[camera], time.perf_counter()))
                time.sleep(FLOOD_PERIOD_S)
                continue
            camera = int(np.argmin(due))
            if due[camera] > now:
                time.sleep(due[camera] - now)
            scheduler.put(camera, (frames[camera], time.perf_counter()))
            due[camera] += period
    finally:
        worker.stop()
    return CameraRun(cameras, seconds, [
        [latency for done, latency in camera_answers if measured_from <= done <= end]
        for camera_answers in answers])


def batched_against_single(detector: GraspDetector, images: Sequence[np.ndarray]) -> str:
    """Whether the frames in one batch get the grasps each gets alone (pixel and angle class
    equal, confidence within ``CONFIDENCE_TOLERANCE``: another batch size may run other GPU
    kernels), with the threshold at 0.1 so random weights give grasps to compare."""
    frames = [bgr_as_raw_image(image) for image in images]
    configured = detector.decode_config
    detector.decode_config = dataclasses.replace(configured, confidence_threshold=0.1)
    try:
        together = [detection.grasps for detection in detector.detect_batch(frames)]
        alone = [detector.detect(frame).grasps for frame in frames]
    finally:
        detector.decode_config = configured
    pairs = [(a, b) for batched, single in zip(together, alone) for a, b in zip(batched, single)]
    grasps = sum(len(single) for single in alone)
    at_same_place = sum((a.row, a.col, a.angle_class) == (b.row, b.col, b.angle_class)
                        for a, b in pairs)
    largest = max((abs(a.confidence - b.confidence) for a, b in pairs), default=0.0)
    same = (grasps > 0 and at_same_place == grasps == sum(map(len, together))
            and largest <= CONFIDENCE_TOLERANCE)
    return (f"batched against single frames ({len(frames)} frames, {grasps} grasps): "
            f"{'the same grasps' if same else 'DIFFERENT grasps'}: {at_same_place} of {grasps} "
            f"at the same pixel and angle class, largest confidence difference {largest:.2g} "
            f"(tolerance {CONFIDENCE_TOLERANCE:g})")


def batch_costs(detector: GraspDetector, images: Sequence[np.ndarray],
                counts: Sequence[int]) -> list[str]:
    """Markdown: what one inference of N frames costs, the network alone and whole frames
    through the detector, each also per frame: the per-frame cost at N against one frame alone
    is the most batching can give before any scheduling, and the two columns' difference is
    the part of a batch that is not the network. The network alone is GPU time
    between CUDA events on a GPU (the host only enqueues), wall time of ``infer`` elsewhere.
    The last line says how many times one frame's frames per second the network alone gives
    at the largest count: more than that no number of cameras can reach."""
    backend = detector.backend
    frames = [bgr_as_raw_image(images[index % len(images)]) for index in range(max(counts))]
    lines = ["| frames per inference | network alone ms | per frame | whole batch through the "
             "detector ms | per frame | frames/s at back-to-back batches |",
             "|---|---|---|---|---|---|"]
    network_per_frame_ms = {}
    for count in counts:
        network_ms = _network_ms(backend, count)
        network_per_frame_ms[count] = network_ms / count
        batch_ms = median_wall_ms(lambda count=count: detector.detect_batch(frames[:count]),
                                  BATCH_REPEATS)
        lines.append(f"| {count} | {network_ms:.3f} | {network_ms / count:.3f} | "
                     f"{batch_ms:.3f} | {batch_ms / count:.3f} | {1e3 * count / batch_ms:.0f} |")
    largest = max(counts)
    if 1 in network_per_frame_ms and largest > 1:
        bound = network_per_frame_ms[1] / network_per_frame_ms[largest]
        lines += ["", f"The network alone at {largest} frames per inference: {bound:.2f}x the "
                  f"frames per second of one frame at a time: the bound on what {largest} "
                  "cameras can get over one."]
    return lines


def _network_ms(backend: InferenceBackend, count: int) -> float:
    planes = np.zeros((count, *backend.info.input_shape[1:]), np.float32)
    device = getattr(backend, "device", None)
    if getattr(device, "type", None) == "cuda":
        import torch

        from sgdn_ros.tools.torch_benchmark import median_gpu_ms

        inputs = torch.from_numpy(planes).to(device)
        return median_gpu_ms(lambda: backend.forward_on_device(inputs), BATCH_REPEATS)
    return median_wall_ms(lambda: backend.infer(planes), BATCH_REPEATS)


def open_backend(backend: str, model: str, max_batch: int, static: bool,
                 workdir: pathlib.Path, torch_compile: bool = False) -> InferenceBackend:
    """The benchmark's backend: the shipped light model on ONNX Runtime (a dynamic-batch copy
    unless ``static``), or a preset SGDN with random weights on torch (compiled for every
    batch size with ``torch_compile``, as the node's parameter does)."""
    if backend == "onnxruntime":
        path = TRAINED_MODEL if static else save_dynamic_batch_copy(
            TRAINED_MODEL, workdir / "sgdn_light_k18_dynamic.onnx")
        return create_backend("onnxruntime", path, BackendOptions(max_batch=max_batch))
    import torch

    from sgdn_ros.backends.torch_backend import TorchBackend
    from sgdn_ros.network.network import build_sgdn
    from sgdn_ros.tools.torch_benchmark import calibrate_batch_norm
    from sgdn_ros.training.train import preset_config

    device = "cuda" if backend == "torch-cuda" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--backend torch-cuda, but this PyTorch ({torch.__version__}) sees "
                           "no CUDA GPU; use --backend onnxruntime or torch-cpu here")
    torch.manual_seed(0)
    network = calibrate_batch_norm(build_sgdn(preset_config(model, TORCH_MODELS[model]))
                                   .to(device))
    on_gpu = device == "cuda"
    return TorchBackend.from_module(network, device=device,
                                    precision="fp16" if on_gpu else "fp32",
                                    cuda_graph=on_gpu, max_batch=max_batch,
                                    compile=torch_compile)


def machine() -> str:
    return (f"{processor_and_cores()}, Python {platform.python_version()}; load average "
            f"at the start {os.getloadavg()[0]:.1f}")


def report(runs: Sequence[CameraRun]) -> list[str]:
    """Markdown: a summary row per camera count, then a row per camera."""
    one = next((run.total_fps() for run in runs if run.cameras == 1), None)
    lines = ["| cameras | frames/s, all | x one camera | frames/s per camera (min-max) | "
             "lowest share of the fair share | latency p50 / p99 ms (worst camera) |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        fps = run.fps()
        p50, p99 = _worst_percentiles(run)
        ratio = f"{run.total_fps() / one:.2f}" if one else "-"
        lines.append(f"| {run.cameras} | {run.total_fps():.1f} | {ratio} | {min(fps):.1f}-"
                     f"{max(fps):.1f} | {100 * min(run.fair_shares()):.0f} % | {p50:.1f} / "
                     f"{p99:.1f} |")
    lines += ["", "| cameras | camera | frames/s | share of the fair share | latency p50 ms | "
              "latency p99 ms |", "|---|---|---|---|---|---|"]
    for run in runs:
        for camera, (fps, share, latencies) in enumerate(zip(run.fps(), run.fair_shares(),
                                                             run.latencies_s)):
            p50, p99 = _percentiles(latencies)
            lines.append(f"| {run.cameras} | {camera} | {fps:.1f} | {100 * share:.0f} % | "
                         f"{p50:.1f} | {p99:.1f} |")
    return lines


def _percentiles(latencies_s: Sequence[float]) -> tuple[float, float]:
    if not latencies_s:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.array(latencies_s) * 1e3, (50, 99))
    return float(p50), float(p99)


def _worst_percentiles(run: CameraRun) -> tuple[float, float]:
    percentiles = [_percentiles(latencies) for latencies in run.latencies_s]
    return max(p50 for p50, _ in percentiles), max(p99 for _, p99 in percentiles)


def run_detector_level(args: argparse.Namespace) -> list[str]:
    counts = sorted(args.cameras)
    images = camera_images(max(counts))
    with tempfile.TemporaryDirectory(prefix="sgdn_camera_bench_") as workdir:

        def make_detector() -> GraspDetector:
            backend = open_backend(args.backend, args.model, max(counts), args.static,
                                   pathlib.Path(workdir), args.torch_compile)
            return create_detector(backend, PreprocessConfig(), DecodeConfig(),
                                   args.gpu_processing)

        detector = make_detector()
        try:
            same = batched_against_single(detector, images)
            costs = batch_costs(detector, images, [
                count for count in counts if count <= detector.backend.info.max_batch])
        finally:
            detector.close()
        backend = detector.backend
        runs = [measure_detector(make_detector, backend.info.max_batch, images, count,
                                 args.seconds, args.warmup, args.rate) for count in counts]
    model = "the shipped light model (K = 18)" if args.backend == "onnxruntime" else \
        f"{args.model} (K = {TORCH_MODELS[args.model]}, random weights)"
    return [f"Detector level on {machine()}",
            f"{model} on {backend.name}{backend.load_note}, up to {backend.info.max_batch} "
            "frame(s) per inference; "
            f"{detector.processing_reason}",
            f"cameras {'flooding' if args.rate == 0 else f'at {args.rate:g} Hz'}, 640x480 "
            f"frames, {args.warmup:g} s warm-up then {args.seconds:g} s measured per count", same,
            "", *report(runs), "", "One inference of N frames, back to back (median of "
            f"{BATCH_REPEATS}):", "", *costs]


def run_node_level(args: argparse.Namespace) -> list[str]:
    from sgdn_ros.ros.dds_isolation import isolate_dds
    from sgdn_ros.tools.camera_bench_node import measure_node

    isolate_dds()
    counts = sorted(args.cameras)
    log_dir = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"sgdn_camera_bench_{os.getpid()}"
    runs, offered = [], []
    with tempfile.TemporaryDirectory(prefix="sgdn_camera_bench_") as workdir:
        model = TRAINED_MODEL if args.static else save_dynamic_batch_copy(
            TRAINED_MODEL, pathlib.Path(workdir) / "sgdn_light_k18_dynamic.onnx")
        for count in counts:
            latencies, published = measure_node(model, camera_images(count), args.rate,
                                                args.seconds, args.warmup, log_dir)
            runs.append(CameraRun(count, args.seconds, latencies))
            offered.append(f"{count}: {published / args.seconds:.0f}")
    batching = ("the shipped static batch-1 model: cameras take turns" if args.static else
                "a dynamic-batch copy of the shipped light model: one inference per batch")
    return [f"Node level on {machine()}",
            f"the installed detector (ONNX Runtime on the CPU), {batching}; every camera at "
            f"{args.rate:g} Hz over DDS from one process, 640x480 bgr8; {args.warmup:g} s "
            f"warm-up then {args.seconds:g} s measured per count",
            f"frames published per second, all cameras (cameras: rate): {', '.join(offered)}",
            f"detector logs: {log_dir}", "", *report(runs)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m sgdn_ros.tools.camera_bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", choices=("detector", "node"), default="detector")
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                        help="detector level: the backend (node level: ONNX Runtime)")
    parser.add_argument("--model", choices=tuple(TORCH_MODELS), default="light",
                        help="torch backends: the preset network, random weights")
    parser.add_argument("--torch-compile", action="store_true",
                        help="torch backends: compile the network with TorchInductor for every "
                        "batch size (the node's torch_compile)")
    parser.add_argument("--static", action="store_true",
                        help="onnxruntime: the shipped static batch-1 model (cameras take "
                             "turns) instead of its dynamic-batch copy")
    parser.add_argument("--gpu-processing", choices=GPU_PROCESSING_CHOICES, default="auto",
                        help="detector level: crop and decode on the GPU where possible")
    parser.add_argument("--cameras", type=int, nargs="+", default=list(CAMERA_COUNTS))
    parser.add_argument("--rate", type=float, default=None,
                        help="frames per second per camera; 0: flood (detector level's "
                             "default); node level default 30")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per count")
    parser.add_argument("--warmup", type=float, default=2.0, help="not measured, per count")
    parser.add_argument("--write", type=pathlib.Path, help="also write the report here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(count < 1 for count in args.cameras):
        raise SystemExit(f"--cameras takes counts of at least 1, got {args.cameras}")
    if args.level == "node":
        args.rate = 30.0 if args.rate is None else args.rate
        lines = run_node_level(args)
    else:
        args.rate = 0.0 if args.rate is None else args.rate
        lines = run_detector_level(args)
    print("\n".join(lines))
    if args.write is not None:
        args.write.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
