"""The demo: the installed detector on sample tabletop scenes, end to end over DDS.

Starts the `detector` executable (autostart, the trained default model), publishes the
project's sample scenes as a best-effort camera would, prints each grasp received on
`grasp`/`grasps` with how it compares to the scene's true grasps (the Cornell rectangle metric),
writes annotated images and heatmaps, stops the detector; then the depth run
(``sgdn_ros.tools.depth_demo``: 3-D grasp poses from colour + depth + camera_info) and ends.
"""

from __future__ import annotations

import math
import pathlib
import time

import cv2

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.drawing import draw_grasps
from sgdn_ros.core.frames import image_message_to_bgr
from sgdn_ros.ros.dds_isolation import isolate_dds
from sgdn_ros.ros.messages import grasp_from_message
from sgdn_ros.ros.player import ImagePlayer
from sgdn_ros.ros.session import (
    DetectorProcess,
    RosSession,
    publish_until_answered,
    stamp_key,
    wait_until,
)
from sgdn_ros.tools.depth_demo import run_depth_demo
from sgdn_ros.training.grasp_scenes import object_grasp_rectangles
from sgdn_ros.training.metrics import (
    angle_difference,
    grasp_matches,
    rectangle_from_grasp,
    rectangle_iou,
)
from sgdn_ros.training.scenes import SceneObject, write_demo_scenes

START_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 30.0


SIM_SCENES, SIM_OBJECTS, SIM_SEED = 3, 5, 900000
SIM_MODEL = "depth"


def _grasp_verdict(grasp: Grasp, objects: list[SceneObject]) -> str:
    """How the received grasp compares with the scene's true grasps (Cornell rectangle metric)."""
    predicted = rectangle_from_grasp(grasp)
    truths = [rectangle for obj in objects for rectangle in object_grasp_rectangles(obj)]
    if not truths:
        return "no true grasp in this scene"
    best = max(truths, key=lambda truth: rectangle_iou(predicted, truth))
    verdict = "matches a true grasp" if grasp_matches(predicted, truths) else "MISSES"
    return (f"{verdict} (best IoU {rectangle_iou(predicted, best):.2f}, angle off "
            f"{math.degrees(angle_difference(predicted.angle, best.angle)):.1f} deg)")


def run_demo(output_dir: pathlib.Path, count: int = 6, seed: int = 0, sim: bool = False) -> int:
    domain = isolate_dds()
    scenes = write_demo_scenes(output_dir / "scenes", count=count, seed=seed)
    print(f"demo: {len(scenes)} sample tabletop scenes in {output_dir / 'scenes'}; "
          f"DDS on loopback, domain {domain}")
    detector = DetectorProcess(
        {"autostart": True, "heatmap": "always", "stats_period_s": 2.0},
        output_dir / "detector.log")
    session = RosSession("sgdn_demo")
    try:
        colour_result = _play_and_report(session, detector, scenes, output_dir)
    finally:
        exit_code = detector.stop()
        session.close()
        print(f"demo: detector stopped (exit code {exit_code}); its log: {detector.log_path}")
    result = colour_result or run_depth_demo(output_dir, seed=seed)
    if result or not sim:
        return result
    from sgdn_ros.tools.sim_eval import run_sim_eval

    print("demo (sim): the bin-picking bench, held-out objects, through the node")
    return run_sim_eval(scenes=SIM_SCENES, objects=SIM_OBJECTS, seed=SIM_SEED + seed,
                        split="held_out", planner="node", model_path=SIM_MODEL,
                        out_dir=output_dir / "sim")


def _play_and_report(session: RosSession, detector: DetectorProcess, scenes,
                     output_dir: pathlib.Path) -> int:
    best = session.record_best_grasps()
    all_grasps = session.record_grasp_arrays()
    heatmaps = session.record_heatmaps()
    player = ImagePlayer(session.node, [path for path, _objects in scenes], frame_id="camera")
    print(f"demo: waiting for the detector to subscribe to {player.topic_name} ...")
    if not wait_until(lambda: player.subscription_count() > 0 or not detector.running(),
                      START_TIMEOUT_S) or not detector.running():
        print("demo: the detector did not come up; its output:\n" + detector.output())
        return 1
    annotated_dir = output_dir / "annotated"
    annotated_dir.mkdir(parents=True, exist_ok=True)
    received = 0
    for index, (path, objects) in enumerate(scenes):
        answer, message = publish_until_answered(
            lambda index=index: player.publish(index), all_grasps, FRAME_TIMEOUT_S, retry_s=2.0)
        if answer is None:
            print(f"demo: no answer for {path.name} within {FRAME_TIMEOUT_S:.0f} s")
            continue
        received += 1
        grasps = [grasp_from_message(grasp) for grasp in answer.grasps]
        print(f"{path.name}: {len(grasps)} grasp(s), {len(objects)} object(s)")
        for grasp in grasps:
            print(f"  grasp (u {grasp.col:6.1f}, v {grasp.row:6.1f}) angle "
                  f"{math.degrees(grasp.angle):5.1f} deg, width {grasp.width_px:5.1f} px, "
                  f"confidence {grasp.confidence:.3f} | {_grasp_verdict(grasp, objects)}")
        image = draw_grasps(player.images[index], grasps)
        cv2.imwrite(str(annotated_dir / path.name), image)
        heatmap = heatmaps.wait_for_stamp(stamp_key(message.header), 5.0)
        if heatmap is not None:
            cv2.imwrite(str(annotated_dir / f"{path.stem}_heatmap.png"),
                        image_message_to_bgr(heatmap))
        time.sleep(0.05)
    print(f"demo: {received}/{len(scenes)} frames answered, {len(best.messages)} messages on "
          f"/grasp; annotated images and heatmaps in {annotated_dir}")
    return 0 if received == len(scenes) else 1
