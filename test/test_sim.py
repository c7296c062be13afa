"""The bin-picking bench: deterministic scenes, a camera true to the geometry, a gripper that
lifts what it truly grasps and nothing else, the object split, and the true grasps that the
model-free check executes."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet", reason="pybullet is not installed: run through scripts/test.sh")

from sgdn_ros.core.geometry import quaternion_from_rotation, rotation_from_quaternion  # noqa: E402
from sgdn_ros.sim.antipodal import TrueGraspPlanner, top_down_rotation, true_grasps  # noqa: E402
from sgdn_ros.sim.camera import TopDownCamera  # noqa: E402
from sgdn_ros.sim.catalogue import ObjectSplitError, object_ids, object_urdf  # noqa: E402
from sgdn_ros.sim.clearance import clear_tray, observe  # noqa: E402
from sgdn_ros.sim.gripper import Gripper, GripperSpec  # noqa: E402
from sgdn_ros.sim.report import Rate, figures  # noqa: E402
from sgdn_ros.sim.world import BinWorld  # noqa: E402
from sgdn_ros.training.depth_sensor import DEPTH_NOISE_MM_AT_REFERENCE  # noqa: E402
from sgdn_ros.training.rgbd_geometry import realsense_camera  # noqa: E402

HEIGHT_M = 0.65
CAMERA = TopDownCamera(realsense_camera(HEIGHT_M), HEIGHT_M)
BOX_HALF = (0.05, 0.015, 0.025)  # 100 x 30 x 50 mm, lying on the floor


@pytest.fixture
def box_world():
    with BinWorld() as world:
        box = world.add_box(BOX_HALF, (0.02, -0.01, BOX_HALF[2]))
        world.settle()
        yield world, box


def test_a_scene_settles_the_same_way_for_a_seed():
    with BinWorld() as first, BinWorld() as second, BinWorld() as other:
        first.drop_objects(7, 5, "held_out")
        second.drop_objects(7, 5, "held_out")
        other.drop_objects(8, 5, "held_out")
        assert [placed.object_id for placed in first.objects] == \
            [placed.object_id for placed in second.objects]
        np.testing.assert_allclose(first.state(), second.state(), atol=1e-9)
        assert not np.allclose(first.state()[:, :3], other.state()[:, :3], atol=1e-3)
        assert all(first.in_tray(placed) for placed in first.objects)


def test_the_object_split_is_enforced():
    assert set(object_ids("train")).isdisjoint(object_ids("held_out"))
    assert len(object_ids("train")) + len(object_ids("held_out")) == 1000
    assert object_urdf(850, "held_out").is_file()
    with pytest.raises(ObjectSplitError, match="never be used for training"):
        object_urdf(850, "train")
    with pytest.raises(ObjectSplitError, match="unknown object split"):
        object_ids("test")
    with BinWorld() as world:
        placed = world.drop_objects(3, 6, "train")
        assert all(item.object_id in object_ids("train") for item in placed)


def test_the_camera_sees_a_box_where_the_geometry_puts_it(box_world):
    world, box = box_world
    frame = CAMERA.render(world.p, world.client)
    rows, cols = np.nonzero(frame.body_ids == box.body)
    # the top face's corners, projected by the node's own camera model
    corners = np.array([[0.02 + sx * BOX_HALF[0], -0.01 + sy * BOX_HALF[1], 2 * BOX_HALF[2]]
                        for sx in (-1, 1) for sy in (-1, 1)])
    u, v = CAMERA.model.project(CAMERA.to_optical(corners))
    assert abs(cols.min() - u.min()) <= 1.5 and abs(cols.max() - u.max()) <= 1.5
    assert abs(rows.min() - v.min()) <= 1.5 and abs(rows.max() - v.max()) <= 1.5
    top = frame.depth_m[int(v.mean()) - 5:int(v.mean()) + 5, int(u.mean()) - 20:int(u.mean()) + 20]
    np.testing.assert_allclose(top, HEIGHT_M - 2 * BOX_HALF[2], atol=5e-4)


def test_rendered_depth_matches_the_collision_geometry_within_the_noise(box_world):
    world, box = box_world
    sensor = observe(world, CAMERA, np.random.default_rng(0))
    truth = sensor.truth
    on_box = (truth.body_ids == box.body) & (sensor.depth_mm > 0)
    # rays straight down from the camera through box pixels meet the collision box at the
    # rendered depth
    rows, cols = np.nonzero(on_box)
    picked = np.random.default_rng(1).choice(len(rows), 200, replace=False)
    x, y = CAMERA.model.normalized_rays(cols[picked].astype(float), rows[picked].astype(float))
    ends = CAMERA.to_world(np.stack([x, y, np.ones_like(x)], axis=1))
    hits = world.p.rayTestBatch([CAMERA.position.tolist()] * len(ends), ends.tolist(),
                                physicsClientId=world.client)
    hit_depth = np.array([CAMERA.to_optical(np.array(hit[3]))[2] for hit in hits])
    assert all(hit[0] == box.body for hit in hits)
    np.testing.assert_allclose(truth.depth_m[rows[picked], cols[picked]], hit_depth, atol=1e-3)
    # the sensor's reading: millimetres, noise of about 1 mm at 0.6 m, holes somewhere
    error_mm = sensor.depth_mm[on_box].astype(float) - truth.depth_m[on_box] * 1000.0
    sigma_mm = DEPTH_NOISE_MM_AT_REFERENCE * (HEIGHT_M / 0.6) ** 2
    assert abs(error_mm.mean()) < 0.3 and 0.5 * sigma_mm < error_mm.std() < 1.5 * sigma_mm
    assert (sensor.depth_mm == 0).any() and sensor.depth_mm.dtype == np.uint16


def test_a_grasp_across_a_box_lifts_it_and_one_beside_it_fails(box_world):
    world, box = box_world
    gripper = Gripper(world)
    across_short_side = top_down_rotation((0.0, 1.0, 0.0))
    beside = gripper.execute(np.array([0.02, -0.01 + 0.06, 0.03]), across_short_side, 0.05)
    assert not beside.success
    assert world.pose(box)[0][2] < 0.03
    held = gripper.execute(np.array([0.02, -0.01, 0.03]), across_short_side, 0.05)
    assert held.success and held.held[0] == box
    assert world.pose(box)[0][2] > BOX_HALF[2] + 0.12  # lifted 0.15 m, still in the fingers


def test_a_grasp_too_narrow_for_the_box_fails(box_world):
    world, box = box_world
    narrow = Gripper(world).execute(np.array([0.02, -0.01, 0.03]),
                                    top_down_rotation((0.0, 1.0, 0.0)), 0.015)
    assert not narrow.success


def test_true_grasps_are_antipodal_and_fit_the_gripper(box_world):
    world, box = box_world
    frame = CAMERA.render(world.p, world.client)
    grasps = true_grasps(world, CAMERA, frame, box, GripperSpec(), 18)
    assert grasps
    for grasp in grasps:
        closing = np.array(grasp.closing_world)
        # across the 30 mm side only (the 100 mm side does not fit an 85 mm gripper)
        assert abs(closing[1]) > math.cos(math.radians(36))
        assert 0.03 < grasp.width_m <= GripperSpec().max_opening_m
        assert 2 * BOX_HALF[2] - 0.021 <= grasp.tips_world[2] < 2 * BOX_HALF[2]


def test_true_grasps_clear_held_out_clutter():
    """The model-free check in short: the simulator's own grasps pick held-out objects."""
    spec = GripperSpec()
    results = []
    for seed in (1, 2):
        with BinWorld() as world:
            world.drop_objects(seed, 4, "held_out")
            results.append(clear_tray(world, Gripper(world, spec), CAMERA,
                                      TrueGraspPlanner(world, CAMERA, spec), seed))
    found = figures(results)
    assert found.grasp_success.total >= 8
    assert found.grasp_success.hits >= found.grasp_success.total - 1
    assert found.clearance.hits >= 7


def test_wilson_interval_is_sound_at_the_edges():
    low, high = Rate(20, 20).interval()
    assert high == 1.0 and 0.83 < low < 0.84
    low, high = Rate(0, 10).interval()
    assert low == 0.0 and 0.27 < high < 0.28
    assert math.isnan(Rate(0, 0).value)


@pytest.mark.parametrize("yaw", [0.0, 0.7, 2.5, -3.0])
def test_quaternions_and_matrices_round_trip(yaw):
    rotation = top_down_rotation((math.cos(yaw), math.sin(yaw), 0.0))
    assert np.isclose(np.linalg.det(rotation), 1.0)
    np.testing.assert_allclose(rotation_from_quaternion(quaternion_from_rotation(rotation)),
                               rotation, atol=1e-12)
