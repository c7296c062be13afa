"""Counters and latency percentiles of the detector, safe to update from several threads."""

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

    def summary(self) -> str:
        return (
            f"received {self.received}, processed {self.processed}, dropped {self.dropped} "
            f"(stale), rejected {self.rejected} (bad image), failed {self.failed}; "
            f"{self._depth_summary()}latency p50 {self.latency_p50_ms:.1f} ms, "
            f"p90 {self.latency_p90_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms, "
            f"max {self.latency_max_ms:.1f} ms")

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
    """Frame counts since configure, and receive-to-publish latency over the last frames."""

    def __init__(self, latency_window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._latencies_s: collections.deque[float] = collections.deque(maxlen=latency_window)
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

    def snapshot(self) -> StatsSnapshot:
        return _snapshot(*self._raw())

    def _raw(self) -> tuple[dict[str, int], list[float]]:
        with self._lock:
            return dict(self._counts), list(self._latencies_s)


def _snapshot(counts: dict[str, int], latencies_s: Sequence[float]) -> StatsSnapshot:
    latencies_ms = np.array(latencies_s, dtype=np.float64) * 1e3
    if latencies_ms.size:
        p50, p90, p99 = np.percentile(latencies_ms, (50, 90, 99))
        worst = float(latencies_ms.max())
    else:
        p50 = p90 = p99 = worst = float("nan")
    return StatsSnapshot(
        **counts, latency_p50_ms=float(p50), latency_p90_ms=float(p90),
        latency_p99_ms=float(p99), latency_max_ms=worst)


class CameraStats:
    """One ``DetectorStats`` per camera (in the camera list's order) and the node's totals:
    ``snapshot`` sums the counts and takes the percentiles over every camera's latencies, so
    with one camera it is that camera's."""

    def __init__(self, cameras: int = 1) -> None:
        self.cameras = [DetectorStats() for _ in range(cameras)]

    def camera(self, index: int) -> DetectorStats:
        return self.cameras[index]

    def snapshot(self) -> StatsSnapshot:
        counts = dict.fromkeys(COUNTERS, 0)
        latencies_s: list[float] = []
        for stats in self.cameras:
            camera_counts, camera_latencies = stats._raw()
            for name, value in camera_counts.items():
                counts[name] += value
            latencies_s += camera_latencies
        return _snapshot(counts, latencies_s)
