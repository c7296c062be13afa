"""The lifecycle node over real Fast DDS (loopback): transitions, grasps at the expected pixel,
the heatmap, bad images, a flood of frames, runtime parameters, QoS, compressed images."""

from __future__ import annotations

import array
import math
import threading
import time

import cv2
import pytest
from conftest import ROS_MISSING

from sgdn_ros.training.scenes import SceneObject, render_tabletop_scene

rclpy = pytest.importorskip("rclpy", reason=ROS_MISSING or "")
pytest.importorskip("sgdn_ros.msg", reason=ROS_MISSING or "")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from sgdn_ros.msg import GraspPose, GraspPoseArray  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sgdn_ros.ros.messages import bgr_to_image_message, grasp_from_message  # noqa: E402
from sgdn_ros.ros.node import GraspDetectorNode  # noqa: E402
from sgdn_ros.ros.player import CAMERA_QOS  # noqa: E402
from sgdn_ros.ros.session import (  # noqa: E402
    DETECTOR_HEATMAP_TOPIC,
    BackgroundSpin,
    Recorder,
    publish_until_answered,
    stamp_key,
    wait_until,
)
from sgdn_ros.training.grasp_scenes import object_grasp_rectangles  # noqa: E402
from sgdn_ros.training.metrics import grasp_matches, rectangle_from_grasp  # noqa: E402

ANSWER_TIMEOUT_S = 30.0
OBJECT = SceneObject(row=250.0, col=330.0, length=110.0, thickness=34.0,
                     grasp_angle=math.radians(60.0), shape="box", colour_bgr=(40, 30, 110))


def angle_difference_deg(a: float, b: float) -> float:
    difference = abs(a - b) % math.pi
    return math.degrees(min(difference, math.pi - difference))


class Rig:
    """The detector node and a camera/listener node in one context, spun on one thread."""

    def __init__(self, context, parameters: dict[str, object]) -> None:
        self.detector = GraspDetectorNode(
            context=context,
            parameter_overrides=[Parameter(name, value=value)
                                 for name, value in parameters.items()])
        self.peer = rclpy.create_node("test_peer", context=context)
        self.image_publisher = self.peer.create_publisher(Image, "image_raw", CAMERA_QOS)
        self.best = Recorder(self.peer, GraspPose, "grasp")
        self.all = Recorder(self.peer, GraspPoseArray, "grasps")
        self.heatmaps = Recorder(self.peer, Image, DETECTOR_HEATMAP_TOPIC)
        self.spin = BackgroundSpin(self.detector, self.peer, context=context, threads=2)
        self._sequence = 0

    def image_message(self, bgr) -> Image:
        self._sequence += 1
        header = Header(frame_id="test_camera")
        header.stamp.sec, header.stamp.nanosec = 1000, self._sequence
        return bgr_to_image_message(bgr, header)

    def wait_for_subscriber(self) -> None:
        assert wait_until(lambda: self.image_publisher.get_subscription_count() > 0, 10.0), \
            "the detector never subscribed to image_raw"

    def wait_for_no_subscriber(self) -> None:
        """Deactivating destroys the subscription, but the camera learns it through discovery:
        until then a new subscription after re-activation cannot be told from the old one by
        the count, and a frame published then may go to the old one only."""
        assert wait_until(lambda: self.image_publisher.get_subscription_count() == 0, 10.0), \
            "image_raw still has a subscriber after deactivate"

    def close(self) -> None:
        self.spin.stop()
        self.detector.destroy_node()
        self.peer.destroy_node()


@pytest.fixture(scope="module")
def slow_model_k120(model_k120, tmp_path_factory):
    """The synthetic K = 120 model, slowed to about a second per inference."""
    from sgdn_ros.tools.torture_model import save_slow_model

    path = tmp_path_factory.mktemp("slow") / "slow_k120.onnx"
    save_slow_model(model_k120, path, 1.0)
    return path


@pytest.fixture
def rig_factory(ros_context, model_k120):
    rigs = []

    def make(**parameters) -> Rig:
        parameters.setdefault("model_path", str(model_k120))
        parameters.setdefault("stats_period_s", 0.0)
        rig = Rig(ros_context, parameters)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def wait_for_stats(rig: Rig, condition, timeout_s: float = ANSWER_TIMEOUT_S) -> bool:
    return wait_until(lambda: condition(rig.detector.stats.snapshot()), timeout_s)


