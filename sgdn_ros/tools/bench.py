"""`sgdn-ros bench`: where a frame's time goes, measured on this machine in one run.

Per-stage times of the pipeline on 640x480 frames (convert, preprocess, infer, decode, publish)
beside the same stages as they were before (the baseline row, frames alternating between the
two), the 3-D stage (grasps located in an aligned depth image), our selected-pixel decode against
the previous one and the straightforward full-map decode at K = 120, and the installed node end
to end over DDS (paced: latency; flooded: throughput and dropped frames), and ONNX Runtime's
session settings (``session_bench``).
Ratios measured in the same run are the figures to compare; absolute times depend on the machine.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sgdn_ros.backends import create_backend
from sgdn_ros.core.compiled_stages import COMPILED_NOTE, COMPILED_STAGES
from sgdn_ros.core.decoding import DecodeConfig, Grasp, decode_grasps, decode_grasps_full
from sgdn_ros.core.depth import depth_to_metres
from sgdn_ros.core.frames import RawImage, raw_image_from_message, raw_image_to_bgr
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.core.reference_stages import reference_decode_grasps, reference_planes
from sgdn_ros.models.default import synthetic_model_path
from sgdn_ros.pipeline.detector import GraspDetector
from sgdn_ros.pipeline.grasp_poses import DepthFrame, locate_grasps
from sgdn_ros.pipeline.loading import load_detector
from sgdn_ros.pipeline.parameters import defaults, detector_settings
from sgdn_ros.tools.report_file import processor_and_cores, write_report
from sgdn_ros.tools.session_bench import measure_session_settings, session_report
from sgdn_ros.training.rgbd_scenes import realsense_camera, render_rgbd_scene
from sgdn_ros.training.scenes import render_tabletop_scene

FRAME_HEIGHT, FRAME_WIDTH = 480, 640
DECODE_REPEATS = 20
LOCATE_GRASPS = 5
LOCATE_REPEATS = 200
PACED_RATE_HZ = 2.0
FLOOD_FACTOR = 3.0  # the flooding camera runs this many times faster than inference
NODE_RUN_S = 8.0


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        milliseconds = np.array(seconds) * 1e3
        return cls(float(np.median(milliseconds)), float(np.percentile(milliseconds, 90)))


def _time_each(function: Callable[[], object], repeats: int) -> list[float]:
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        durations.append(time.perf_counter() - started)
    return durations


def _machine() -> str:
    import onnxruntime

    return (f"{processor_and_cores()}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, ONNX Runtime {onnxruntime.__version__} (CPU), "
            f"NumPy {np.__version__}")


def _frames(count: int):
    from sgdn_ros.ros.messages import camera_image_message

    images = [render_tabletop_scene(seed, FRAME_HEIGHT, FRAME_WIDTH, num_objects=1 + seed % 3)[0]
              for seed in range(count)]
    return [camera_image_message(image) for image in images]


STAGES = ("convert", "preprocess", "infer", "decode", "publish")
NON_INFERENCE = ("convert", "preprocess", "decode", "publish")
PATHS = ("baseline", "lean")


@dataclass(frozen=True)
class StageRun:
    """Per-stage timings of the lean pipeline and of the baseline (the stages as they were,
    ``sgdn_ros.core.reference_stages`` and ``publish_grasp_messages``), frames alternating
    between them in one run; ``same_grasps``: both found the same grasps in every frame."""

    timings: dict[str, dict[str, Timing]]
    same_grasps: bool

    def non_inference_ms(self, path: str) -> float:
        return sum(self.timings[path][stage].median_ms for stage in NON_INFERENCE)


def measure_stages(frames: int) -> StageRun:
    """Each stage of the pipeline the node runs, on the thread that would run it, for
    ``frames`` frames of each path: the lean one through the detector, the baseline through
    the previous stages around the same backend, alternating frame by frame so that both
    see the same machine (other load, caches after inference)."""
    from sgdn_ros.ros.messages import publish_grasp_messages, publish_grasps
    from sgdn_ros.ros.session import GraspPublishers, RosSession

    messages = _frames(min(frames, 8))
    loaded = load_detector(detector_settings(
        {**defaults(), "backend": "onnxruntime", "gpu_processing": "off"}))
    detector = loaded.detector
    durations = {path: {stage: [] for stage in STAGES} for path in PATHS}
    publish = {"baseline": publish_grasp_messages, "lean": publish_grasps}
    grasps_of = {"baseline": [], "lean": []}
    same_grasps = True
    # Not spun: the listener only has to match, so that publishing sends, as in the node.
    try:
        with RosSession("sgdn_bench_stages", spin=False) as session:
            GraspPublishers(session.node, "bench")
            by_topic = {publisher.topic_name: publisher for publisher in session.node.publishers}
            topics = by_topic["/bench/grasp"], by_topic["/bench/grasps"]
            detector.detect(raw_image_from_message(messages[0]))
            for index in range(2 * frames):
                path, message = PATHS[index % 2], messages[index // 2 % len(messages)]
                started = time.perf_counter()
                image = raw_image_from_message(message)
                durations[path]["convert"].append(time.perf_counter() - started)
                if path == "lean":
                    detection = detector.detect(image)
                    stage_seconds, grasps_of[path] = detection.stage_seconds, detection.grasps
                    same_grasps &= grasps_of["lean"] == grasps_of["baseline"]
                else:
                    stage_seconds, grasps_of[path] = _baseline_detect(detector, image)
                for stage, seconds in stage_seconds.items():
                    durations[path][stage].append(seconds)
                started = time.perf_counter()
                publish[path](*topics, grasps_of[path], message.header,
                              loaded.num_angle_classes)
                durations[path]["publish"].append(time.perf_counter() - started)
    finally:
        loaded.close()
    return StageRun({path: {stage: Timing.of(seconds) for stage, seconds in stages.items()}
                     for path, stages in durations.items()}, same_grasps)


def _baseline_detect(detector: GraspDetector, image: RawImage
                     ) -> tuple[dict[str, float], list[Grasp]]:
    """One frame through the previous preprocessing and decoding (a BGR view of the frame,
    then ``reference_planes``; ``reference_decode_grasps``) around the detector's backend."""
    started = time.perf_counter()
    planes, geometry = reference_planes(raw_image_to_bgr(image), detector.preprocess_config)
    preprocessed = time.perf_counter()
    outputs = detector.backend.infer(planes)
    inferred = time.perf_counter()
    grasps = reference_decode_grasps(outputs.able, outputs.angle, outputs.width, geometry,
                                     detector.decode_config)
    decoded = time.perf_counter()
    return {"preprocess": preprocessed - started, "infer": inferred - preprocessed,
            "decode": decoded - inferred}, grasps


