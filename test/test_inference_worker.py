"""The inference thread: one-slot mailbox semantics, load errors, same-thread ownership."""

from __future__ import annotations

import threading

import pytest

from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.pipeline.worker import InferenceWorker, LatestFrameSlot


def test_slot_keeps_only_the_newest_frame():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take() == 3
    assert slot.clear() is False
    slot.put(4)
    assert slot.clear() is True


def test_slot_close_wakes_a_waiting_taker():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    taken = []
    taker = threading.Thread(target=lambda: taken.append(slot.take()))
    taker.start()
    slot.close()
    taker.join(5.0)
    assert not taker.is_alive() and taken == [None]


def test_worker_loads_handles_and_closes_on_its_own_thread():
    threads: dict[str, str] = {}
    handled: list[int] = []
    done = threading.Event()

    def load() -> str:
        threads["load"] = threading.current_thread().name
        return "resource"

    def handle(resource: str, frame: int) -> None:
        threads["handle"] = threading.current_thread().name
        handled.append(frame)
        done.set()

    def close(resource: str) -> None:
        threads["close"] = threading.current_thread().name

    worker = InferenceWorker(load, handle, close, name="test-inference")
    worker.start()
    assert worker.resource == "resource"
    worker.submit(7)
    assert done.wait(5.0)
    worker.stop()
    assert handled == [7]
    assert threads == {"load": "test-inference", "handle": "test-inference",
                       "close": "test-inference"}


def test_worker_start_reraises_the_load_error():
    def load() -> str:
        raise FileNotFoundError("model file not found: x.onnx")

    worker = InferenceWorker(load, lambda r, f: None, lambda r: None)
    with pytest.raises(FileNotFoundError, match="x.onnx"):
        worker.start()
    worker.stop()


def test_frames_arriving_during_inference_replace_each_other():
    release = threading.Event()
    started = threading.Event()
    second_done = threading.Event()
    handled: list[int] = []

    def handle(resource: None, frame: int) -> None:
        started.set()
        release.wait(5.0)
        handled.append(frame)
        if len(handled) == 2:
            second_done.set()

    worker = InferenceWorker(lambda: None, handle, lambda r: None)
    worker.start()
    worker.submit(0)
    assert started.wait(5.0)
    dropped = [worker.submit(frame) for frame in range(1, 6)]
    assert dropped == [False, True, True, True, True]
    release.set()
    assert second_done.wait(5.0)
    worker.stop()
    assert handled == [0, 5]


def test_stats_percentiles_and_counts():
    stats = DetectorStats(latency_window=100)
    for event in ("received", "received", "processed", "dropped"):
        stats.count(event)
    for milliseconds in range(1, 101):
        stats.record_latency(milliseconds / 1000)
    snapshot = stats.snapshot()
    assert (snapshot.received, snapshot.processed, snapshot.dropped) == (2, 1, 1)
    assert snapshot.latency_p50_ms == pytest.approx(50.5)
    assert snapshot.latency_max_ms == pytest.approx(100.0)
    assert "dropped 1" in snapshot.summary()
