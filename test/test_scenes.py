"""Rendered tabletop scenes: deterministic, objects where the truth says, the right way round."""

from __future__ import annotations

import json
import math
import re

import cv2
import numpy as np
import pytest

from sgdn_ros.models.synthetic import DARK_START_BRIGHTNESS, FULLY_DARK_BRIGHTNESS
from sgdn_ros.training.scene_objects import SHAPES, SceneObject, object_coverage
from sgdn_ros.training.scenes import (
    LENGTH_RANGE_PX,
    MIN_OBJECT_GAP_PX,
    SCENE_TRUTH_FILE,
    THICKNESS_RANGE_PX,
    network_crop_bounds,
    render_tabletop_scene,
    write_demo_images,
    write_demo_scenes,
)

SEEDS = range(12)


def brightness(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32).mean(axis=2)


def dark_extent(image: np.ndarray, obj: SceneObject, direction: float) -> float:
    """Length (px) of the dark run through the object's centre along an on-screen direction."""
    steps = np.arange(-100.0, 100.0, 0.25)
    cols = (obj.col + steps * math.cos(direction)).astype(np.float32)
    rows = (obj.row - steps * math.sin(direction)).astype(np.float32)
    profile = cv2.remap(brightness(image), cols[None, :], rows[None, :], cv2.INTER_LINEAR)
    threshold = (brightness(image)[int(obj.row), int(obj.col)] + 200.0) / 2
    return float(np.count_nonzero(profile[0] < threshold) * 0.25)


def test_same_seed_gives_the_same_scene_and_another_seed_does_not():
    first, first_objects = render_tabletop_scene(7, num_objects=2)
    again, again_objects = render_tabletop_scene(7, num_objects=2)
    other, other_objects = render_tabletop_scene(8, num_objects=2)
    np.testing.assert_array_equal(first, again)
    assert first_objects == again_objects
    assert first_objects != other_objects
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_image_is_uint8_bgr_of_the_requested_size():
    image, _ = render_tabletop_scene(0, height=360, width=500)
    assert image.shape == (360, 500, 3)
    assert image.dtype == np.uint8


@pytest.mark.parametrize("num_objects", [1, 2, 3])
def test_random_objects_lie_inside_the_network_crop_and_apart(num_objects):
    top, left, bottom, right = network_crop_bounds(480, 640)
    assert (top, left, bottom, right) == (80, 160, 400, 480)
    for seed in SEEDS:
        _, objects = render_tabletop_scene(seed, num_objects=num_objects)
        assert len(objects) == num_objects
        footprints = [object_coverage(obj, 480, 640) > 0 for obj in objects]
        for footprint in footprints:
            rows, cols = np.nonzero(footprint)
            assert rows.min() >= top and rows.max() < bottom
            assert cols.min() >= left and cols.max() < right
        for index, footprint in enumerate(footprints):
            others = np.zeros_like(footprint)
            for other in footprints[index + 1:]:
                others |= other
            if others.any():
                free = np.where(others, 0, 255).astype(np.uint8)
                distance = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                assert distance[footprint].min() > MIN_OBJECT_GAP_PX


def test_random_objects_have_the_documented_sizes_and_angles():
    objects = [obj for seed in SEEDS for obj in render_tabletop_scene(seed, num_objects=2)[1]]
    for obj in objects:
        assert LENGTH_RANGE_PX[0] <= obj.length <= LENGTH_RANGE_PX[1]
        assert THICKNESS_RANGE_PX[0] <= obj.thickness <= THICKNESS_RANGE_PX[1]
        assert obj.thickness < obj.length
        assert 0.0 <= obj.grasp_angle < math.pi
    assert {obj.shape for obj in objects} == set(SHAPES)


def test_object_centres_are_dark_and_the_table_is_light_for_the_synthetic_model():
    for seed in SEEDS:
        image, objects = render_tabletop_scene(seed, num_objects=3)
        light = brightness(image)
        occupied = sum(object_coverage(obj, 480, 640) for obj in objects) > 0
        free = np.where(occupied, 0, 255).astype(np.uint8)
        table = cv2.distanceTransform(free, cv2.DIST_L2, 5) > 3
        assert light[table].min() > DARK_START_BRIGHTNESS + 10
        for obj in objects:
            row, col = round(obj.row), round(obj.col)
            assert light[row - 2:row + 3, col - 2:col + 3].max() < FULLY_DARK_BRIGHTNESS - 10


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("degrees", [0, 30, 60, 90, 135])
def test_grasp_goes_across_the_object(shape, degrees):
    obj = SceneObject(row=241.3, col=318.7, length=100.0, thickness=30.0,
                      grasp_angle=math.radians(degrees), shape=shape)
    image, objects = render_tabletop_scene(3, objects=[obj])
    assert objects == [obj]
    assert dark_extent(image, obj, obj.grasp_angle) == pytest.approx(obj.thickness, abs=2.0)
    assert dark_extent(image, obj, obj.long_axis_angle) == pytest.approx(obj.length, abs=2.0)