def measure_decode() -> dict[str, Timing]:
    """Our decode, the previous one (whole-map peak search) and the full-map decode on the
    same K = 120 outputs of a real frame (the synthetic test model has the published K = 120;
    the trained default has K = 18)."""
    image, _objects = render_tabletop_scene(1, FRAME_HEIGHT, FRAME_WIDTH, num_objects=3)
    planes, geometry = Preprocessor(PreprocessConfig())(image)
    with create_backend("onnxruntime", synthetic_model_path()) as backend:
        outputs = backend.infer(planes)
    config = DecodeConfig()
    decoders = {"ours": decode_grasps, "previous": reference_decode_grasps,
                "full": decode_grasps_full}
    return {name: Timing.of(_time_each(lambda decode=decode: decode(
        outputs.able, outputs.angle, outputs.width, geometry, config), DECODE_REPEATS))
        for name, decode in decoders.items()}


def measure_locate() -> Timing:
    """The 3-D stage on the trained model's five best grasps of a rendered RGB-D scene at
    0.6 m (640x480, noisy 16UC1 depth), after one call that builds the camera's ray table."""
    scene = render_rgbd_scene(2, num_objects=5, camera=realsense_camera(0.6))
    depth = DepthFrame(depth_to_metres(scene.depth_mm.tobytes(), *scene.depth_mm.shape,
                                       scene.depth_mm.shape[1] * 2, "16UC1"),
                       scene.camera)
    loaded = load_detector(detector_settings({
        **defaults(), "backend": "onnxruntime", "gpu_processing": "off",
        "confidence_threshold": 0.01, "max_grasps": LOCATE_GRASPS, "min_distance": 5}))
    try:
        detection = loaded.detector.detect(scene.bgr)
    finally:
        loaded.close()
    if len(detection.grasps) != LOCATE_GRASPS:
        raise RuntimeError(f"the 3-D benchmark needs {LOCATE_GRASPS} grasps, the model found "
                           f"{len(detection.grasps)}")
    gripper = detector_settings(defaults()).gripper
    locate_grasps(detection, depth, gripper)
    return Timing.of(_time_each(lambda: locate_grasps(detection, depth, gripper),
                                LOCATE_REPEATS))