def deactivate(rig: Rig) -> None:
    assert rig.detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    rig.wait_for_no_subscriber()


def configure_and_activate(rig: Rig) -> None:
    assert rig.detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert rig.detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    rig.wait_for_subscriber()


def scene_image():
    image, _objects = render_tabletop_scene(3, objects=[OBJECT])
    return image


def test_lifecycle_grasp_at_expected_pixel_and_heatmap(rig_factory):
    rig = rig_factory()
    configure_and_activate(rig)
    message = rig.image_message(scene_image())
    rig.image_publisher.publish(message)

    best = rig.best.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S)
    assert best is not None, "no GraspPose on /grasp"
    assert best.header.frame_id == "test_camera"
    assert math.hypot(best.u - OBJECT.col, best.v - OBJECT.row) < 4.0
    assert angle_difference_deg(best.angle, OBJECT.grasp_angle) < 6.0
    assert best.confidence > 0.9
    assert best.num_angle_classes == 120
    assert math.isnan(best.width_m) and math.isnan(best.depth_m) and not best.pose_valid
    heatmap = rig.heatmaps.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S)
    assert heatmap is not None, "no heatmap although the test subscribes to it"
    assert (heatmap.height, heatmap.width, heatmap.encoding) == (320, 320, "bgr8")

    deactivate(rig)
    assert rig.detector.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    configure_and_activate(rig)
    again = rig.image_message(scene_image())
    rig.image_publisher.publish(again)
    assert rig.best.wait_for_stamp(stamp_key(again.header), ANSWER_TIMEOUT_S) is not None
    assert rig.detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert rig.detector.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert rig.detector.trigger_shutdown() == TransitionCallbackReturn.SUCCESS


def test_destroying_an_active_node_stops_its_inference_thread(ros_context, model_k120):
    """A process that embeds the node may destroy it while it is active: its inference thread
    ends with it, instead of waiting for frames until the process does."""
    before = set(threading.enumerate())
    rig = Rig(ros_context, {"model_path": str(model_k120), "stats_period_s": 0.0})
    try:
        configure_and_activate(rig)
        message = rig.image_message(scene_image())
        rig.image_publisher.publish(message)
        assert rig.best.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None
        workers = [thread for thread in set(threading.enumerate()) - before
                   if thread.name == "sgdn-inference"]
        assert len(workers) == 1 and workers[0].is_alive()
    finally:
        rig.close()
    assert not workers[0].is_alive()


def test_inactive_node_publishes_nothing(rig_factory):
    rig = rig_factory()
    configure_and_activate(rig)
    deactivate(rig)
    message = rig.image_message(scene_image())
    rig.image_publisher.publish(message)
    assert rig.all.wait_for_stamp(stamp_key(message.header), 1.5) is None
    assert rig.detector.stats.snapshot().received == 0


