"""Label maps: positives at the grasp centres and along each object's band of grasps, the right
angle classes and widths there, nothing elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdn_ros.training.grasp_rectangles import GraspRectangle, object_grasp_rectangles
from sgdn_ros.training.grasp_scenes import generate_grasp_scene
from sgdn_ros.training.labels import angle_class, label_maps
from sgdn_ros.training.scene_objects import SceneObject


@pytest.mark.parametrize("angle, classes, expected", [
    (0.0, 18, 0), (math.pi / 18 * 5, 18, 5), (math.pi / 18 * 5.49, 18, 5),
    (math.pi / 18 * 5.5, 18, 6), (math.pi - 1e-6, 18, 0), (math.pi / 120 * 77, 120, 77),
    (math.pi * 0.999, 120, 0)])
def test_angle_class_is_the_nearest_class_modulo_k(angle, classes, expected):
    assert angle_class(angle, classes) == expected


def test_one_rectangle_marks_a_disc_with_its_class_and_width():
    rectangle = GraspRectangle(row=40.0, col=50.0, angle=math.radians(30), width=60.0,
                               height=30.0)
    maps = label_maps([rectangle], 100, 120, 18, max_width_px=200.0, centre_radius_px=2.0)
    assert maps.able.shape == (100, 120)
    assert maps.angle.shape == maps.width.shape == (18, 100, 120)
    assert maps.able.dtype == maps.angle.dtype == maps.width.dtype == np.float32
    rows, cols = np.nonzero(maps.able)
    assert len(rows) == 13  # pixel centres within 2 px of an integer point
    assert np.hypot(rows - 40, cols - 50).max() <= 2.0
    assert angle_class(rectangle.angle, 18) == 3
    np.testing.assert_array_equal(maps.angle[3], maps.able)
    assert maps.angle.sum() == 13
    np.testing.assert_allclose(maps.width[3][maps.able > 0], 0.3)
    assert maps.width.sum() == pytest.approx(13 * 0.3)


def test_rectangles_that_continue_each_other_are_joined_by_a_band():
    """Same angle, offset along the jaw by less than the jaw size: the centres between them
    are valid grasps too, with the width interpolated."""
    angle = 0.0  # fingers along columns, jaw along rows
    first = GraspRectangle(row=20.0, col=30.0, angle=angle, width=40.0, height=12.0)
    second = GraspRectangle(row=30.0, col=30.0, angle=angle, width=50.0, height=12.0)
    maps = label_maps([first, second], 60, 60, 18, max_width_px=100.0)
    column = maps.able[:, 30]
    assert column[18:33].all() and not column[17] and not column[33]
    # Centres within 2 px of (25, 30) lie on rows 23 to 27, with openings 43 to 47: the widest
    # is kept, as where two grasps overlap.
    assert maps.width[0, 25, 30] == pytest.approx(0.47)
    assert maps.width[0, 20, 30] == pytest.approx(0.42)
    assert maps.able[25, 27] == 0  # the band is thin: 2 px either side of the segment


@pytest.mark.parametrize("second", [
    GraspRectangle(row=35.0, col=30.0, angle=0.0, width=40.0, height=12.0),   # too far apart
    GraspRectangle(row=30.0, col=33.0, angle=0.0, width=40.0, height=12.0),   # along the fingers
    GraspRectangle(row=30.0, col=30.0, angle=0.1, width=40.0, height=12.0),   # another angle
])
def test_rectangles_that_do_not_continue_each_other_stay_apart(second):
    first = GraspRectangle(row=20.0, col=30.0, angle=0.0, width=40.0, height=12.0)
    maps = label_maps([first, second], 60, 60, 18)
    assert maps.able[25, 30] == 0
    assert maps.able.sum() == 26


def test_a_near_round_object_has_every_angle_class_at_its_centre():
    capsule = SceneObject(row=50.0, col=50.0, length=40.0, thickness=36.0, grasp_angle=0.3,
                          shape="capsule")
    for classes in (18, 120):
        maps = label_maps(object_grasp_rectangles(capsule), 100, 100, classes)
        assert maps.angle[:, 50, 50].all()
        widths = maps.width[:, 50, 50] * 200.0
        # Across the long axis the opening is the thickness + clearance, along it the length +
        # clearance; a class keeps the widest opening of the angles it holds.
        assert 36.0 + 10.0 - 1e-3 <= widths.min() < 36.0 + 10.0 + 1.0
        assert widths.max() == pytest.approx(40.0 + 10.0, abs=1e-3)


def test_overlapping_grasps_of_one_class_keep_the_widest_opening():
    narrow = GraspRectangle(row=20.0, col=20.0, angle=0.0, width=30.0, height=15.0)
    wide = GraspRectangle(row=20.0, col=21.0, angle=0.0, width=90.0, height=45.0)
    for order in ([narrow, wide], [wide, narrow]):
        maps = label_maps(order, 40, 40, 18, max_width_px=100.0)
        assert maps.width[0, 20, 20] == pytest.approx(0.9)


def test_openings_beyond_the_maximum_are_stored_as_one():
    rectangle = GraspRectangle(row=5.0, col=5.0, angle=0.0, width=300.0, height=20.0)
    assert label_maps([rectangle], 10, 10, 4, max_width_px=200.0).width.max() == 1.0


def test_rectangles_at_the_border_mark_only_pixels_inside():
    corner = GraspRectangle(row=0.0, col=0.0, angle=0.0, width=20.0, height=10.0)
    maps = label_maps([corner], 10, 10, 6)
    assert maps.able.sum() == 6  # the quarter disc: (0,0),(0,1),(0,2),(1,0),(1,1),(2,0)


def test_no_rectangles_give_empty_maps():
    maps = label_maps([], 8, 8, 3)
    assert not maps.able.any() and not maps.angle.any() and not maps.width.any()


def test_generated_scene_labels_agree_with_its_rectangles():
    for seed in range(10):
        scene = generate_grasp_scene(seed)
        maps = label_maps(scene.rectangles, 320, 320, 120, max_width_px=200.0)
        for rectangle in scene.rectangles:
            row, col = round(rectangle.row), round(rectangle.col)
            k = angle_class(rectangle.angle, 120)
            assert maps.able[row, col] == 1.0
            assert maps.angle[k, row, col] == 1.0
            assert maps.width[k, row, col] >= np.float32(rectangle.width / 200.0)
        positive = maps.able > 0
        np.testing.assert_array_equal(maps.angle.any(axis=0), positive)
        np.testing.assert_array_equal(maps.width.any(axis=0), positive)
        assert not maps.width[maps.angle == 0].any()
        assert positive.sum() < 0.05 * positive.size


@pytest.mark.parametrize("bad, named", [
    (dict(num_angle_classes=0), "num_angle_classes"), (dict(height=0), "height"),
    (dict(max_width_px=0.0), "max_width_px"), (dict(centre_radius_px=0.5), "centre_radius_px"),
    (dict(centre_radius_px=math.inf), "centre_radius_px")])
def test_bad_arguments_are_refused_with_the_reason(bad, named):
    arguments = dict(rectangles=[], height=10, width=10, num_angle_classes=4) | bad
    with pytest.raises(ValueError, match=named):
        label_maps(**arguments)
