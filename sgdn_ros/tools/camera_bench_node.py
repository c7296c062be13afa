"""The node level of ``camera_bench`` (the ROS half, imported only for it): the installed
``detector`` in its own process with a camera list (``cam0`` ... ``camN-1``), each camera
publishing its frame at a rate over DDS from this process; per camera, the latency from the
image stamp to the grasps' arrival of every frame stamped in the measured window."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Sequence

import numpy as np

SETTLE_S = 2.0  # after the last frame, for the answers still on their way


def measure_node(model: pathlib.Path, images: Sequence[np.ndarray], rate_hz: float,
                 seconds: float, warmup_s: float, log_dir: pathlib.Path
                 ) -> tuple[list[list[float]], int]:
    """One node run with a camera per image: each camera's latencies (s), and how many frames
    were published in the measured window."""
    from sgdn_ros.ros.detector_client import Camera
    from sgdn_ros.ros.session import (
        DetectorProcess,
        RosSession,
        publish_until_answered,
        stamp_nanoseconds,
        wait_until,
    )

    cameras = len(images)
    names = [f"cam{camera}" for camera in range(cameras)]
    detector = DetectorProcess({"autostart": True, "stats_period_s": 0.0,
                                "model_path": str(model), "cameras": names},
                               log_dir / f"detector_{cameras}_cameras.log")
    session = RosSession("sgdn_camera_bench")
    clock = session.node.get_clock()
    publishers = [Camera(session.node, f"{name}/image_raw") for name in names]
    answers = [session.record_grasp_arrays(f"{name}/grasps", depth=100) for name in names]

    def publish(camera: int):
        return publishers[camera].publish_bgr(images[camera])

    try:
        if not wait_until(lambda: all(p.subscription_count() > 0 for p in publishers), 60.0):
            raise RuntimeError(f"the detector did not subscribe; see {detector.log_path}")
        for camera in range(cameras):
            answer, _message = publish_until_answered(lambda camera=camera: publish(camera),
                                                      answers[camera], 30.0)
            if answer is None:
                raise RuntimeError(f"cam{camera} was not answered; see {detector.log_path}")
        period = 1.0 / rate_hz
        started = time.monotonic()
        measured_from = clock.now().nanoseconds + int(warmup_s * 1e9)
        published = 0
        while time.monotonic() - started < warmup_s + seconds:
            # The cameras in turn, evenly spread over each period.
            publish(published % cameras)
            published += 1
            time.sleep(max(0.0, started + published * period / cameras - time.monotonic()))
        measured_to = clock.now().nanoseconds
        time.sleep(SETTLE_S)
        latencies = [[(received_ns - stamp_nanoseconds(message.header)) * 1e-9
                      for message, received_ns in recorder.since(0)
                      if measured_from <= stamp_nanoseconds(message.header) <= measured_to]
                     for recorder in answers]
    finally:
        session.close()
        detector.stop()
    return latencies, round(published * seconds / (warmup_s + seconds))