def test_angle_convention_is_counter_clockwise_on_screen():
    # A grasp at 45 degrees runs to the upper right on screen: a bar whose long axis points to
    # the upper left, so the upper-left pixel is dark and the upper-right one is table.
    obj = SceneObject(row=240.0, col=320.0, length=100.0, thickness=20.0,
                      grasp_angle=math.radians(45), shape="box")
    light = brightness(render_tabletop_scene(0, objects=[obj])[0])
    assert light[240 - 30, 320 - 30] < FULLY_DARK_BRIGHTNESS
    assert light[240 - 30, 320 + 30] > DARK_START_BRIGHTNESS


@pytest.mark.parametrize("shape, area", [
    ("box", 90.0 * 30.0),
    ("ellipse", math.pi * 45.0 * 15.0),
    ("capsule", 60.0 * 30.0 + math.pi * 15.0 ** 2),
])
def test_coverage_integrates_to_the_shape_area(shape, area):
    obj = SceneObject(row=100.4, col=150.8, length=90.0, thickness=30.0, grasp_angle=1.0,
                      shape=shape)
    coverage = object_coverage(obj, 240, 320)
    assert coverage.min() >= 0.0 and coverage.max() == 1.0
    assert coverage.sum() == pytest.approx(area, rel=0.01)


def test_objects_argument_overrides_num_objects_and_keeps_the_table():
    obj = SceneObject(row=200.0, col=300.0, length=80.0, thickness=25.0, grasp_angle=0.5)
    with_object, objects = render_tabletop_scene(4, num_objects=3, objects=[obj])
    empty, no_objects = render_tabletop_scene(4, num_objects=3, objects=[])
    assert objects == [obj] and no_objects == []
    far_away = (slice(0, 60), slice(0, 60))
    np.testing.assert_array_equal(with_object[far_away], empty[far_away])
    assert brightness(empty).min() > DARK_START_BRIGHTNESS + 10


def test_write_demo_scenes_writes_readable_640x480_pngs_and_their_truth(tmp_path):
    scenes = write_demo_scenes(tmp_path / "demo", count=3, seed=5)
    assert [path.name for path, _ in scenes] == ["tabletop_00.png", "tabletop_01.png",
                                                 "tabletop_02.png"]
    truth = json.loads((tmp_path / "demo" / SCENE_TRUTH_FILE).read_text(encoding="utf-8"))
    for index, ((path, objects), entry) in enumerate(zip(scenes, truth["scenes"])):
        expected_image, expected_objects = render_tabletop_scene(5 + index, num_objects=1 + index)
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR), expected_image)
        assert objects == expected_objects
        assert (entry["image"], entry["seed"]) == (path.name, 5 + index)
        from_json = [SceneObject(**{**fields, "colour_bgr": tuple(fields["colour_bgr"])})
                     for fields in entry["objects"]]
        assert from_json == objects


def test_write_demo_images_returns_the_paths_only(tmp_path):
    paths = write_demo_images(tmp_path, count=2, seed=1)
    assert paths == [tmp_path / "tabletop_00.png", tmp_path / "tabletop_01.png"]
    assert all(path.is_file() for path in paths)


@pytest.mark.parametrize("fields, message", [
    ({"shape": "star"}, "shape must be one of box, ellipse, capsule"),
    ({"thickness": 90.0}, "thickness <= length"),
    ({"grasp_angle": math.pi}, "grasp_angle must be in [0, pi)"),
    ({"colour_bgr": (0, 0, 300)}, "colour_bgr"),
])
def test_invalid_objects_are_refused_with_the_reason(fields, message):
    valid = {"row": 10.0, "col": 10.0, "length": 80.0, "thickness": 20.0, "grasp_angle": 0.0}
    with pytest.raises(ValueError, match=re.escape(message)):
        SceneObject(**{**valid, **fields})


def test_too_many_objects_for_the_crop_are_refused():
    with pytest.raises(ValueError, match="fewer objects"):
        render_tabletop_scene(0, num_objects=12)
