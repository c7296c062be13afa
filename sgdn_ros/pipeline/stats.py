"""Counters, latency percentiles and batch times of the detector, safe to update from several
threads. A frame's latency is bounded by the batch in progress when it arrives plus its own, so
the two together show whether frames queue."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    received: int
    processed: int
    dropped: int
    rejected: int
    failed: int
    unmatched: int
    depth_rejected: int
    pose_off_depth_image: int
    pose_no_depth: int
    pose_collision: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    batch_p50_ms: float
    batch_max_ms: float

    def summary(self) -> str:
        return (
            f"received {self.received}, processed {self.processed}, dropped {self.dropped} "
            f"(stale), rejected {self.rejected} (bad image), failed {self.failed}; "
            f"{self._depth_summary()}latency p50 {self.latency_p50_ms:.1f} ms, "
            f"p90 {self.latency_p90_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms, "
            f"max {self.latency_max_ms:.1f} ms; batch time p50 {self.batch_p50_ms:.1f} ms, "
            f"max {self.batch_max_ms:.1f} ms")

    def _depth_summary(self) -> str:
        """The depth counters, once depth has been used (a colour-only node shows none)."""
        counts = (self.unmatched, self.depth_rejected, self.pose_off_depth_image,
                  self.pose_no_depth, self.pose_collision)
        if not any(counts):
            return ""
        return (f"unmatched {self.unmatched} (colour or depth without partner), depth rejected "
                f"{self.depth_rejected}; poses invalid: off the depth image "
                f"{self.pose_off_depth_image}, no depth {self.pose_no_depth}, collision "
                f"{self.pose_collision}; ")


COUNTERS = ("received", "processed", "dropped", "rejected", "failed", "unmatched",
            "depth_rejected", "pose_off_depth_image", "pose_no_depth", "pose_collision")


class DetectorStats:
    """Frame counts since configure; over the last frames, receive-to-publish latency and the
    time the inference thread spent on the batches they were in (from taking the batch to its
    last publish)."""

    def __init__(self, latency_window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._latencies_s: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._batches_s: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._counts = dict.fromkeys(COUNTERS, 0)

    def count(self, event: str) -> None:
        with self._lock:
            self._counts[event] += 1

    def add(self, event: str, amount: int) -> None:
        with self._lock:
            self._counts[event] += amount

    def record_latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies_s.append(seconds)

    def record_batch(self, seconds: float) -> None:
        with self._lock:
            self._batches_s.append(seconds)

    def snapshot(self) -> StatsSnapshot:
        return _snapshot(*self._raw())

    def _raw(self) -> tuple[dict[str, int], list[float], list[float]]:
        with self._lock:
            return dict(self._counts), list(self._latencies_s), list(self._batches_s)


def _percentiles_ms(seconds: Sequence[float], *percents: float) -> list[float]:
    """The percentiles (100 is the maximum) in milliseconds, NaN while there is nothing."""
    if not seconds:
        return [float("nan")] * len(percents)
    return [float(value) for value in
            np.percentile(np.array(seconds, dtype=np.float64) * 1e3, percents)]


def _snapshot(counts: dict[str, int], latencies_s: Sequence[float],
              batches_s: Sequence[float]) -> StatsSnapshot:
    p50, p90, p99, worst = _percentiles_ms(latencies_s, 50, 90, 99, 100)
    batch_p50, batch_worst = _percentiles_ms(batches_s, 50, 100)
    return StatsSnapshot(
        **counts, latency_p50_ms=p50, latency_p90_ms=p90, latency_p99_ms=p99,
        latency_max_ms=worst, batch_p50_ms=batch_p50, batch_max_ms=batch_worst)


class CameraStats:
    """One ``DetectorStats`` per camera (in the camera list's order) and the node's totals:
    ``snapshot`` sums the counts and takes the percentiles over every camera's latencies and
    batch times, so with one camera it is that camera's."""

    def __init__(self, cameras: int = 1) -> None:
        self.cameras = [DetectorStats() for _ in range(cameras)]

    def camera(self, index: int) -> DetectorStats:
        return self.cameras[index]

    def snapshot(self) -> StatsSnapshot:
        counts = dict.fromkeys(COUNTERS, 0)
        latencies_s: list[float] = []
        batches_s: list[float] = []
        for stats in self.cameras:
            camera_counts, camera_latencies, camera_batches = stats._raw()
            for name, value in camera_counts.items():
                counts[name] += value
            latencies_s += camera_latencies
            batches_s += camera_batches
        return _snapshot(counts, latencies_s, batches_s)
