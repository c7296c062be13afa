"""Stop races of `sgdn-ros torture`: the installed detector stopped by SIGINT and SIGTERM in
each state (idle with a 0.05 s stats timer, flooded, while its model loads, during a long
inference) and by its lifecycle shutdown transition, each stop in a fresh process. A normal
stop exits with code 0 within seconds, prints no traceback and no ERROR, and its final counts
sum; the frame in inference when the signal comes is published before the process ends."""

from __future__ import annotations

import pathlib
import signal
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np

from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.ros.detector_client import Camera, LifecycleClient
from sgdn_ros.ros.session import (
    DetectorProcess,
    Recorder,
    RosSession,
    stamp_key,
    wait_until,
)
from sgdn_ros.tools.torture_model import save_slow_model
from sgdn_ros.tools.torture_phases import START_TIMEOUT_S, detector_ready, scenes
from sgdn_ros.tools.torture_report import (
    Report,
    all_accounted,
    latest_counts,
    stop_problems,
)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class StopRun:
    exit_code: int | None  # None: still running after EXIT_TIMEOUT_S (then killed)
    seconds: float
    problems: list[str]
    observed: bool  # configure: stopped before activating; inference: the frame published
    log: pathlib.Path


class StopRig:
    """What the stops share: the grasp recorder, a lifecycle client, the slow model."""

    def __init__(self, session: RosSession, folder: pathlib.Path, inference_s: float,
                 seed: int) -> None:
        self.folder = folder
        self.random = np.random.default_rng(seed)
        self.node = session.node
        self.answers: Recorder = session.record_grasp_arrays()
        self.lifecycle = LifecycleClient(session.node)
        self.images = scenes(2)
        synthetic = save_synthetic_sgdn_model(folder / "synthetic_k120.onnx",
                                              num_angle_classes=120)
        self.inference_s = save_slow_model(synthetic, folder / "slow_k120.onnx", inference_s)
        self.slow_model = folder / "slow_k120.onnx"


def stop_races(session: RosSession, report: Report, folder: pathlib.Path, per_signal: int,
               per_signal_other: int, inference_s: float, seed: int) -> None:
    """`per_signal` stops per signal idle and flooded, `per_signal_other` while loading and
    during a long inference (and as many shutdown transitions)."""
    rig = StopRig(session, folder, inference_s, seed)
    report.add("stops", "inference time of the slow model (s)", rig.inference_s)
    for state, count in (("idle", per_signal), ("flood", per_signal),
                         ("configure", per_signal_other), ("inference", per_signal_other)):
        for number in SIGNALS:
            runs = [stop_once(rig, state, number, index) for index in range(count)]
            _figures(report, f"{signal.Signals(number).name} {state}", state, runs)
    runs = [shutdown_transition_once(rig, index) for index in range(per_signal_other)]
    _figures(report, "lifecycle shutdown", "shutdown", runs)


def stop_once(rig: StopRig, state: str, number: int, index: int) -> StopRun:
    """Start a detector, bring it to `state` (idle, flood, configure, inference), send signal
    `number`, and see how it ends."""
    name = signal.Signals(number).name
    parameters: dict[str, object] = {"stats_period_s": 0.05}
    if state == "inference":
        # Reliable: the one frame must reach the node, which best effort does not promise
        # right after discovery.
        parameters.update(model_path=str(rig.slow_model), qos_reliability="reliable")
    camera = Camera(rig.node, reliable=state == "inference")
    detector = DetectorProcess(parameters, rig.folder / f"stop_{state}_{name}_{index}.log")
    flood = None
    message = None
    if state == "configure":
        wait_until(lambda: "]: configuring: " in detector.output() or not detector.running(),
                   START_TIMEOUT_S, poll_s=0.005)
        time.sleep(rig.random.uniform(0.0, 0.05))
    elif detector_ready(detector, camera):
        if state == "idle":
            time.sleep(rig.random.uniform(0.0, 0.5))
        elif state == "flood":
            flood = _Flood(camera, rig.images)
            time.sleep(rig.random.uniform(0.3, 1.5))
        else:
            received = _answered_and_idle(rig, camera, detector)
            if received is not None:
                message = camera.publish_bgr(rig.images[0])
                # Its arrival shows in the next stats line (every 0.05 s); the inference thread
                # takes it at once, then works on it for about inference_s.
                wait_until(lambda: _received(detector) > received, START_TIMEOUT_S, poll_s=0.01)
                time.sleep(rig.random.uniform(0.1, 0.5) * rig.inference_s)
    signalled = time.monotonic()
    detector.send(number)
    exit_code = detector.wait(EXIT_TIMEOUT_S)
    seconds = time.monotonic() - signalled
    if flood is not None:
        flood.stop()
    camera.close()
    detector.stop(timeout_s=1.0)
    log = detector.output()
    if state == "configure":
        observed = "]: active: " not in log
    else:
        observed = message is not None and rig.answers.wait_for_stamp(
            stamp_key(message.header), 2.0) is not None
    return StopRun(exit_code, seconds, stop_problems(log), observed, detector.log_path)


