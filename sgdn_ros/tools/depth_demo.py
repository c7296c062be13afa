"""The demo's depth run: the installed detector with `use_depth` on rendered RGB-D scenes.

A stand-in RealSense publishes colour, aligned 16UC1 depth and camera_info (640x480, camera
0.6 m above a table with boxes and cylinders); for each frame the grasps come back as 3-D poses
in the camera's optical frame, printed in millimetres next to the nearest true grasp of the
scene, and a picture of the point cloud with the published gripper markers is written.
"""

from __future__ import annotations

import math
import pathlib

import cv2
import numpy as np

from sgdn_ros.ros.markers import marker_segments
from sgdn_ros.ros.player import RgbdPlayer
from sgdn_ros.ros.session import (
    DetectorProcess,
    Recorder,
    RosSession,
    publish_until_answered,
    stamp_key,
    wait_until,
)
from sgdn_ros.tools.cloud_view import render_cloud_view
from sgdn_ros.training.rgbd_scenes import RgbdScene, realsense_camera, render_rgbd_scene

CAMERA_HEIGHT_M = 0.6
START_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 30.0


def run_depth_demo(output_dir: pathlib.Path, count: int = 3, seed: int = 0) -> int:
    """Returns 0 when every frame was answered with at least one valid 3-D pose."""
    scenes = [render_rgbd_scene(seed + index, num_objects=3,
                                camera=realsense_camera(CAMERA_HEIGHT_M))
              for index in range(count)]
    detector = DetectorProcess({"autostart": True, "use_depth": True, "stats_period_s": 2.0},
                               output_dir / "detector_depth.log")
    session = RosSession("sgdn_depth_demo")
    try:
        return _play_and_report(session, detector, scenes, output_dir / "depth")
    finally:
        exit_code = detector.stop()
        session.close()
        print(f"demo (depth): detector stopped (exit code {exit_code}); its log: "
              f"{detector.log_path}")


def _play_and_report(session: RosSession, detector: DetectorProcess,
                     scenes: list[RgbdScene], output_dir: pathlib.Path) -> int:
    answers = session.record_grasp_arrays()
    markers = session.record_markers()
    camera = scenes[0].camera
    player = RgbdPlayer(session.node, [(scene.bgr, scene.depth_mm) for scene in scenes], camera)
    print(f"demo (depth): waiting for the detector to subscribe to colour, depth and "
          f"camera_info ({camera.width}x{camera.height}, fx {camera.fx:.1f}, camera "
          f"{CAMERA_HEIGHT_M} m above the table) ...")
    if not wait_until(lambda: player.subscription_count() > 0 or not detector.running(),
                      START_TIMEOUT_S) or not detector.running():
        print("demo (depth): the detector did not come up; its output:\n" + detector.output())
        return 1
    output_dir.mkdir(parents=True, exist_ok=True)
    answered = 0
    for index, scene in enumerate(scenes):
        answer, message = publish_until_answered(
            lambda index=index: player.publish(index), answers, FRAME_TIMEOUT_S, retry_s=2.0)
        if answer is None:
            print(f"demo (depth): no answer for scene {index} within {FRAME_TIMEOUT_S:.0f} s")
            continue
        valid = [grasp for grasp in answer.grasps if grasp.pose_valid]
        answered += bool(valid)
        print(f"rgbd scene {index}: {len(answer.grasps)} grasp(s), {len(valid)} with a valid "
              f"3-D pose, {len(scene.objects)} object(s)")
        for grasp in answer.grasps:
            print("  " + _describe(grasp, scene))
        drawn = _markers_of(markers, stamp_key(message.header))
        depth_m = np.where(scene.depth_mm > 0, scene.depth_mm / 1000.0, np.nan).astype(np.float32)
        picture = render_cloud_view(scene.bgr, depth_m, camera,
                                    marker_segments(drawn) if drawn is not None else [])
        path = output_dir / f"rgbd_{index:02d}_cloud.png"
        cv2.imwrite(str(path), picture)
        cv2.imwrite(str(output_dir / f"rgbd_{index:02d}_colour.png"), scene.bgr)
    print(f"demo (depth): {answered}/{len(scenes)} frames with 3-D grasps; point-cloud pictures "
          f"with the published grippers in {output_dir}")
    return 0 if answered == len(scenes) else 1


def _describe(grasp, scene: RgbdScene) -> str:
    """A received grasp in millimetres, next to the scene's nearest true grasp."""
    if not grasp.pose_valid:
        return (f"grasp (u {grasp.u:6.1f}, v {grasp.v:6.1f}): no 3-D pose "
                f"({grasp.pose_invalid_reason})")
    position = grasp.pose.position
    surface = np.array([position.x, position.y, position.z - grasp.grasp_depth_m])
    truth = min(scene.true_grasps, key=lambda true: math.hypot(true.col - grasp.u,
                                                                true.row - grasp.v))
    off = np.linalg.norm(surface - np.array(truth.surface_point)) * 1e3
    return (f"grasp (u {grasp.u:6.1f}, v {grasp.v:6.1f}) at ({position.x * 1e3:6.1f}, "
            f"{position.y * 1e3:6.1f}, {position.z * 1e3:6.1f}) mm, surface "
            f"{grasp.depth_m * 1e3:5.1f} mm away, fingers {grasp.grasp_depth_m * 1e3:4.1f} mm "
            f"down, width {grasp.width_m * 1e3:5.1f} mm, confidence {grasp.confidence:.3f} | "
            f"nearest true grasp: object {truth.object_index} top centre "
            f"({truth.surface_point[0] * 1e3:6.1f}, {truth.surface_point[1] * 1e3:6.1f}, "
            f"{truth.surface_point[2] * 1e3:6.1f}) mm, width {truth.width_m * 1e3:5.1f} mm "
            f"({off:.1f} mm from our surface point)")


def _markers_of(markers: Recorder, stamp: tuple[int, int]):
    """The marker message of the frame stamped ``stamp`` (its DELETEALL carries the stamp)."""
    def of_frame(messages) -> object:
        return next((message for message in messages if message.markers
                     and stamp_key(message.markers[0].header) == stamp), None)

    markers.wait_for(lambda messages: of_frame(messages) is not None, 5.0)
    return of_frame(markers.messages)
