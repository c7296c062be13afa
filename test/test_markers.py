"""Gripper markers and the point-cloud picture: one gripper per valid grasp at its pose and
opening, DELETEALL first, ids by rank; the picture draws what the markers say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ROS_MISSING

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.grasp3d import GripperGeometry, grasps_in_3d
from sgdn_ros.tools.cloud_view import VIEW_SIZE, render_cloud_view
from sgdn_ros.training.rgbd_scenes import realsense_camera, render_rgbd_scene

pytest.importorskip("visualization_msgs.msg", reason=ROS_MISSING or "")

from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from sgdn_ros.ros.markers import (  # noqa: E402
    MARKERS_PER_GRASP,
    gripper_markers,
    marker_segments,
    pose_array_message,
)

GRIPPER = GripperGeometry()


def scene_and_grasps():
    scene = render_rgbd_scene(2, num_objects=3, camera=realsense_camera(0.6))
    # The true opening is the object's width: the fingers need clearance beside it.
    grasps = [Grasp(row=truth.row, col=truth.col, angle=truth.angle,
                    width_px=1.6 * truth.width_px, width_m=math.nan,
                    confidence=0.9 - 0.1 * index, angle_class=0, crop_row=0, crop_col=0,
                    crop_width_px=1.6 * truth.width_px)
              for index, truth in enumerate(scene.true_grasps[:3])]
    depth_m = scene.depth_m_truth.astype(np.float32)
    located = grasps_in_3d(grasps, depth_m, scene.camera, GRIPPER)
    return scene, depth_m, grasps, located


def test_one_gripper_per_valid_grasp_after_a_deleteall():
    _scene, _depth, grasps, located = scene_and_grasps()
    header = Header(frame_id="camera_color_optical_frame")
    message = gripper_markers(grasps, located, GRIPPER, header)
    valid = [grasp for grasp in located if grasp.valid]
    assert valid, "the true grasps should have valid poses"
    assert message.markers[0].action == Marker.DELETEALL
    drawn = message.markers[1:]
    assert len(drawn) == MARKERS_PER_GRASP * len(valid)
    assert sorted(marker.id for marker in drawn) == list(range(len(drawn)))
    first_fingers = [marker for marker in drawn[:2]]
    gap = math.dist(*[(marker.pose.position.x, marker.pose.position.y, marker.pose.position.z)
                      for marker in first_fingers])
    assert gap == pytest.approx(valid[0].width_m + GRIPPER.finger_thickness_m, rel=1e-6)
    best, worst = drawn[0].color, drawn[-1].color
    assert best.g > worst.g and best.r < worst.r  # greener for higher confidence
    assert len(pose_array_message(located, header).poses) == len(valid)


def test_segments_are_the_boxes_edges_and_the_arrows():
    _scene, _depth, grasps, located = scene_and_grasps()
    message = gripper_markers(grasps, located, GRIPPER, Header())
    segments = marker_segments(message)
    valid = sum(grasp.valid for grasp in located)
    assert len(segments) == valid * (3 * 12 + 1)
    arrow_start, arrow_end, _colour = segments[3 * 12]
    assert arrow_start[2] < arrow_end[2]  # from the pre-grasp, nearer the camera, downwards


def test_the_cloud_picture_shows_the_table_and_the_grippers():
    scene, depth_m, grasps, located = scene_and_grasps()
    segments = marker_segments(gripper_markers(grasps, located, GRIPPER, Header()))
    bare = render_cloud_view(scene.bgr, depth_m, scene.camera, [])
    drawn = render_cloud_view(scene.bgr, depth_m, scene.camera, segments)
    assert bare.shape == (VIEW_SIZE[1], VIEW_SIZE[0], 3)
    assert (bare.mean(axis=2) > 150).mean() > 0.3  # the light table fills much of the view
    changed = np.any(bare != drawn, axis=2)
    assert changed.mean() > 0.001
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 120) & (drawn[..., 2] < 200)
    assert np.count_nonzero(green & changed) > 50
