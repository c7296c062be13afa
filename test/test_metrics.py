"""The Cornell rectangle metric: IoU, angle wrap, matching, image-wise accuracy, and a network
that outputs exactly its label maps scoring 100 % through the real decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdn_ros.core.decoding import DecodeConfig, Grasp, decode_grasps
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.training.grasp_rectangles import GraspRectangle
from sgdn_ros.training.grasp_scenes import generate_grasp_scene
from sgdn_ros.training.labels import label_maps
from sgdn_ros.training.metrics import (
    angle_difference,
    evaluate_top_grasps,
    grasp_matches,
    rectangle_from_grasp,
    rectangle_iou,
)


def rectangle(row=100.0, col=100.0, angle=0.0, width=40.0, height=20.0) -> GraspRectangle:
    return GraspRectangle(row=row, col=col, angle=angle, width=width, height=height)


def grasp(row=100.0, col=100.0, angle=0.0, width_px=40.0, confidence=0.9) -> Grasp:
    return Grasp(row=row, col=col, angle=angle, width_px=width_px, width_m=math.nan,
                 confidence=confidence, angle_class=0, crop_row=int(row), crop_col=int(col),
                 crop_width_px=width_px)


def test_iou_of_identical_rectangles_is_one_and_of_disjoint_ones_zero():
    assert rectangle_iou(rectangle(angle=0.7), rectangle(angle=0.7)) == pytest.approx(1.0)
    assert rectangle_iou(rectangle(), rectangle(col=141.0)) == 0.0
    assert rectangle_iou(rectangle(), rectangle(row=200.0, angle=2.0)) == 0.0


def test_iou_of_known_overlaps():
    # Shifted by half the width along it: intersection 20 x 20 = 400, union 1200.
    assert rectangle_iou(rectangle(), rectangle(col=120.0)) == pytest.approx(1 / 3, rel=1e-5)
    # The same rectangle turned a quarter turn about its centre: a 20 x 20 cross-over.
    turned = rectangle(angle=math.pi / 2)
    assert rectangle_iou(rectangle(), turned) == pytest.approx(400 / 1200, rel=1e-5)
    # Turned 45 degrees, a 20 x 20 square in a 40 x 40 one: intersection = the small square.
    assert rectangle_iou(rectangle(width=40, height=40),
                         rectangle(angle=math.pi / 4, width=20, height=20)) == pytest.approx(
        400 / 1600, rel=1e-5)
    assert rectangle_iou(rectangle(col=113.0), rectangle(angle=0.4)) == pytest.approx(
        rectangle_iou(rectangle(angle=0.4), rectangle(col=113.0)))


@pytest.mark.parametrize("a, b, expected", [
    (0.1, math.pi - 0.1, 0.2), (0.0, math.pi / 2, math.pi / 2), (3 * math.pi + 0.2, 0.1, 0.1),
    (-0.3, 0.3, 0.6), (1.0, 1.0, 0.0), (0.2, 0.2 + 5 * math.pi, 0.0)])
def test_angle_difference_wraps_modulo_pi(a, b, expected):
    assert angle_difference(a, b) == pytest.approx(expected, abs=1e-12)


def test_a_grasp_matches_within_thirty_degrees_and_above_a_quarter_overlap():
    truth = rectangle(angle=0.5)
    assert grasp_matches(rectangle(angle=0.5 + math.radians(29.9)), [truth])
    assert not grasp_matches(rectangle(angle=0.5 + math.radians(30.5)), [truth])
    assert grasp_matches(rectangle(angle=0.5 + math.radians(30.5)), [truth],
                         angle_threshold=math.radians(31))
    # IoU 1/3 at half a width's shift; 0.2 at two thirds.
    assert grasp_matches(rectangle(col=120.0), [rectangle()])
    assert not grasp_matches(rectangle(col=100.0 + 40 * 2 / 3), [rectangle()])
    assert grasp_matches(rectangle(col=100.0 + 40 * 2 / 3), [rectangle(row=300.0), rectangle()],
                         iou_threshold=0.15)
    assert not grasp_matches(rectangle(), [])


def test_rectangle_from_grasp_uses_the_original_image_position_and_half_the_opening():
    decoded = Grasp(row=250.5, col=330.0, angle=1.2, width_px=60.0, width_m=0.06,
                    confidence=0.8, angle_class=40, crop_row=170, crop_col=170,
                    crop_width_px=60.0)
    converted = rectangle_from_grasp(decoded)
    assert converted == GraspRectangle(row=250.5, col=330.0, angle=1.2, width=60.0, height=30.0)
    assert rectangle_from_grasp(decoded, height_px=30.0).height == 30.0
    with pytest.raises(ValueError, match="height_px"):
        rectangle_from_grasp(decoded, height_px=0.0)


def test_image_wise_accuracy_judges_the_most_confident_grasp_only():
    truth = [rectangle(angle=0.3)]
    predictions = [
        [grasp(angle=0.3, confidence=0.9), grasp(row=10.0, confidence=0.2)],   # right
        [grasp(row=10.0, confidence=0.9), grasp(angle=0.3, confidence=0.5)],   # top one wrong
        [],                                                                    # no grasp
        [grasp(row=10.0, confidence=0.1), grasp(angle=0.35, confidence=0.7)],  # top one right
        [grasp(angle=0.3 + math.radians(60))],                                 # angle off
    ]
    result = evaluate_top_grasps(predictions, [truth] * 5)
    assert (result.images, result.correct) == (5, 2)
    assert result.accuracy == pytest.approx(0.4)
    lines = result.lines()
    assert "40.00%" in lines[0] and "2 of 5" in lines[0]
    assert "30 degrees" in lines[1] and "0.25" in lines[1]
    assert evaluate_top_grasps([[grasp()]], [[]]).correct == 0


def test_evaluation_needs_one_truth_list_per_image():
    with pytest.raises(ValueError, match="ground truth for 1"):
        evaluate_top_grasps([[grasp()], [grasp()]], [[rectangle()]])
    with pytest.raises(ValueError, match="no images"):
        evaluate_top_grasps([], [])


@pytest.mark.parametrize("num_classes, mode", [(18, "max"), (120, "peaks")])
def test_a_network_that_outputs_the_labels_scores_full_marks(num_classes, mode):
    """Labels -> logits -> the node's decoder -> the metric: the three agree on conventions."""
    scenes = [generate_grasp_scene(seed) for seed in range(12)]
    geometry = CropGeometry(top=0, left=0, scale=1.0, image_height=320, image_width=320)
    config = DecodeConfig(mode=mode, max_width_px=200.0)
    predictions = []
    for scene in scenes:
        maps = label_maps(scene.rectangles, 320, 320, num_classes, max_width_px=200.0)
        able = np.where(maps.able > 0, 8.0, -8.0).astype(np.float32)
        angle = np.where(maps.angle > 0, 8.0, -8.0).astype(np.float32)
        width = np.clip(maps.width, 1e-6, 1 - 1e-6)
        width_logits = np.log(width / (1 - width)).astype(np.float32)
        predictions.append(decode_grasps(able, angle, width_logits, geometry, config))
    result = evaluate_top_grasps(predictions, [scene.rectangles for scene in scenes])
    assert result.accuracy == 1.0