@dataclass(frozen=True)
class NodeRun:
    rate_hz: float
    published: int
    answered: int
    latency: Timing
    throughput_hz: float


def measure_node(rate_hz: float, log_dir: pathlib.Path) -> NodeRun:
    """The installed detector in its own process; latency = answer received - image stamp."""
    from sgdn_ros.ros.player import ImagePlayer
    from sgdn_ros.ros.session import (
        DetectorProcess,
        RosSession,
        publish_until_answered,
        stamp_nanoseconds,
        wait_until,
    )
    from sgdn_ros.training.scenes import write_demo_scenes

    scenes = write_demo_scenes(log_dir / "scenes", count=6)
    detector = DetectorProcess({"autostart": True, "stats_period_s": 0.0},
                               log_dir / f"detector_{rate_hz:g}hz.log")
    session = RosSession("sgdn_bench_node")
    answers = session.record_grasp_arrays(depth=100)
    player = ImagePlayer(session.node, [path for path, _objects in scenes])
    try:
        if not wait_until(lambda: player.subscription_count() > 0, 60.0):
            raise RuntimeError(f"the detector did not subscribe; see {detector.log_path}")
        answer, _message = publish_until_answered(lambda: player.publish(0), answers, 30.0)
        if answer is None:
            raise RuntimeError(f"the detector did not answer; see {detector.log_path}")
        first_measured = answers.count()
        period, started, published = 1.0 / rate_hz, time.monotonic(), 0
        while time.monotonic() - started < NODE_RUN_S:
            player.publish(published % len(player.images))
            published += 1
            time.sleep(max(0.0, started + published * period - time.monotonic()))
        time.sleep(2.0)
        measured = answers.since(first_measured)
    finally:
        session.close()
        detector.stop()
    if len(measured) < 2:
        raise RuntimeError(f"the detector answered {len(measured)} frame(s); see "
                           f"{detector.log_path}")
    latencies = [(received_ns - stamp_nanoseconds(message.header)) * 1e-9
                 for message, received_ns in measured]
    throughput = (len(measured) - 1) / ((measured[-1][1] - measured[0][1]) * 1e-9)
    return NodeRun(rate_hz, published, len(latencies), Timing.of(latencies), throughput)


def run_benchmark(frames: int = 60, write: pathlib.Path | None = None) -> int:
    from sgdn_ros.ros.dds_isolation import isolate_dds

    isolate_dds()
    machine = f"{_machine()}; load average at the start {os.getloadavg()[0]:.1f}"
    print(f"sgdn-ros bench on {machine}")
    stages = measure_stages(frames)
    locate = measure_locate()
    decodes = measure_decode()
    log_dir = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"sgdn_bench_{os.getpid()}"
    paced = measure_node(PACED_RATE_HZ, log_dir)
    infer_ms = stages.timings["lean"]["infer"].median_ms
    flood = measure_node(round(FLOOD_FACTOR * 1e3 / infer_ms), log_dir)
    lines = _report(machine, frames, stages, locate, decodes, paced, flood)
    lines += ["", *session_report(measure_session_settings()), "",
              f"Load average at the end of the run: {os.getloadavg()[0]:.1f} (2 cores: above "
              "about 2, other jobs shared the machine and every time above is slower for it)."]
    print("\n".join(lines))
    if write is not None:
        write_report(write, lines)
        print(f"wrote {write}")
    return 0


def _stages_note() -> str:
    """How the CPU path's per-pixel stages ran: compiled, or in NumPy and OpenCV and why."""
    if COMPILED_STAGES is not None:
        return "compiled (`src/cpu_stages.c`)"
    return f"in NumPy and OpenCV ({COMPILED_NOTE})"


