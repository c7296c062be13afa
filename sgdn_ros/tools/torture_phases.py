"""The long-running phases of `sgdn-ros torture`, each against the installed detector in its
own process: the fuzz then the lifecycle cycles (one process), and the flood (another)."""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass

import numpy as np

from sgdn_ros.ros.detector_client import Camera, DiagnosticsWatch, LifecycleClient
from sgdn_ros.ros.session import (
    DetectorProcess,
    RosSession,
    publish_until_answered,
    stamp_key,
    stamp_nanoseconds,
    wait_until,
)
from sgdn_ros.tools.torture_fuzz import FuzzFrames
from sgdn_ros.tools.torture_report import (
    NO_SAMPLE,
    ProcessSample,
    Report,
    new_threads,
    percentile_ms,
    process_sample,
    stop_problems,
)
from sgdn_ros.training.scenes import render_tabletop_scene

START_TIMEOUT_S = 90.0
ANSWER_TIMEOUT_S = 30.0
# The fuzz's reliable subscription keeps FUZZ_DEPTH messages, so at most FUZZ_WINDOW may be on
# their way. (Fast DDS sizes each history slot to the largest message it held: a deep history
# of large frames costs depth x largest in resident memory, e.g. 100 x 10 MB.)
FUZZ_DEPTH = 10
FUZZ_WINDOW = 8


@dataclass(frozen=True)
class Bounds:
    rss_growth_mb: float
    p99_ms: float


def scenes(count: int) -> list[np.ndarray]:
    """640 x 480 tabletop scenes the trained model finds grasps in."""
    return [render_tabletop_scene(seed, num_objects=1 + seed % 3)[0] for seed in range(count)]


def detector_ready(detector: DetectorProcess, camera: Camera) -> bool:
    """The detector logged that it is active and the camera reaches it."""
    return wait_until(lambda: not detector.running() or (
        "]: active: " in detector.output() and camera.subscription_count() > 0),
        START_TIMEOUT_S) and detector.running()


def answered(session_answers, camera: Camera, image: np.ndarray) -> bool:
    message = camera.publish_bgr(image)
    return session_answers.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None


def check_stop(report: Report, phase: str, detector: DetectorProcess) -> None:
    """SIGINT, then: exit code 0, and none of the lines a normal stop must not print."""
    report.equal(phase, "exit code after SIGINT", detector.stop(timeout_s=20.0), 0)
    problems = stop_problems(detector.output())
    report.add(phase, "log of the stop", "; ".join(problems) or "clean", "clean", not problems)


def fuzz_and_cycles(session: RosSession, report: Report, folder: pathlib.Path, messages: int,
                    cycles: int, seed: int, bounds: Bounds) -> None:
    """`messages` fuzzed frames, then `cycles` lifecycle cycles, on one reliable-QoS node (so
    that every message arrives and the rejected count can be exact)."""
    detector = DetectorProcess({"qos_reliability": "reliable", "qos_depth": FUZZ_DEPTH,
                                "stats_period_s": 0.05}, folder / "fuzz_and_cycles.log")
    camera = Camera(session.node, reliable=True, depth=FUZZ_DEPTH)
    answers = session.record_grasp_arrays()
    diagnostics = DiagnosticsWatch(session.node)
    lifecycle = LifecycleClient(session.node)
    try:
        if not detector_ready(detector, camera):
            report.add("fuzz", "detector active", "no", "yes", held=False)
            return
        image = scenes(1)[0]
        if messages:
            _fuzz(report, camera, diagnostics, messages, seed, detector.pid)
            works = answered(answers, camera, image)
            report.add("fuzz", "next well-formed frame answered", works, "True", works)
            report.equal("fuzz", "lifecycle state after", lifecycle.state(), "active")
        if cycles:
            _cycles(report, detector, lifecycle, cycles, bounds)
            # The last activate made a new subscription, which discovery matches with the
            # camera some time later (its count still holds the old one meanwhile): a camera
            # keeps sending, so the check does too.
            answer, _message = publish_until_answered(lambda: camera.publish_bgr(image), answers,
                                                      ANSWER_TIMEOUT_S)
            works = answer is not None
            report.add("lifecycle", "frame answered after the cycles", works, "True", works)
    finally:
        camera.close()
        check_stop(report, "fuzz+lifecycle", detector)