def _answered_and_idle(rig: StopRig, camera: Camera, detector: DetectorProcess) -> int | None:
    """The frames the detector has received once a frame of ours was answered end to end and
    nothing waits or runs; None if that did not happen within START_TIMEOUT_S.

    The answer proves the detector's grasp publisher has matched our recorder: a reliable,
    volatile publisher sends only to the readers it has matched by then. Without it, a
    fresh-clone CI run once saw the frame in inference processed and, without an error, never
    received (the camera had matched 1 s after the detector's activation there: discovery was
    slow). A frame is sent again only when no answer came for a while, and any answer will do:
    on a loaded machine an inference can outlast the wait, and the answer is then an earlier
    frame's."""
    before = rig.answers.count()
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        camera.publish_bgr(rig.images[1])
        if rig.answers.wait_for(lambda answers: len(answers) > before,
                                max(5.0, 5.0 * rig.inference_s)):
            break
        if time.monotonic() > deadline:
            return None
    if not wait_until(lambda: (counts := latest_counts(detector.output())) is not None
                      and all_accounted(counts), START_TIMEOUT_S, poll_s=0.01):
        return None
    return _received(detector)


def _received(detector: DetectorProcess) -> int:
    counts = latest_counts(detector.output())
    return 0 if counts is None else counts["received"]


SHUTDOWN_RESPONSE_TIMEOUT_S = 5.0


def shutdown_transition_once(rig: StopRig, index: int) -> StopRun:
    """Start a detector, ask for its lifecycle shutdown transition, and see how it ends."""
    camera = Camera(rig.node)
    detector = DetectorProcess({"stats_period_s": 0.05},
                               rig.folder / f"stop_shutdown_transition_{index}.log")
    ready = detector_ready(detector, camera) and rig.lifecycle.wait_for_services(10.0)
    answered = ready and rig.lifecycle.set("shutdown", timeout_s=SHUTDOWN_RESPONSE_TIMEOUT_S)
    started = time.monotonic()
    exit_code = detector.wait(EXIT_TIMEOUT_S)
    seconds = time.monotonic() - started
    camera.close()
    detector.stop(timeout_s=1.0)
    log = detector.output()
    # Jazzy's Fast DDS may drop the response of a node that ends right after sending it
    # ("failed to send response (timeout): client will not receive response"); then the
    # finalized node's own closing line says it took the transition.
    accepted = answered or (ready and "stopping (lifecycle shutdown)" in log)
    return StopRun(exit_code, seconds, stop_problems(log), accepted, detector.log_path)


def _figures(report: Report, phase: str, state: str, runs: list[StopRun]) -> None:
    if not runs:
        return
    count = len(runs)
    clean_exits = sum(run.exit_code == 0 for run in runs)
    report.add(phase, "exit code 0 (by itself, within 20 s)", f"{clean_exits}/{count}",
               f"= {count}/{count}", clean_exits == count)
    troubled = [run.problems for run in runs if run.problems]
    report.add(phase, "tracebacks, ERROR lines, unbalanced final counts",
               f"{len(troubled)}" + (f" ({troubled[0][0]})" if troubled else ""), "= 0",
               not troubled)
    times = [run.seconds for run in runs]
    report.add(phase, "seconds to exit (median / max)",
               f"{statistics.median(times):.2f} / {max(times):.2f}")
    seen = sum(run.observed for run in runs)
    if state == "configure":
        report.add(phase, "signal came while the model loaded (never activated)",
                   f"{seen}/{count}")
    elif state == "inference":
        report.add(phase, "frame in inference published before the exit", f"{seen}/{count}",
                   f"= {count}/{count}", seen == count)
    elif state == "shutdown":
        report.add(phase, "shutdown transition accepted", f"{seen}/{count}",
                   f"= {count}/{count}", seen == count)


class _Flood:
    """A camera sending as fast as it can (a few hundred frames per second) until `stop`."""

    def __init__(self, camera: Camera, images: list[np.ndarray]) -> None:
        self._camera = camera
        self._images = images
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent = 0
        while not self._stopped.wait(0.002):
            self._camera.publish_bgr(self._images[sent % len(self._images)])
            sent += 1

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
