"""Several cameras through one model, without ROS: the camera list, one newest-frame slot per
camera, the fair batched take, per-camera counters, and the same grasps per camera from one
batched inference as from each camera's frame alone (real ONNX Runtime, the trained model)."""

from __future__ import annotations

import collections
import math
import pathlib
import threading

import numpy as np
import onnx
import pytest

from sgdn_ros.backends import BackendOptions
from sgdn_ros.models.batching import save_dynamic_batch_copy
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.pipeline.cameras import (
    NODE_CAMERA,
    CameraFrame,
    CameraScheduler,
    batch_size,
    batched_settings,
    camera_names,
    camera_topic,
    detect_each,
)
from sgdn_ros.pipeline.loading import LoadedDetector, load_detector
from sgdn_ros.pipeline.parameters import PARAMETERS_BY_NAME, defaults, detector_settings
from sgdn_ros.pipeline.stats import CameraStats
from sgdn_ros.pipeline.worker import InferenceWorker
from sgdn_ros.training.scenes import render_tabletop_scene

FRAME_SIZES = [(480, 640), (400, 520), (480, 640), (360, 500)]


# The camera list ------------------------------------------------------------------------------

def test_no_camera_list_is_the_one_camera_on_the_nodes_own_topics():
    assert camera_names([]) == (NODE_CAMERA,)
    assert camera_topic(NODE_CAMERA, "image_raw") == "image_raw"
    assert camera_topic(NODE_CAMERA, "~/heatmap") == "~/heatmap"


def test_a_camera_namespaces_its_topics():
    assert camera_names(["left", "arm/wrist", "_cam2"]) == ("left", "arm/wrist", "_cam2")
    assert camera_topic("left", "grasp") == "left/grasp"
    assert camera_topic("left", "depth/image_raw") == "left/depth/image_raw"
    assert camera_topic("arm/wrist", "~/heatmap") == "~/arm/wrist/heatmap"
    assert camera_topic("left", "/diagnostics") == "/diagnostics"


@pytest.mark.parametrize(("cameras", "says"), [
    (["left", ""], "'' is empty"),
    (["left", "right", "left"], "left listed more than once"),
    (["left cam"], "invalid token 'left cam'"),
    (["2nd"], "invalid token '2nd'"),
    (["/left"], "is not relative"),
    (["~/left"], "is not relative"),
    (["left//right"], "invalid token ''"),
    (["left/"], "invalid token ''"),
    (["links-kamera"], "invalid token"),
])
def test_a_bad_camera_list_is_refused_naming_the_entry(cameras, says):
    with pytest.raises(ValueError, match="cameras: ") as raised:
        camera_names(cameras)
    assert says in str(raised.value)


def test_the_camera_parameters_are_in_the_table_with_a_string_list_type():
    cameras, max_batch = PARAMETERS_BY_NAME["cameras"], PARAMETERS_BY_NAME["max_batch"]
    assert cameras.type_name == "string[]" and cameras.default == []
    assert cameras.check(["left", "right"]) is None
    assert "must hold strings" in cameras.check(["left", 2])
    assert "list of strings" in cameras.check("left")
    assert max_batch.check(0) is None and max_batch.check(-1) is not None


def test_batch_size_is_one_frame_per_camera_unless_limited():
    assert batch_size(0, 1) == 1
    assert batch_size(0, 4) == 4
    assert batch_size(2, 4) == 2
    assert batch_size(8, 3) == 3
    with pytest.raises(ValueError, match="max_batch"):
        batch_size(-1, 2)
    settings = batched_settings(detector_settings(defaults()), 4)
    assert settings.backend_options == BackendOptions(max_batch=4)


# The scheduler ---------------------------------------------------------------------------------

def taken(scheduler: CameraScheduler) -> list[tuple[int, str]]:
    return [(item.camera, item.frame) for item in scheduler.take()]


def test_each_camera_keeps_only_its_newest_frame():
    scheduler: CameraScheduler[str] = CameraScheduler(3, 3)
    assert scheduler.put(0, "a1") is False
    assert scheduler.put(0, "a2") is True
    assert scheduler.put(2, "c1") is False
    assert scheduler.pending() == [0, 2]
    assert taken(scheduler) == [(0, "a2"), (2, "c1")]
    assert scheduler.pending() == []