def broken_images(rig: Rig, good) -> list[Image]:
    """One image message broken in each way the subscription's header checks catch."""
    depth = rig.image_message(good)
    depth.encoding = "32FC1"
    truncated = rig.image_message(good)
    truncated.data = array.array("B", bytes(truncated.data)[: len(truncated.data) // 2])
    empty = rig.image_message(good)
    empty.height, empty.width, empty.step, empty.data = 0, 0, 0, array.array("B")
    narrow_step = rig.image_message(good)
    narrow_step.step = narrow_step.width * 3 - 1
    return [depth, truncated, empty, narrow_step]


def test_bad_images_are_counted_and_the_node_keeps_working(rig_factory):
    rig = rig_factory()
    configure_and_activate(rig)
    good = scene_image()
    for count, bad in enumerate(broken_images(rig, good), start=1):
        rig.image_publisher.publish(bad)
        assert wait_for_stats(rig, lambda s, count=count: s.received == count
                              and s.rejected == count), rig.detector.stats.snapshot()
    snapshot = rig.detector.stats.snapshot()
    assert snapshot.processed == snapshot.dropped == snapshot.failed == 0

    message = rig.image_message(good)
    rig.image_publisher.publish(message)
    assert rig.best.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None
    assert wait_for_stats(rig, lambda s: s.processed == 1)


def test_a_bad_frame_never_displaces_a_good_one_waiting_for_inference(rig_factory,
                                                                       slow_model_k120):
    """Issue 11, item 4: a good frame waits in the one slot while the inference thread is busy
    (a model slowed to about a second per frame); broken frames arriving after it are rejected
    at the subscription, counted exactly, and the waiting frame is still answered."""
    rig = rig_factory(model_path=str(slow_model_k120), qos_depth=10)
    configure_and_activate(rig)
    good = scene_image()
    rig.image_publisher.publish(rig.image_message(good))
    assert wait_for_stats(rig, lambda s: s.received == 1)
    time.sleep(0.2)  # the inference thread has taken it: about a second of work ahead
    waiting = rig.image_message(good)
    rig.image_publisher.publish(waiting)
    bad = broken_images(rig, good)
    for message in bad:
        rig.image_publisher.publish(message)
    assert wait_for_stats(rig, lambda s: s.received == 2 + len(bad)), \
        rig.detector.stats.snapshot()
    assert rig.best.wait_for_stamp(stamp_key(waiting.header), ANSWER_TIMEOUT_S) is not None
    assert wait_for_stats(rig, lambda s: s.processed == 2), rig.detector.stats.snapshot()
    snapshot = rig.detector.stats.snapshot()
    assert (snapshot.rejected, snapshot.dropped, snapshot.failed) == (len(bad), 0, 0)


def test_a_flood_of_frames_is_dropped_not_queued(rig_factory):
    rig = rig_factory(qos_depth=10)
    configure_and_activate(rig)
    image = scene_image()
    for _ in range(3):
        message = rig.image_message(image)
        rig.image_publisher.publish(message)
        assert rig.all.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None
    paced = rig.detector.stats.snapshot()

    # A camera at ~200 Hz against an inference of tens of milliseconds.
    flood = [rig.image_message(image) for _ in range(80)]
    for message in flood:
        rig.image_publisher.publish(message)
        time.sleep(0.005)
    assert wait_for_stats(rig, lambda s: s.received > paced.received + 20
                          and s.processed + s.dropped + s.rejected == s.received), \
        rig.detector.stats.snapshot()
    snapshot = rig.detector.stats.snapshot()
    assert snapshot.dropped > 0, "a flood must drop stale frames"
    assert snapshot.processed < snapshot.received
    # The newest frame is never the one dropped when it is the last to arrive.
    if snapshot.received == paced.received + len(flood):
        assert rig.all.wait_for_stamp(stamp_key(flood[-1].header), ANSWER_TIMEOUT_S) is not None
    # No queueing: a frame waits for at most the inference in progress, then its own (both
    # measured in the same flood; 200 ms for the thread to go from one to the next).
    assert snapshot.latency_max_ms < 2 * snapshot.batch_max_ms + 200.0, snapshot


def test_runtime_parameters_apply_and_bad_values_are_rejected(rig_factory):
    rig = rig_factory()
    configure_and_activate(rig)
    results = rig.detector.set_parameters([Parameter("confidence_threshold", value=1.5)])
    assert not results[0].successful and "confidence_threshold" in results[0].reason
    results = rig.detector.set_parameters([Parameter("decode_mode", value="best")])
    assert not results[0].successful and "max, peaks" in results[0].reason
    results = rig.detector.set_parameters([Parameter("max_grasps", value=1)])
    assert results[0].successful

    two_objects = [OBJECT, SceneObject(row=180.0, col=250.0, length=90.0, thickness=30.0,
                                       grasp_angle=0.3, colour_bgr=(90, 40, 30))]
    image, _objects = render_tabletop_scene(5, objects=two_objects)
    message = rig.image_message(image)
    rig.image_publisher.publish(message)
    answer = rig.all.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S)
    assert answer is not None and len(answer.grasps) == 1

    assert rig.detector.set_parameters([Parameter("max_grasps", value=5)])[0].successful
    message = rig.image_message(image)
    rig.image_publisher.publish(message)
    answer = rig.all.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S)
    assert answer is not None and len(answer.grasps) >= 2


def test_missing_model_fails_configure_with_the_node_still_usable(rig_factory, model_k120):
    rig = rig_factory(model_path="/nonexistent/sgdn.onnx")
    assert rig.detector.trigger_configure() == TransitionCallbackReturn.FAILURE
    rig.detector.set_parameters([Parameter("model_path", value=str(model_k120))])
    configure_and_activate(rig)