def _fuzz(report: Report, camera: Camera, diagnostics: DiagnosticsWatch, messages: int,
          seed: int, pid: int) -> None:
    frames = FuzzFrames(seed)
    data = memoryview(np.random.default_rng(seed).integers(
        0, 256, frames.largest_size, dtype=np.uint8).tobytes())
    sent = broken = volume = 0
    samples = []
    started = time.monotonic()
    for index in range(messages):
        if index % max(1, messages // 20) == 0:
            samples.append(process_sample(pid) or NO_SAMPLE)
        latest = diagnostics.latest()
        if latest is None or sent - latest["received"] > FUZZ_WINDOW:
            target = sent - FUZZ_WINDOW // 2
            if diagnostics.wait_for(lambda values, target=target: values["received"] >= target,
                                    ANSWER_TIMEOUT_S) is None:
                break
        frame = frames.next()
        camera.publish_fields(frame.height, frame.width, frame.step, frame.encoding,
                              frame.is_bigendian, data[:frame.size])
        sent, broken, volume = sent + 1, broken + (frame.defect is not None), volume + frame.size
    seconds = time.monotonic() - started
    counts = diagnostics.wait_for(
        lambda values: values["received"] >= sent and _unaccounted(values) == 0,
        ANSWER_TIMEOUT_S) or diagnostics.latest() or {}
    report.equal("fuzz", "messages sent", sent, messages)
    report.add("fuzz", "of them broken (encoding, sizes, step, data)", broken)
    report.add("fuzz", "mean message size (MB)", volume / max(sent, 1) / 1e6)
    report.add("fuzz", "messages per second", sent / max(seconds, 1e-9))
    received = int(counts.get("received", -1))
    report.equal("fuzz", "received by the node", received, sent)
    report.equal("fuzz", "rejected (exact: the broken ones)", int(counts.get("rejected", -1)),
                 broken)
    report.equal("fuzz", "processed + dropped (the well-formed ones)",
                 int(counts.get("processed", -1) + counts.get("dropped", -1)), sent - broken)
    report.equal("fuzz", "failed", int(counts.get("failed", -1)), 0)
    report.equal("fuzz", "received - processed - dropped - rejected - failed",
                 _unaccounted(counts) if counts else None, 0)
    samples.append(process_sample(pid) or NO_SAMPLE)
    # Not bounded: the first messages grow the history's slots to the largest frames sent.
    half = samples[len(samples) // 2][0]
    report.add("fuzz", "RSS before / half-way / at the end (MB)",
               f"{samples[0][0]:.1f} / {half:.1f} / {samples[-1][0]:.1f}")
    report.add("fuzz", "threads before / at most during", f"{samples[0][1]} / "
               f"{max(sample.threads for sample in samples)}")


def _memory_figures(report: Report, phase: str, warm_up: str, samples: list[ProcessSample],
                    warm_count: int, bounds: Bounds) -> None:
    """Resident memory and threads after warm-up (the first `warm_count` samples) and later;
    growth beyond the bound and any new thread fail (the new threads are named)."""
    if not samples:
        report.add(phase, "memory samples", 0, "> 0", held=False)
        return
    warm = samples[min(warm_count, len(samples)) - 1]
    later = samples[warm_count:] or samples[-1:]
    report.add(phase, f"RSS after {warm_up} (MB)", warm.rss_mb)
    report.add(phase, "RSS at the end (MB)", later[-1].rss_mb)
    report.at_most(phase, "RSS growth after warm-up (max - warm-up, MB)",
                   max(sample.rss_mb for sample in later) - warm.rss_mb, bounds.rss_growth_mb)
    report.add(phase, f"threads after {warm_up}", warm.threads)
    most = max(later, key=lambda sample: sample.threads)
    report.at_most(phase, "threads at most after warm-up", most.threads, warm.threads)
    if most.threads > warm.threads:
        # Whether they stayed tells a leak from threads that came and went (a library's helper,
        # or a thread sampled before it named itself).
        report.add(phase, "threads new after warm-up",
                   new_threads(warm.thread_names, most.thread_names))
        above = sum(sample.threads > warm.threads for sample in later)
        report.add(phase, "samples with more threads than after warm-up",
                   f"{above} of {len(later)}; at the end {later[-1].threads}")


def _unaccounted(values: dict[str, float]) -> int:
    return int(values["received"] - values["processed"] - values["dropped"]
               - values["rejected"] - values["failed"])


def _cycles(report: Report, detector: DetectorProcess, lifecycle: LifecycleClient,
            cycles: int, bounds: Bounds) -> None:
    """deactivate, cleanup, configure, activate, `cycles` times; memory and threads after each."""
    failed = 0
    samples = []
    started = time.monotonic()
    for _ in range(cycles):
        for transition in ("deactivate", "cleanup", "configure", "activate"):
            failed += not lifecycle.set(transition)
        samples.append(process_sample(detector.pid) or NO_SAMPLE)
    seconds = time.monotonic() - started
    report.add("lifecycle", "cycles (deactivate, cleanup, configure, activate)", cycles)
    report.equal("lifecycle", "transitions failed", failed, 0)
    report.add("lifecycle", "milliseconds per cycle", 1e3 * seconds / max(cycles, 1))
    warm = max(1, cycles // 10)
    _memory_figures(report, "lifecycle", f"cycle {warm}", samples, warm, bounds)


def flood(session: RosSession, report: Report, folder: pathlib.Path, seconds: float,
          rate_hz: float, bounds: Bounds) -> None:
    """A best-effort camera at `rate_hz` for `seconds` (the configuration of the README):
    end-to-end latency of every answer, the node's memory and threads every second."""
    detector = DetectorProcess({"stats_period_s": 1.0}, folder / "flood.log")
    camera = Camera(session.node)
    answers = session.record_grasp_arrays(depth=50)
    diagnostics = DiagnosticsWatch(session.node)
    phase = f"flood {rate_hz:g} Hz"
    try:
        if not detector_ready(detector, camera):
            report.add(phase, "detector active", "no", "yes", held=False)
            return
        images = scenes(4)
        first_answer = answers.count()
        samples: list[tuple[float, ProcessSample]] = []
        sent = 0
        started = time.monotonic()
        while (now := time.monotonic()) < started + seconds and detector.running():
            camera.publish_bgr(images[sent % len(images)])
            sent += 1
            if not samples or now - samples[-1][0] >= 1.0:
                sample = process_sample(detector.pid)
                if sample is not None:
                    samples.append((now, sample))
            time.sleep(max(0.0, started + sent / rate_hz - time.monotonic()))
        time.sleep(2.0)
        latencies = [(arrival - stamp_nanoseconds(message.header)) * 1e-9
                     for message, arrival in answers.since(first_answer)]
        counts = diagnostics.wait_for(lambda values: _unaccounted(values) == 0, 10.0) or {}
        _flood_figures(report, phase, sent, latencies, counts, samples, seconds, bounds)
    finally:
        camera.close()
        check_stop(report, phase, detector)


def _flood_figures(report: Report, phase: str, sent: int, latencies: list[float],
                   counts: dict[str, float], samples: list[tuple[float, ProcessSample]],
                   seconds: float, bounds: Bounds) -> None:
    report.add(phase, "frames sent (640 x 480 bgr8)", sent)
    report.add(phase, "frames answered", len(latencies), "> 0", bool(latencies))
    report.add(phase, "node: received / processed / dropped (stale)",
               " / ".join(str(int(counts.get(key, -1)))
                          for key in ("received", "processed", "dropped")))
    report.equal(phase, "node: received - processed - dropped - rejected - failed",
                 _unaccounted(counts) if counts else None, 0)
    report.add(phase, "latency camera -> grasps p50 (ms)", percentile_ms(latencies, 50))
    report.at_most(phase, "latency camera -> grasps p99 (ms)", percentile_ms(latencies, 99),
                   bounds.p99_ms)
    report.add(phase, "latency camera -> grasps max (ms)", percentile_ms(latencies, 100))
    warm_up_end = samples[0][0] + max(5.0, 0.1 * seconds) if samples else 0.0
    warm_count = max(1, sum(moment <= warm_up_end for moment, _ in samples))
    _memory_figures(report, phase, "warm-up", [sample for _, sample in samples],
                    warm_count, bounds)