def test_a_batch_takes_the_newest_frame_of_every_waiting_camera():
    scheduler: CameraScheduler[str] = CameraScheduler(4, 4)
    for camera in (3, 1, 0, 2):
        scheduler.put(camera, f"frame of {camera}")
    assert [camera for camera, _ in taken(scheduler)] == [0, 1, 2, 3]


def test_a_static_batch_serves_the_cameras_in_turn():
    scheduler: CameraScheduler[int] = CameraScheduler(3, 1)
    served = []
    for round_ in range(4):
        for camera in range(3):
            scheduler.put(camera, round_)
        served.append(taken(scheduler)[0][0])
    assert served == [0, 1, 2, 0]


def test_a_flooding_camera_does_not_starve_the_others():
    """Camera 0 has a new frame before every take, the others only now and then: with a batch
    smaller than the waiting cameras, each waiting camera is still served within
    ceil(cameras / max_batch) takes."""
    cameras, max_batch = 5, 2
    scheduler: CameraScheduler[int] = CameraScheduler(cameras, max_batch)
    waiting_since: dict[int, int] = {}
    longest_wait = 0
    served = collections.Counter()
    for take in range(200):
        for camera in range(cameras):
            if camera == 0 or take % (camera + 1) == 0:
                scheduler.put(camera, take)
                waiting_since.setdefault(camera, take)
        for camera, _frame in taken(scheduler):
            longest_wait = max(longest_wait, take - waiting_since.pop(camera))
            served[camera] += 1
    assert longest_wait < math.ceil(cameras / max_batch)
    assert set(served) == set(range(cameras))
    # The flooding camera gets its fair share, not more: the busiest camera is served at most
    # as often as it takes turns.
    assert served[0] <= math.ceil(200 * max_batch / 3) + 1


def test_a_batch_never_exceeds_what_the_model_takes():
    scheduler: CameraScheduler[int] = CameraScheduler(4, 4)
    scheduler.limit_batch(1)
    for camera in range(4):
        scheduler.put(camera, camera)
    assert len(scheduler.take()) == 1
    scheduler.limit_batch(8)
    assert scheduler.max_batch == 1


def test_clear_returns_the_cameras_that_lost_a_frame_and_close_wakes_the_taker():
    scheduler: CameraScheduler[int] = CameraScheduler(3, 2)
    scheduler.put(1, 10)
    scheduler.put(2, 20)
    assert scheduler.clear() == [1, 2]
    assert scheduler.clear() == []
    result = []
    taker = threading.Thread(target=lambda: result.append(scheduler.take()))
    taker.start()
    scheduler.close()
    taker.join(5.0)
    assert not taker.is_alive() and result == [None]


def test_per_camera_counters_sum_to_the_totals():
    stats = CameraStats(3)
    for camera, (received, processed, latency_ms) in enumerate([(5, 3, 10), (2, 2, 30),
                                                                  (4, 1, 20)]):
        for _ in range(received):
            stats.camera(camera).count("received")
        for _ in range(processed):
            stats.camera(camera).count("processed")
            stats.camera(camera).record_latency(latency_ms / 1e3)
            stats.camera(camera).record_batch(latency_ms / 2e3)
    total = stats.snapshot()
    assert (total.received, total.processed) == (11, 6)
    assert total.latency_max_ms == pytest.approx(30.0)
    assert total.batch_max_ms == pytest.approx(15.0)
    assert stats.camera(1).snapshot().latency_p50_ms == pytest.approx(30.0)
    single = CameraStats()
    single.camera(0).count("dropped")
    single.camera(0).record_latency(0.012)
    single.camera(0).record_batch(0.008)
    assert single.snapshot() == single.camera(0).snapshot()


