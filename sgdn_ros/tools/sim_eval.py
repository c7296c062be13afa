"""`sgdn-ros sim-eval`: grasp success in simulated clutter, through the real node over DDS.

For each scene, objects of the chosen split are dropped into the tray; then, attempt after
attempt, the bench's camera publishes colour, aligned 16UC1 depth and camera_info exactly as a
RealSense driver does, the installed detector (a child process, `use_depth` on, its finger sizes
set to the bench gripper's) answers with 3-D grasps in the camera's optical frame, and the
gripper executes the best grasp with a valid pose (none valid: a failed attempt). ``--planner
truth`` replaces the node by the simulator's own true grasps: the model-free check that the
gripper and the physics are right.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable
from contextlib import ExitStack

import cv2
import numpy as np

from sgdn_ros.core.geometry import rotation_from_quaternion
from sgdn_ros.sim.antipodal import TARGET_GRASP_DEPTH_M, TrueGraspPlanner
from sgdn_ros.sim.camera import TopDownCamera
from sgdn_ros.sim.clearance import GraspPlanner, PlannedGrasp, SceneResult, SensorFrame, clear_tray
from sgdn_ros.sim.gripper import Gripper, GripperSpec
from sgdn_ros.sim.report import attempt_strip, figures, format_figures
from sgdn_ros.sim.world import BinWorld
from sgdn_ros.training.rgbd_geometry import realsense_camera

CAMERA_HEIGHT_M = 0.65
START_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 30.0
STRIP_ATTEMPTS = 48


BENCH_CONFIDENCE_THRESHOLD = 0.05


def detector_parameters(model_path: str, gripper: GripperSpec) -> dict[str, object]:
    """The node's parameters for the bench: depth on; the bench gripper's fingers, going at
    most as deep as its true grasps do (deeper, the tips drag on the tray floor as they
    close); and a low confidence threshold, since the protocol always tries the best grasp
    there is (a robot clearing a bin does not stop at an unsure one; a failure counts)."""
    return {"autostart": True, "use_depth": True, "model_path": model_path,
            "finger_width_m": gripper.finger_width_m,
            "finger_thickness_m": gripper.finger_thickness_m,
            "max_grasp_depth_m": TARGET_GRASP_DEPTH_M,
            "confidence_threshold": BENCH_CONFIDENCE_THRESHOLD, "stats_period_s": 10.0}


class NodePlanner:
    """Sends a frame to the detector as a camera would and turns its best valid 3-D grasp
    (camera optical frame) into a grasp in the world. Counts the frames it sent, resent ones
    included (a best-effort frame may be lost, and then its partner stays unmatched)."""

    def __init__(self, publish_frame: Callable[[np.ndarray, np.ndarray], object], answers,
                 camera: TopDownCamera) -> None:
        self._publish_frame = publish_frame
        self._answers = answers
        self._camera = camera
        self.frames_sent = 0

    def __call__(self, frame: SensorFrame) -> PlannedGrasp | None:
        from sgdn_ros.ros.session import publish_until_answered

        answer, _message = publish_until_answered(
            lambda: self._send(frame), self._answers, FRAME_TIMEOUT_S, retry_s=2.0)
        if answer is None:
            raise RuntimeError(f"the detector did not answer a frame within {FRAME_TIMEOUT_S:.0f}"
                               " s; see its log")
        best = next((grasp for grasp in answer.grasps if grasp.pose_valid), None)
        if best is None:
            return None
        position = best.pose.position
        orientation = best.pose.orientation
        rotation_optical = rotation_from_quaternion(
            (orientation.x, orientation.y, orientation.z, orientation.w))
        return PlannedGrasp(
            self._camera.to_world(np.array([position.x, position.y, position.z])),
            self._camera.rotation_to_world(rotation_optical), float(best.width_m),
            float(best.v), float(best.u), float(best.angle), float(best.width_px),
            float(best.confidence))

    def _send(self, frame: SensorFrame) -> object:
        self.frames_sent += 1
        return self._publish_frame(frame.bgr, frame.depth_mm)


def run_sim_eval(*, scenes: int, objects: int, seed: int, split: str, planner: str,
                 model_path: str, out_dir: pathlib.Path) -> int:
    gripper_spec = GripperSpec()
    camera = TopDownCamera(realsense_camera(CAMERA_HEIGHT_M), CAMERA_HEIGHT_M)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ExitStack() as stack:
        node_planner = None
        if planner == "node":
            node_planner = _start_node(stack, model_path, gripper_spec, camera, out_dir)
            if node_planner is None:
                return 1
        results = []
        for index in range(scenes):
            with BinWorld() as world:
                world.drop_objects(seed + index, objects, split)
                scene_planner: GraspPlanner = node_planner or TrueGraspPlanner(
                    world, camera, gripper_spec)
                result = clear_tray(world, Gripper(world, gripper_spec), camera,
                                    scene_planner, seed + index)
            results.append(result)
            _print_scene(result)
    elapsed = time.monotonic() - started
    found = figures(results)
    who = f"node, {model_path or 'default model'}" if planner == "node" else "true grasps"
    print(f"sim-eval ({who}; {split} objects; {scenes} scenes x {objects} objects, seeds {seed}.."
          f"{seed + scenes - 1}; {elapsed:.0f} s):")
    print(format_figures(found))
    frames_sent = None if node_planner is None else node_planner.frames_sent
    _write_outputs(out_dir, results, found, planner, model_path, split, seed, elapsed,
                   frames_sent)
    return 0


def _start_node(stack: ExitStack, model_path: str, gripper_spec: GripperSpec,
                camera: TopDownCamera, out_dir: pathlib.Path) -> NodePlanner | None:
    from sgdn_ros.ros.dds_isolation import isolate_dds
    from sgdn_ros.ros.player import RgbdPlayer
    from sgdn_ros.ros.session import DetectorProcess, RosSession, wait_until

    domain = isolate_dds()
    print(f"sim-eval: DDS on loopback, domain {domain}; starting the detector ...", flush=True)
    detector = DetectorProcess(detector_parameters(model_path, gripper_spec),
                               out_dir / "detector.log")
    stack.callback(detector.stop)
    session = RosSession("sgdn_sim_camera")
    stack.callback(session.close)
    answers = session.record_grasp_arrays()
    player = RgbdPlayer(session.node, [], camera.model)
    if not wait_until(lambda: player.depth_subscription_count() > 0 or not detector.running(),
                      START_TIMEOUT_S) or not detector.running():
        print("sim-eval: the detector did not come up; its output:\n" + detector.output())
        return None
    return NodePlanner(player.publish_frame, answers, camera)


def _print_scene(result: SceneResult) -> None:
    marks = "".join("+" if attempt.success else "-" for attempt in result.attempts)
    print(f"scene {result.seed}: objects {' '.join(f'{i:03d}' for i in result.object_ids)}; "
          f"attempts {marks} ({result.successes}/{len(result.attempts)}), cleared "
          f"{result.cleared}/{len(result.object_ids)}", flush=True)


def _write_outputs(out_dir: pathlib.Path, results: list[SceneResult], found, planner: str,
                   model_path: str, split: str, seed: int, elapsed: float,
                   frames_sent: int | None) -> None:
    attempts = [attempt for result in results for attempt in result.attempts]
    if attempts:
        cv2.imwrite(str(out_dir / "attempts.png"), attempt_strip(attempts[:STRIP_ATTEMPTS]))
    summary = {
        "planner": planner, "model": model_path or "default", "split": split,
        "seeds": [seed, seed + len(results) - 1], "seconds": round(elapsed, 1),
        "grasp_success": [found.grasp_success.hits, found.grasp_success.total],
        "clearance": [found.clearance.hits, found.clearance.total],
        "no_grasp": found.no_grasp, "fell_out": found.fell_out,
        "per_object": {f"{key:03d}": [rate.hits, rate.total]
                       for key, rate in found.per_object.items()},
    }
    if frames_sent is not None:
        summary["frames_sent"] = frames_sent
    (out_dir / "figures.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"sim-eval: figures.json and attempts.png (first {STRIP_ATTEMPTS} attempts) in "
          f"{out_dir}")
