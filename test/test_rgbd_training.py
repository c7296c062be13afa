"""Depth and RGB-D training on rendered scenes: the planes are the detector's, the labels sit on
the true grasps with their angle classes and openings, a short CPU run lowers the loss for both
input kinds, and the two shipped test models find a true grasp in most held-out scenes through
the node's pipeline (ONNX Runtime, the detector's depth input)."""

from __future__ import annotations

import csv
import pathlib
import statistics

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is an optional dependency (training, torch)")

from sgdn_ros.backends import create_backend  # noqa: E402
from sgdn_ros.core.preprocessing import PreprocessConfig  # noqa: E402
from sgdn_ros.pipeline.factory import cpu_detector  # noqa: E402
from sgdn_ros.training import train  # noqa: E402
from sgdn_ros.training.evaluate import TOP_GRASP_DECODING  # noqa: E402
from sgdn_ros.training.grasp_rectangles import GRASP_CLEARANCE_PX  # noqa: E402
from sgdn_ros.training.labels import angle_class  # noqa: E402
from sgdn_ros.training.rgbd_dataset import (  # noqa: E402
    RgbdSceneDataset,
    held_out_accuracy,
    network_input,
    training_scene,
)

DATA = pathlib.Path(__file__).parent / "data"
SHIPPED_MODELS = {"depth": DATA / "sgdn_tiny_depth_k18.onnx",
                  "depth_bgr": DATA / "sgdn_tiny_rgbd_k18.onnx"}
K = 18
MAX_WIDTH_PX = 200.0
# Seeds 0-5 hold boxes and cylinders, 1 to 6 objects, level and tilted cameras.
LABEL_SEEDS = range(6)
HELD_OUT_SCENES = 60
# Measured on seeds 1,000,000-1,000,059: depth 51 of 60 (85 %), RGB-D 52 of 60 (87 %); on 500
# scenes 83.4 % and 84.6 % (test/data/README.md). The bound leaves 9-10 scenes of margin.
MIN_HELD_OUT_ACCURACY = 0.7


def test_planes_are_the_scene_depth_and_colour_as_the_author_normalised_them():
    scene = training_scene(3)
    depth, geometry = network_input(scene, "depth")
    both, both_geometry = network_input(scene, "depth_bgr")
    assert depth.shape == (1, 1, 320, 320) and both.shape == (1, 4, 320, 320)
    assert both_geometry == geometry and (geometry.top, geometry.left) == (80, 160)
    np.testing.assert_array_equal(both[0, 0], depth[0, 0])
    crop = (slice(geometry.top, geometry.top + 320), slice(geometry.left, geometry.left + 320))
    colour = scene.bgr[crop].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(both[0, 1:], colour - colour.mean(), atol=1e-5)
    crop_mean_m = float(scene.depth_m_truth[crop].mean())
    for grasp in scene.true_grasps:
        row, col = round(grasp.row) - geometry.top, round(grasp.col) - geometry.left
        relative = grasp.surface_depth_m - crop_mean_m
        assert depth[0, 0, row, col] == pytest.approx(relative, abs=0.005)


@pytest.mark.parametrize("seed", LABEL_SEEDS)
def test_labels_peak_at_the_true_grasps_with_their_angle_classes_and_openings(seed):
    scene = training_scene(seed)
    dataset = RgbdSceneDataset(1, seed_start=seed, input_kind="depth", num_angle_classes=K,
                               width_channels=1, max_width_px=MAX_WIDTH_PX)
    item = dataset[0]
    _planes, geometry = network_input(scene, "depth")
    positives = {int(index): row for row, index in enumerate(item.positive_index)}
    assert item.able.sum() == len(positives) > 0
    for index, obj in enumerate(scene.objects):
        grasps = [grasp for grasp in scene.true_grasps if grasp.object_index == index]
        row = round(grasps[0].row) - geometry.top
        col = round(grasps[0].col) - geometry.left
        assert item.able[0, 0, row, col] == 1.0
        label = positives[row * 320 + col]
        classes = set(np.flatnonzero(item.angle[label].numpy()))
        if obj.shape == "cylinder":
            assert classes == set(range(K)), "a cylinder is taken at any angle"
        else:
            assert classes == {angle_class(grasp.angle, K) for grasp in grasps}
        widest = max(grasp.width_px for grasp in grasps) + GRASP_CLEARANCE_PX
        assert float(item.width[label, 0]) == pytest.approx(widest / MAX_WIDTH_PX, rel=1e-5)
    centres = np.array([(grasp.row - geometry.top, grasp.col - geometry.left)
                        for grasp in scene.true_grasps])
    for index in positives:
        pixel = np.array(divmod(index, 320))
        assert np.hypot(*(centres - pixel).T).min() <= 2.0, "a positive away from every grasp"


@pytest.mark.parametrize("input_kind", ["depth", "depth_bgr"])
def test_a_short_cpu_run_lowers_the_loss(input_kind, tmp_path):
    """30 steps of 2 scenes. Measured: the total loss falls to 0.93 (depth) and 0.95 (RGB-D)
    of its start, the able loss to 0.61 and 0.71; with no learning (lr 1e-7) the same scenes
    give 1.01 and 1.04, and 0.99 and 1.27."""
    config = train.TrainConfig(preset="tiny", input_kind=input_kind, steps=30, batch_size=2,
                               learning_rate=1e-2, seed=0, workers=0, device="cpu",
                               log_every=100)
    assert config.model_config().input_channels == (1 if input_kind == "depth" else 4)
    result = train.train(config, tmp_path, command="sgdn-ros train test")
    assert result.steps_completed == config.steps
    with result.loss_log_path.open(newline="") as log:
        rows = list(csv.DictReader(log))

    def fall(part: str) -> float:
        return (statistics.mean(float(row[part]) for row in rows[-5:])
                / statistics.mean(float(row[part]) for row in rows[:5]))

    assert fall("loss") < 0.97 and fall("able") < 0.85, (fall("loss"), fall("able"))


def test_the_train_command_takes_the_input_kind():
    parsed = train.build_parser().parse_args(["out", "--preset", "tiny", "--input-kind", "depth"])
    assert parsed.input_kind == "depth"
    with pytest.raises(ValueError, match="input_kind"):
        train.TrainConfig(input_kind="infrared")


@pytest.mark.parametrize("input_kind", sorted(SHIPPED_MODELS))
def test_shipped_models_find_a_true_grasp_in_most_held_out_scenes(input_kind):
    path = SHIPPED_MODELS[input_kind]
    assert path.stat().st_size < 2_000_000
    with create_backend("onnxruntime", path) as backend:
        detector = cpu_detector(backend, PreprocessConfig(), TOP_GRASP_DECODING)
        assert detector.input_kind == input_kind
        result = held_out_accuracy(detector, HELD_OUT_SCENES)
    assert result.accuracy >= MIN_HELD_OUT_ACCURACY, result.lines()