def test_gpu_processing_on_fails_configure_on_a_host_only_backend_until_set_to_auto(
        rig_factory, capfd):
    rig = rig_factory(backend="onnxruntime", gpu_processing="on")
    assert rig.detector.trigger_configure() == TransitionCallbackReturn.FAILURE
    log = capfd.readouterr().err
    assert "configure failed: gpu_processing is 'on' but the onnxruntime" in log, log
    assert "set gpu_processing to 'auto' or 'off'" in log, log
    assert rig.detector.set_parameters([Parameter("gpu_processing", value="auto")])[0].successful
    configure_and_activate(rig)
    assert "CPU pre- and post-processing" in capfd.readouterr().err
    message = rig.image_message(scene_image())
    rig.image_publisher.publish(message)
    assert rig.best.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None


def test_compressed_images(rig_factory):
    rig = rig_factory(image_transport="compressed")
    camera = rig.peer.create_publisher(CompressedImage, "image_raw/compressed", CAMERA_QOS)
    assert rig.detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert rig.detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert wait_until(lambda: camera.get_subscription_count() > 0, 10.0)
    raw = rig.image_message(scene_image())
    message = CompressedImage(header=raw.header, format="jpeg")
    message.data = array.array("B", cv2.imencode(".jpg", scene_image())[1].tobytes())
    camera.publish(message)
    best = rig.best.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S)
    assert best is not None
    assert math.hypot(best.u - OBJECT.col, best.v - OBJECT.row) < 5.0


def test_reliable_subscription_hears_nothing_from_a_best_effort_camera(rig_factory):
    rig = rig_factory(qos_reliability="reliable")
    assert rig.detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert rig.detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    rig.image_publisher.publish(rig.image_message(scene_image()))
    assert not wait_for_stats(rig, lambda s: s.received > 0, 2.0)


def test_installed_executable_autostarts_answers_and_stops_cleanly(ros_context, tmp_path):
    """The `detector` executable as `ros2 launch` starts it: its own process, the YAML file,
    autostart, the trained default model; a camera in this process; Ctrl-C at the end. The
    grasp must be one of the object's true grasps (Cornell rectangle metric)."""
    from sgdn_ros.ros.session import DetectorProcess

    detector = DetectorProcess({"autostart": True, "stats_period_s": 0.5}, tmp_path / "log")
    peer = rclpy.create_node("test_camera", context=ros_context)
    camera = peer.create_publisher(Image, "image_raw", CAMERA_QOS)
    answers = Recorder(peer, GraspPose, "grasp")
    spin = BackgroundSpin(peer, context=ros_context)
    try:
        assert wait_until(lambda: camera.get_subscription_count() > 0, 60.0), detector.output()
        image = scene_image()
        sequence = iter(range(1000))

        def publish_frame() -> Image:
            header = Header(frame_id="camera")
            header.stamp.sec, header.stamp.nanosec = 2000, next(sequence)
            message = bgr_to_image_message(image, header)
            camera.publish(message)
            return message

        answer, _message = publish_until_answered(publish_frame, answers, ANSWER_TIMEOUT_S)
        assert answer is not None, detector.output()
        predicted = rectangle_from_grasp(grasp_from_message(answer))
        assert grasp_matches(predicted, object_grasp_rectangles(OBJECT)), answer
    finally:
        spin.stop()
        peer.destroy_node()
        exit_code = detector.stop()
    output = detector.output()
    assert exit_code == 0, output
    assert "Traceback" not in output and "processed" in output


def test_counts_and_latency_are_reported_on_diagnostics(rig_factory):
    rig = rig_factory(stats_period_s=0.2)
    reports = Recorder(rig.peer, DiagnosticArray, "/diagnostics")
    configure_and_activate(rig)
    message = rig.image_message(scene_image())
    rig.image_publisher.publish(message)
    assert rig.all.wait_for_stamp(stamp_key(message.header), ANSWER_TIMEOUT_S) is not None

    def reports_processed(messages) -> bool:
        return any(value.key == "processed" and value.value == "1"
                   for report in messages for status in report.status
                   for value in status.values)

    assert reports.wait_for(reports_processed, 10.0)
    status = reports.messages[-1].status[0]
    keys = {value.key for value in status.values}
    assert {"received", "dropped", "rejected", "latency_p50_ms", "latency_p99_ms"} <= keys
    assert status.name.startswith("sgdn_detector") and status.hardware_id == "onnxruntime-cpu"