def _report(machine: str, frames: int, stages: StageRun, locate: Timing,
            decodes: dict[str, Timing], paced: NodeRun, flood: NodeRun) -> list[str]:
    baseline, lean = stages.timings["baseline"], stages.timings["lean"]
    non_inference = stages.non_inference_ms("lean")
    previous_non_inference = stages.non_inference_ms("baseline")
    lines = [
        "# Performance",
        "",
        f"Measured {datetime.date.today().isoformat()} with `sgdn-ros bench --frames {frames} "
        "--write docs/performance.md` on:",
        f"{machine}.",
        "",
        "Model: the trained default (light SGDN, K = 18, `sgdn_ros/models/sgdn_light_k18.onnx`) "
        "on ONNX Runtime, CPU; the decode comparison uses the synthetic test model, which has the "
        "published K = 120. Frames: 640x480 bgr8 tabletop scenes. These machines are shared and "
        "noisy: compare ratios from one run, not times across runs. GPU figures (PyTorch on an "
        "H100, GPU pre- and post-processing on an H200): [performance-gpu.md]"
        "(performance-gpu.md).",
        "",
        "## Pipeline stages (per frame, inference thread)",
        "",
        f"{frames} frames through the node's pipeline (`lean`) and {frames} through the stages "
        "as they were before (`baseline`: NumPy preprocessing of a BGR view, the whole-map peak "
        "search, message objects published; `sgdn_ros/core/reference_stages.py`, "
        "`publish_grasp_messages`), alternating frame by frame around the same ONNX Runtime "
        "session, so both see the same machine. Both found "
        f"{'the same grasps in every frame' if stages.same_grasps else 'DIFFERENT GRASPS'}. "
        "The lean path's table lookups, peak search and sampling at the peaks ran "
        f"{_stages_note()}.",
        "",
        "| stage | baseline median ms | lean median ms | baseline / lean | baseline p90 ms | "
        "lean p90 ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {stage} | {baseline[stage].median_ms:.3f} | {lean[stage].median_ms:.3f} | "
              f"{baseline[stage].median_ms / lean[stage].median_ms:.2f}x | "
              f"{baseline[stage].p90_ms:.3f} | {lean[stage].p90_ms:.3f} |" for stage in STAGES]
    lines += [
        "",
        f"All non-inference work (convert + preprocess + decode + publish, medians): "
        f"**{non_inference:.2f} ms** per frame, against {previous_non_inference:.2f} ms for the "
        f"baseline in the same run ({previous_non_inference / non_inference:.2f}x; target: at "
        "most 1.2 ms).",
        "",
        "## The 3-D stage (with depth: `use_depth`)",
        "",
        f"{LOCATE_GRASPS} grasps of a rendered RGB-D scene (640x480, 16UC1 depth with noise and "
        "holes, camera 0.6 m above the table) located in the depth image: surface depth, "
        "back-projection, width in metres, the collision-tested grasp depth, pre-grasp; median "
        f"of {LOCATE_REPEATS} after one warm-up call.",
        "",
        "| stage | median ms | p90 ms |",
        "|---|---|---|",
        f"| locate ({LOCATE_GRASPS} grasps) | {locate.median_ms:.3f} | {locate.p90_ms:.3f} |",
        "",
        f"That is {locate.median_ms / non_inference:.2f}x the rest of the non-inference work "
        "in the same run.",
        "",
        "## Decode: selected pixels against the full maps (K = 120, 320x320, same outputs)",
        "",
        "| decode | median ms | p90 ms |",
        "|---|---|---|",
    ]
    labels = {
        "ours": "ours: peaks on the confidence logits in the box around the pixels above the "
                "threshold, argmax and width at the peaks only",
        "previous": "previous: the same, with the peak search over the whole map",
        "full": "full: sigmoid, argmax and width over all maps, then peaks",
    }
    lines += [f"| {labels[name]} | {timing.median_ms:.3f} | {timing.p90_ms:.3f} |"
              for name, timing in decodes.items()]
    ours = decodes["ours"].median_ms
    lines += [
        "",
        f"Ours is **{decodes['full'].median_ms / ours:.0f}x** faster than the full decode "
        f"(target: at least 50x) and {decodes['previous'].median_ms / ours:.1f}x the previous "
        "one, on this frame's outputs (three objects; warm caches, unlike the pipeline above).",
        "",
        "## The node end to end (separate process, Fast DDS on loopback)",
        "",
        "Latency: from the image's header stamp (set when published) to the `grasps` answer "
        "received by another process. Answers per second under the flood are the node's "
        "end-to-end frame rate on this machine (the camera process shares its 2 cores).",
        "",
        "| camera rate | frames published | answered | latency median ms | p90 ms | "
        "answers per s |",
        "|---|---|---|---|---|---|",
    ]
    for run in (paced, flood):
        lines.append(
            f"| {run.rate_hz:g} Hz | {run.published} | {run.answered} | "
            f"{run.latency.median_ms:.1f} | {run.latency.p90_ms:.1f} | {run.throughput_hz:.1f} |")
    lines += [
        "",
        f"At {flood.rate_hz:g} Hz ({FLOOD_FACTOR:g}x the inference rate) the camera outruns "
        f"inference: the node answered {flood.answered} of {flood.published} frames, each the "
        "newest at the time, and dropped the stale ones, so latency stays near one inference "
        "instead of growing with a queue.",
    ]
    return lines
