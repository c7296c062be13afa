"""Rendered RGB-D scenes as a PyTorch data set, for depth-only and RGB-D models.

Item ``i`` renders the scene of seed ``seed_start + i`` (``rgbd_scenes``: a RealSense-like camera
0.5-0.7 m above a table, 1-6 boxes and cylinders, the camera sometimes tilted a little), so every
item is the same on any machine and in any DataLoader worker. The network input is made by
``sgdn_ros.core.depth_planes`` from the sensor's depth (millimetres, noisy, with holes) read as
the node reads a 16UC1 image, so training and inference cannot differ.

Labels come from the scene's true grasps, drawn as Cornell-style rectangles in the network's
crop the way the 2-D scenes draw theirs (``grasp_rectangles``): the opening is the true opening
plus ``GRASP_CLEARANCE_PX``, the jaw size half the opening. A cylinder can be taken at any
angle, so its labels hold a rectangle at every angle class (its opening from the true grasp
nearest in angle); a box only the true grasps' angles. Batches travel sparsely, as in
``dataset``: ``collate_scenes`` joins them. ``held_out_accuracy`` judges a detector on scenes of
seeds no training run draws, with the Cornell metric against the true grasps alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Dataset

from sgdn_ros.core.depth import depth_to_metres
from sgdn_ros.core.depth_planes import (
    DEPTH_KINDS,
    depth_bgr_planes,
    depth_planes,
    input_kind_of_channels,
)
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.training.dataset import GraspBatch, check_scene_labels, sparse_grasp_batch
from sgdn_ros.training.grasp_rectangles import GRASP_CLEARANCE_PX, GraspRectangle
from sgdn_ros.training.metrics import EvaluationResult, angle_difference, evaluate_top_grasps
from sgdn_ros.training.rgbd_scenes import RgbdScene, render_rgbd_scene
from sgdn_ros.training.scenes import render_tabletop_scene

if TYPE_CHECKING:
    from sgdn_ros.pipeline.detector import GraspDetector

OBJECT_COUNT_RANGE = (1, 6)
TILT_PROBABILITY = 0.3
MAX_TRAINING_TILT_DEG = 8.0
HELD_OUT_SEED_START = 1_000_000  # as the colour model's evaluation; training starts at 0
# Scene settings are drawn from their own stream, apart from the renderer's (seeded by `seed`).
_SETTINGS_STREAM = 7


def training_scene(seed: int) -> RgbdScene:
    """The scene of ``seed``: 1-6 objects, the camera tilted up to MAX_TRAINING_TILT_DEG in
    TILT_PROBABILITY of the scenes. When the objects do not fit, one fewer is placed."""
    rng = np.random.default_rng([_SETTINGS_STREAM, seed])
    num_objects = int(rng.integers(OBJECT_COUNT_RANGE[0], OBJECT_COUNT_RANGE[1] + 1))
    tilt_deg = 0.0
    if rng.random() < TILT_PROBABILITY:
        tilt_deg = float(rng.uniform(-MAX_TRAINING_TILT_DEG, MAX_TRAINING_TILT_DEG))
    while True:
        try:
            return render_rgbd_scene(seed, num_objects=num_objects, tilt_deg=tilt_deg)
        except ValueError:
            if num_objects <= OBJECT_COUNT_RANGE[0]:
                raise
            num_objects -= 1


def sensor_depth_m(scene: RgbdScene) -> np.ndarray:
    """The scene's depth as the node reads a 16UC1 message: metres, holes NaN."""
    depth_mm = np.ascontiguousarray(scene.depth_mm)
    height, width = depth_mm.shape
    return depth_to_metres(depth_mm.view(np.uint8), height, width, width * depth_mm.itemsize,
                           "16UC1")


def network_input(scene: RgbdScene, input_kind: str,
                  config: PreprocessConfig | None = None) -> tuple[np.ndarray, CropGeometry]:
    """(1, C, H, W) float32 planes of ``input_kind`` ("depth" or "depth_bgr") and the crop."""
    config = config or PreprocessConfig()
    if input_kind == "depth":
        return depth_planes(sensor_depth_m(scene), config)
    if input_kind == "depth_bgr":
        return depth_bgr_planes(sensor_depth_m(scene), scene.bgr, config)
    raise ValueError(f"input_kind must be one of {', '.join(DEPTH_KINDS)}, got {input_kind!r}")


