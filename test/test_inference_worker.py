"""The inference thread: load errors, same-thread ownership, newest frames through its mailbox."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sgdn_ros.pipeline.cameras import CameraScheduler
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.pipeline.worker import InferenceWorker


def test_worker_loads_handles_and_closes_on_its_own_thread():
    threads: dict[str, str] = {}
    handled: list[int] = []
    done = threading.Event()

    def load() -> str:
        threads["load"] = threading.current_thread().name
        return "resource"

    def handle(resource: str, batch) -> None:
        threads["handle"] = threading.current_thread().name
        handled.extend(item.frame for item in batch)
        done.set()

    def close(resource: str) -> None:
        threads["close"] = threading.current_thread().name

    mailbox: CameraScheduler[int] = CameraScheduler(1, 1)
    worker = InferenceWorker(load, handle, close, mailbox, name="test-inference")
    worker.start()
    assert worker.resource == "resource"
    mailbox.put(0, 7)
    assert done.wait(5.0)
    worker.stop()
    assert handled == [7]
    assert threads == {"load": "test-inference", "handle": "test-inference",
                       "close": "test-inference"}


def test_worker_start_reraises_the_load_error():
    def load() -> str:
        raise FileNotFoundError("model file not found: x.onnx")

    worker = InferenceWorker(load, lambda r, f: None, lambda r: None, CameraScheduler(1, 1))
    with pytest.raises(FileNotFoundError, match="x.onnx"):
        worker.start()
    worker.stop()


def test_frames_arriving_during_inference_replace_each_other():
    release = threading.Event()
    started = threading.Event()
    second_done = threading.Event()
    handled: list[int] = []

    def handle(resource: None, batch) -> None:
        started.set()
        release.wait(5.0)
        handled.extend(item.frame for item in batch)
        if len(handled) == 2:
            second_done.set()

    mailbox: CameraScheduler[int] = CameraScheduler(1, 1)
    worker = InferenceWorker(lambda: None, handle, lambda r: None, mailbox)
    worker.start()
    mailbox.put(0, 0)
    assert started.wait(5.0)
    dropped = [mailbox.put(0, frame) for frame in range(1, 6)]
    assert dropped == [False, True, True, True, True]
    release.set()
    assert second_done.wait(5.0)
    worker.stop()
    assert handled == [0, 5]


def test_stats_percentiles_and_counts():
    stats = DetectorStats(latency_window=100)
    for event in ("received", "received", "processed", "dropped"):
        stats.count(event)
    assert np.isnan(stats.snapshot().batch_max_ms), "no batch yet"
    for milliseconds in range(1, 101):
        stats.record_latency(milliseconds / 1000)
        stats.record_batch(milliseconds / 2000)
    snapshot = stats.snapshot()
    assert (snapshot.received, snapshot.processed, snapshot.dropped) == (2, 1, 1)
    assert snapshot.latency_p50_ms == pytest.approx(50.5)
    assert snapshot.latency_max_ms == pytest.approx(100.0)
    assert (snapshot.batch_p50_ms, snapshot.batch_max_ms) == (pytest.approx(25.25),
                                                              pytest.approx(50.0))
    assert "dropped 1" in snapshot.summary()
    assert "batch time p50 25.2 ms, max 50.0 ms" in snapshot.summary()