def test_the_worker_runs_one_batch_per_take_through_the_scheduler():
    scheduler: CameraScheduler[str] = CameraScheduler(3, 3)
    release, started, done = threading.Event(), threading.Event(), threading.Event()
    batches: list[list[tuple[int, str]]] = []

    def handle(_resource: None, batch: list[CameraFrame[str]]) -> None:
        started.set()
        release.wait(5.0)
        batches.append([(item.camera, item.frame) for item in batch])
        if len(batches) == 2:
            done.set()

    worker = InferenceWorker(lambda: None, handle, lambda _resource: None, mailbox=scheduler)
    worker.start()
    scheduler.put(1, "b0")
    assert started.wait(5.0)
    # While the first batch runs, every camera sends frames; only the newest of each waits.
    dropped = [scheduler.put(camera, f"{name}{index}") for index in (1, 2)
               for camera, name in enumerate("abc")]
    release.set()
    assert done.wait(5.0)
    worker.stop()
    assert dropped == [False, False, False, True, True, True]
    assert batches == [[(1, "b0")], [(2, "c2"), (0, "a2"), (1, "b2")]]


# Real model: batched and single give the same grasps --------------------------------------------

@pytest.fixture(scope="module")
def dynamic_trained_model(tmp_path_factory) -> pathlib.Path:
    """The shipped static batch-1 model with its batch axis made symbolic."""
    return save_dynamic_batch_copy(
        TRAINED_MODEL, tmp_path_factory.mktemp("cameras") / "sgdn_light_k18_dynamic.onnx")


def loaded(model: pathlib.Path, max_batch: int) -> LoadedDetector:
    values = {**defaults(), "model_path": str(model), "backend": "onnxruntime",
              # A finite width in metres, so grasps compare with == (NaN != NaN).
              "metres_per_pixel": 0.0005}
    return load_detector(batched_settings(detector_settings(values), max_batch))


def camera_images() -> list[np.ndarray]:
    return [render_tabletop_scene(seed, height, width, num_objects=2 + seed % 2)[0]
            for seed, (height, width) in enumerate(FRAME_SIZES)]


@pytest.mark.parametrize("max_batch", [4, 2, 1])
def test_cameras_batched_through_the_scheduler_get_the_grasps_of_a_single_camera_node(
        dynamic_trained_model, max_batch):
    images = camera_images()
    # What a single-camera node running this model does: batches of one.
    with loaded(dynamic_trained_model, 1).detector as single:
        assert single.backend.info.max_batch == 1
        alone = [single.detect(image).grasps for image in images]
    assert all(alone), "every scene should give grasps"
    batched = loaded(dynamic_trained_model, max_batch)
    assert batched.detector.backend.info.max_batch == max_batch
    scheduler: CameraScheduler[np.ndarray] = CameraScheduler(len(images), max_batch)
    answers: dict[int, list] = {}
    sizes: list[int] = []
    done = threading.Event()

    def handle(resource: LoadedDetector, batch: list[CameraFrame[np.ndarray]]) -> None:
        sizes.append(len(batch))
        results = detect_each(resource.detector, [item.frame for item in batch],
                              [None] * len(batch))
        for item, result in zip(batch, results):
            answers[item.camera] = result.grasps
        if len(answers) == len(images):
            done.set()

    worker = InferenceWorker(lambda: batched, handle, LoadedDetector.close, mailbox=scheduler)
    # Every camera's frame is waiting before the worker starts: batches are as full as allowed.
    for camera, image in enumerate(images):
        scheduler.put(camera, image)
    worker.start()
    assert done.wait(60.0)
    worker.stop()
    assert sizes == [max_batch] * (len(images) // max_batch)
    assert [answers[camera] for camera in range(len(images))] == alone


def test_a_model_without_four_axes_is_not_copied(tmp_path):
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "flat",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])]))
    onnx.save(model, str(tmp_path / "flat.onnx"))
    with pytest.raises(ValueError, match="'x' has 2 axes"):
        save_dynamic_batch_copy(tmp_path / "flat.onnx", tmp_path / "copy.onnx")


def test_one_bad_frame_in_a_batch_costs_only_its_camera(dynamic_trained_model):
    images = camera_images()[:3]
    images[1] = np.zeros((10, 10), dtype=np.uint8)  # not a colour image
    with loaded(dynamic_trained_model, 3).detector as detector:
        results = detect_each(detector, images, [None] * 3)
        with loaded(dynamic_trained_model, 1).detector as single:
            for index in (0, 2):
                assert results[index].grasps == single.detect(images[index]).grasps
    assert isinstance(results[1], ValueError)