def true_grasp_rectangles(scene: RgbdScene,
                          clearance_px: float = GRASP_CLEARANCE_PX) -> list[GraspRectangle]:
    """The scene's true grasps as rectangles in image pixels (opening + clearance, jaw size
    half the opening): the truth a top grasp is judged against."""
    rectangles = []
    for grasp in scene.true_grasps:
        opening = grasp.width_px + clearance_px
        rectangles.append(GraspRectangle(row=grasp.row, col=grasp.col, angle=grasp.angle,
                                         width=opening, height=opening / 2))
    return rectangles


def label_rectangles(scene: RgbdScene, geometry: CropGeometry,
                     num_angle_classes: int) -> list[GraspRectangle]:
    """The rectangles the labels are drawn from, in the crop: the true grasps, and for each
    cylinder one at every angle class (module docstring)."""
    truths = true_grasp_rectangles(scene)
    by_object: dict[int, list[GraspRectangle]] = {}
    for grasp, rectangle in zip(scene.true_grasps, truths):
        by_object.setdefault(grasp.object_index, []).append(rectangle)
    rectangles = []
    for index, own in by_object.items():
        rectangles += own
        if scene.objects[index].shape == "cylinder":
            rectangles += _every_angle(own, num_angle_classes)
    return [dataclasses.replace(rectangle, row=rectangle.row - geometry.top,
                                col=rectangle.col - geometry.left) for rectangle in rectangles]


def _every_angle(rectangles: Sequence[GraspRectangle],
                 num_angle_classes: int) -> list[GraspRectangle]:
    """A rectangle at each class angle k * pi / K, shaped as the given one nearest in angle."""
    turned = []
    for k in range(num_angle_classes):
        angle = k * math.pi / num_angle_classes
        nearest = min(rectangles, key=lambda r: angle_difference(r.angle, angle))
        turned.append(dataclasses.replace(nearest, angle=angle))
    return turned


class RgbdSceneDataset(Dataset):
    """``num_scenes`` rendered scenes, seeds ``seed_start`` .. ``seed_start + num_scenes - 1``,
    as ``input_kind`` planes ("depth" or "depth_bgr") and sparse labels."""

    def __init__(self, num_scenes: int, *, seed_start: int = 0, input_kind: str,
                 num_angle_classes: int, width_channels: int,
                 max_width_px: float = 200.0) -> None:
        check_scene_labels(num_scenes, num_angle_classes, width_channels)
        if input_kind not in DEPTH_KINDS:
            raise ValueError(
                f"input_kind must be one of {', '.join(DEPTH_KINDS)}, got {input_kind!r}")
        self.num_scenes = num_scenes
        self.seed_start = seed_start
        self.input_kind = input_kind
        self.num_angle_classes = num_angle_classes
        self.width_channels = width_channels
        self.max_width_px = max_width_px

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> GraspBatch:
        """One scene as a batch of one; ``collate_scenes`` joins them."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"scene index {index} outside 0..{self.num_scenes - 1}")
        scene = training_scene(self.seed_start + index)
        planes, geometry = network_input(scene, self.input_kind)
        rectangles = label_rectangles(scene, geometry, self.num_angle_classes)
        return sparse_grasp_batch(planes, rectangles, self.num_angle_classes,
                                  self.width_channels, self.max_width_px)


def held_out_accuracy(detector: GraspDetector, num_scenes: int,
                      seed_start: int = HELD_OUT_SEED_START) -> EvaluationResult:
    """Image-wise accuracy of ``detector`` (a depth or RGB-D model, its top grasp per image:
    ``evaluate.TOP_GRASP_DECODING``) on the scenes of seeds ``seed_start`` onwards, each frame
    given as the node gets it: colour and the sensor's depth in metres."""
    predictions, truths = [], []
    for seed in range(seed_start, seed_start + num_scenes):
        scene = training_scene(seed)
        predictions.append(detector.detect(scene.bgr, sensor_depth_m(scene)).grasps)
        truths.append(true_grasp_rectangles(scene))
    return evaluate_top_grasps(predictions, truths)


def parity_planes(input_channels: int, count: int = 3) -> list[np.ndarray]:
    """Rendered inputs for ``sgdn-ros export``'s parity report, of the kind a network with
    ``input_channels`` takes: tabletop colour scenes, or RGB-D scenes as depth (+ colour)."""
    kind = input_kind_of_channels(input_channels)
    if kind in DEPTH_KINDS:
        return [network_input(render_rgbd_scene(seed, num_objects=1 + seed % 3), kind)[0]
                for seed in range(count)]
    preprocess = Preprocessor(PreprocessConfig())
    return [preprocess(render_tabletop_scene(seed, num_objects=1 + seed % 3)[0])[0]
            for seed in range(count)]
