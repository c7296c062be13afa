"""Grasps published as serialised bytes: the same GraspPose and GraspPoseArray messages as the
message objects (``grasps_to_array_message``), read back by the middleware's own
deserialiser, and received as those messages over Fast DDS."""

from __future__ import annotations

import math
import time

import pytest
from conftest import ROS_MISSING

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.grasp3d import Grasp3D

pytest.importorskip("rclpy", reason=ROS_MISSING or "")
pytest.importorskip("sgdn_ros.msg", reason=ROS_MISSING or "")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sgdn_ros.msg import GraspPose, GraspPoseArray  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sgdn_ros.ros.messages import (  # noqa: E402
    grasps_to_array_message,
    publish_grasp_messages,
    publish_grasps,
    serialized_grasp_messages,
)

RECEIVE_TIMEOUT_S = 10.0


def grasps(count: int) -> list[Grasp]:
    """Grasps with awkward values: float32 rounding, NaN widths, numpy scalars."""
    return [Grasp(row=100.1 + 7.3 * index, col=200.7 - index, angle=index * math.pi / 18,
                  width_px=50.25 + index, width_m=math.nan if index % 2 else 0.0123 * index,
                  confidence=0.95 - 0.11 * index, angle_class=index * 3,
                  crop_row=index, crop_col=2 * index, crop_width_px=50.0)
            for index in range(count)]


def grasps_3d(count: int) -> list[Grasp3D]:
    """Every reason a pose can be invalid, each string length, metric widths known or not."""
    reasons = ["", "collision", "no_depth", "off_depth_image", ""]
    return [Grasp3D(valid=reasons[index % 5] == "", reason=reasons[index % 5],
                    surface_depth_m=0.5 + 0.01 * index, surface_point=(0.1, 0.2, 0.5),
                    grasp_depth_m=0.003 * index,
                    position=(0.01 * index, -0.02, 0.53), pre_grasp_position=(0.0, 0.0, 0.43),
                    orientation=(0.0, 0.0, math.sin(-index / 4), math.cos(-index / 4)),
                    width_m=math.nan if index == 2 else 0.04 + 0.001 * index)
            for index in range(count)]


def header(frame_id: str) -> Header:
    message = Header(frame_id=frame_id)
    message.stamp.sec, message.stamp.nanosec = 1764547200, 123456789
    return message


def as_received(message) -> str:
    """What a subscriber gets from a message object (float32 fields rounded), as text: repr
    compares every field, and NaN equal to NaN."""
    return repr(deserialize_message(serialize_message(message), type(message)))


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera", "camera_color_optical_frame"])
@pytest.mark.parametrize("count", [0, 1, 2, 5])
@pytest.mark.parametrize("located", [False, True])
def test_the_bytes_are_the_messages_the_objects_make(frame_id, count, located):
    """Every alignment case: frame ids of each length modulo 4 and 8, reason strings of each
    length, poses after them at either offset."""
    stamp = header(frame_id)
    poses = grasps_3d(count) if located else None
    best, array = serialized_grasp_messages(grasps(count), stamp, 18, poses)
    expected = grasps_to_array_message(grasps(count), stamp, 18, poses)
    assert repr(deserialize_message(array, GraspPoseArray)) == as_received(expected)
    assert len(array) == len(serialize_message(expected))
    if count == 0:
        assert best is None
    else:
        assert repr(deserialize_message(best, GraspPose)) == as_received(expected.grasps[0])
        assert len(best) == len(serialize_message(expected.grasps[0]))


def test_published_bytes_arrive_as_the_message_objects_would(ros_context):
    """Over Fast DDS: the bytes of publish_grasps and the objects of publish_grasp_messages
    reach a subscriber as the same messages, on both topics."""
    node = rclpy.create_node("sgdn_test_serialized_grasps", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: dict[str, list] = {"grasp": [], "grasps": []}
    try:
        best = node.create_publisher(GraspPose, "wire/grasp", 10)
        array = node.create_publisher(GraspPoseArray, "wire/grasps", 10)
        node.create_subscription(GraspPose, "wire/grasp", received["grasp"].append, 10)
        node.create_subscription(GraspPoseArray, "wire/grasps", received["grasps"].append, 10)
        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        while (best.get_subscription_count() == 0 or array.get_subscription_count() == 0) \
                and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        stamp = header("camera_color_optical_frame")
        for publish in (publish_grasps, publish_grasp_messages):
            publish(best, array, grasps(3), stamp, 120, grasps_3d(3))
            publish(best, array, [], stamp, 120)
        while len(received["grasps"]) < 4 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert len(received["grasps"]) == 4 and len(received["grasp"]) == 2
    from_bytes, empty_from_bytes, from_objects, empty_from_objects = map(
        repr, received["grasps"])
    assert from_bytes == from_objects and empty_from_bytes == empty_from_objects
    assert repr(received["grasp"][0]) == repr(received["grasp"][1])
    assert repr(received["grasps"][0].grasps[0]) == repr(received["grasp"][0])
    assert received["grasps"][0].grasps[2].pose_invalid_reason == "no_depth"
