"""Rendered RGB-D scenes: reproducible, depth true to the geometry, noise and holes as a
RealSense's, true grasps that project where the camera sees them, objects dark on a light table."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sgdn_ros.training.depth_sensor import depth_steps
from sgdn_ros.training.rgbd_geometry import TableObject, cast_rays
from sgdn_ros.training.rgbd_scenes import (
    BOX_LENGTH_RANGE_M,
    CAMERA_HEIGHT_RANGE_M,
    OBJECT_HEIGHT_RANGE_M,
    RgbdCamera,
    RgbdScene,
    realsense_camera,
    render_rgbd_scene,
)
from sgdn_ros.training.scenes import network_crop_bounds

SEEDS = range(8)
SMALL_DISTORTION = (0.02, -0.04, 0.001, -0.001, 0.01)


def scene_for(seed: int) -> RgbdScene:
    return render_rgbd_scene(seed, num_objects=3 + seed % 3)


def pinhole_rays(camera: RgbdCamera, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Rays scaled to z = 1 through pixel centres, from K alone (no distortion)."""
    return np.stack([(cols - camera.cx) / camera.fx, (rows - camera.cy) / camera.fy,
                     np.ones_like(rows, dtype=np.float64)], axis=-1)


def top_face_points(obj: TableObject, scale: float) -> np.ndarray:
    """Points around the top face's outline, scaled about its centre (< 1: on it)."""
    turns = np.linspace(0.0, 2 * math.pi, 16, endpoint=False)
    along, across = np.cos(turns) * obj.length_m / 2, np.sin(turns) * obj.width_m / 2
    if obj.shape == "box":  # onto the rectangle's edge
        reach = 1.0 / np.maximum(np.abs(np.cos(turns)), np.abs(np.sin(turns)))
        along, across = along * reach, across * reach
    offsets = (np.outer(along, obj.long_axis) + np.outer(across, obj.short_axis)) * scale
    return np.asarray(obj.top_centre_m) + offsets


def truth_at(scene: RgbdScene, pixels: np.ndarray) -> np.ndarray:
    rows, cols = np.rint(pixels).astype(int).T
    return scene.depth_m_truth[rows, cols].astype(np.float64)


def test_same_seed_gives_the_same_scene_and_another_seed_does_not():
    first, again, other = render_rgbd_scene(5), render_rgbd_scene(5), render_rgbd_scene(6)
    np.testing.assert_array_equal(first.bgr, again.bgr)
    np.testing.assert_array_equal(first.depth_mm, again.depth_mm)
    np.testing.assert_array_equal(first.depth_m_truth, again.depth_m_truth)
    assert (first.objects, first.true_grasps) == (again.objects, again.true_grasps)
    assert first.objects != other.objects
    assert np.abs(first.bgr.astype(int) - other.bgr.astype(int)).mean() > 1.0


def test_images_and_camera_are_a_realsense_above_a_table():
    scene = render_rgbd_scene(0, num_objects=5)
    assert scene.bgr.shape == (480, 640, 3) and scene.bgr.dtype == np.uint8
    assert scene.depth_mm.shape == (480, 640) and scene.depth_mm.dtype == np.uint16
    assert scene.depth_m_truth.shape == (480, 640) and scene.depth_m_truth.dtype == np.float32
    camera = scene.camera
    assert (camera.width, camera.height, len(camera.k)) == (640, 480, 9)
    assert camera.fx == pytest.approx(613.4, abs=1) and camera.fy == pytest.approx(613.5, abs=1)
    assert (camera.cx, camera.cy) == pytest.approx((329, 244), abs=1)
    assert camera.k[6:] == (0.0, 0.0, 1.0) and camera.distortion_model == "plumb_bob"
    assert not any(camera.d) and camera.frame_id.endswith("optical_frame")
    assert CAMERA_HEIGHT_RANGE_M[0] <= camera.height_above_table_m <= CAMERA_HEIGHT_RANGE_M[1]
    assert scene.table_up == (0.0, 0.0, -1.0)  # looking straight down
    assert len(scene.objects) == 5


@pytest.mark.parametrize("seed", SEEDS)
def test_objects_have_real_sizes_and_lie_apart_inside_the_network_crop(seed):
    scene = scene_for(seed)
    top, left, bottom, right = network_crop_bounds(480, 640)
    footprints = []
    for obj in scene.objects:
        assert 0.02 <= obj.width_m <= obj.length_m <= BOX_LENGTH_RANGE_M[1]
        assert OBJECT_HEIGHT_RANGE_M[0] <= obj.height_m <= OBJECT_HEIGHT_RANGE_M[1]
        pixels = scene.camera.project_to_pixels(obj.outline_points())
        assert (pixels.min(axis=0) >= (top, left)).all()
        assert (pixels.max(axis=0) <= (bottom - 1, right - 1)).all()
        footprint = np.zeros((480, 640), dtype=np.uint8)
        cv2.fillConvexPoly(footprint, cv2.convexHull(np.rint(pixels[:, ::-1]).astype(np.int32)), 1)
        footprints.append(footprint)
    assert np.sum(footprints, axis=0).max() == 1  # no two objects' images overlap


@pytest.mark.parametrize("tilt_deg", [0.0, 4.0])
def test_noiseless_depth_is_the_analytic_table_and_top_face_depth(tilt_deg):
    scene = render_rgbd_scene(3, num_objects=4, tilt_deg=tilt_deg)
    camera, up = scene.camera, np.asarray(scene.table_up)
    assert up @ [0.0, 0.0, -1.0] == pytest.approx(math.cos(math.radians(tilt_deg)))
    corner_rows, corner_cols = np.array([2.0, 2.0, 477.0, 477.0]), np.array([3.0, 636, 3, 636])
    table_depth = camera.height_above_table_m / -(pinhole_rays(camera, corner_rows,
                                                                corner_cols) @ up)
    np.testing.assert_allclose(scene.depth_m_truth[corner_rows.astype(int),
                                                   corner_cols.astype(int)],
                               table_depth, rtol=1e-6)
    for obj in scene.objects:
        pixels = np.rint(camera.project_to_pixels(top_face_points(obj, 0.8)))
        rays = pinhole_rays(camera, pixels[:, 0], pixels[:, 1])
        analytic = (up @ obj.top_centre_m) / (rays @ up)
        np.testing.assert_allclose(truth_at(scene, pixels), analytic, rtol=1e-6)
        beyond = camera.project_to_pixels(top_face_points(obj, 1.25))
        assert (truth_at(scene, beyond) > analytic + 0.003).all()  # off the top face


def test_depth_noise_is_about_one_millimetre_at_0_6_m_and_grows_with_z_squared():
    for height_m in (0.6, 0.7):
        scene = render_rgbd_scene(1, camera=realsense_camera(height_m))
        truth = scene.depth_m_truth
        table = (np.abs(truth - height_m) < 1e-6) & (scene.depth_mm > 0)
        error_mm = scene.depth_mm[table].astype(np.float64) - truth[table] * 1000.0
        expected_sigma = math.hypot((height_m / 0.6) ** 2, math.sqrt(1 / 12))  # + quantisation
        assert error_mm.std() == pytest.approx(expected_sigma, rel=0.05)
        assert abs(error_mm.mean()) < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_depth_holes_lie_mostly_along_depth_steps(seed):
    scene = scene_for(seed)
    holes = scene.depth_mm == 0
    assert 0.001 <= holes.mean() <= 0.03
    steps = depth_steps(scene.depth_m_truth.astype(np.float64))
    distance = cv2.distanceTransform(np.where(steps, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    assert (distance[holes] <= 4).mean() >= 0.8
    assert holes[steps].mean() >= 0.3  # along the edges, though not everywhere
    readings = scene.depth_mm[~holes].astype(np.float64)
    assert np.abs(readings - scene.depth_m_truth[~holes] * 1000.0).max() < 10.0


@pytest.mark.parametrize("seed", SEEDS)
def test_true_grasps_project_from_their_surface_points(seed):
    scene = scene_for(seed)
    camera = scene.camera
    assert {grasp.object_index for grasp in scene.true_grasps} == set(range(len(scene.objects)))
    for grasp in scene.true_grasps:
        obj = scene.objects[grasp.object_index]
        x, y, z = grasp.surface_point
        assert grasp.surface_point == pytest.approx(obj.top_centre_m)
        assert grasp.surface_depth_m == z
        assert abs(camera.fx * x / z + camera.cx - grasp.col) < 0.5
        assert abs(camera.fy * y / z + camera.cy - grasp.row) < 0.5
        assert grasp.width_px == pytest.approx(grasp.width_m * camera.fx / z, rel=0.01)
        assert 0.0 <= grasp.angle < math.pi
        assert scene.depth_m_truth[round(grasp.row), round(grasp.col)] == pytest.approx(z)


def test_a_box_grasp_closes_across_its_short_side():
    box_grasps = [(scene, grasp) for scene in map(scene_for, SEEDS) for grasp in scene.true_grasps
                  if scene.objects[grasp.object_index].shape == "box"]
    assert box_grasps
    for scene, grasp in box_grasps:
        obj = scene.objects[grasp.object_index]
        assert grasp.width_m == obj.width_m or (grasp.width_m == obj.length_m
                                                 and obj.width_m > 0.8 * obj.length_m)
        fingers = np.array([-math.sin(grasp.angle), math.cos(grasp.angle)])  # (drow, dcol)
        centre = np.array([grasp.row, grasp.col])
        on_top = centre + np.outer([-0.8, 0.8], fingers) * grasp.width_px / 2
        outside = centre + np.outer([-1.2, 1.2], fingers) * (grasp.width_px / 2 + 2)
        assert truth_at(scene, on_top) == pytest.approx(grasp.surface_depth_m, abs=1e-4)
        assert (truth_at(scene, outside) > grasp.surface_depth_m + 0.003).all()


def test_cylinders_are_grasped_across_their_diameter_at_several_angles():
    cylinders = [(scene, obj) for scene in map(scene_for, SEEDS) for obj in scene.objects
                 if obj.shape == "cylinder"]
    assert cylinders
    for scene, obj in cylinders:
        index = scene.objects.index(obj)
        grasps = [grasp for grasp in scene.true_grasps if grasp.object_index == index]
        angles = sorted(grasp.angle for grasp in grasps)
        assert len(grasps) >= 4 and max(np.diff(angles + [angles[0] + math.pi])) < math.pi / 3
        assert all(grasp.width_m == obj.width_m for grasp in grasps)


@pytest.mark.parametrize("seed", SEEDS)
def test_objects_are_darker_than_the_table_in_the_colour_image(seed):
    scene = scene_for(seed)
    brightness = scene.bgr.astype(np.float32).mean(axis=2)
    table = np.abs(scene.depth_m_truth - scene.camera.height_above_table_m) < 1e-4
    table_brightness = np.median(brightness[table])
    assert table_brightness > 170
    for obj in scene.objects:
        pixels = np.rint(scene.camera.project_to_pixels(top_face_points(obj, 0.8)))
        rows, cols = pixels.astype(int).T
        assert brightness[rows, cols].max() < table_brightness - 60


def test_a_small_distortion_is_rendered_and_projected_consistently():
    camera = realsense_camera(0.55, d=SMALL_DISTORTION)
    scene = render_rgbd_scene(2, num_objects=4, camera=camera)
    for grasp in scene.true_grasps:
        projected, _ = cv2.projectPoints(np.array([grasp.surface_point]), np.zeros(3),
                                         np.zeros(3), camera.matrix(),
                                         np.array(SMALL_DISTORTION))
        assert projected[0, 0] == pytest.approx((grasp.col, grasp.row), abs=0.5)
    for obj in scene.objects:
        on_top = camera.project_to_pixels(top_face_points(obj, 0.8))
        beyond = camera.project_to_pixels(top_face_points(obj, 1.25))
        depth = obj.top_centre_m[2]
        np.testing.assert_allclose(truth_at(scene, on_top), depth, rtol=1e-6)
        assert (truth_at(scene, beyond) > depth + 0.003).all()


def test_rays_meet_a_box_and_a_cylinder_where_geometry_says():
    forward = (0.0, 0.0, 1.0)  # a frame like the camera's: the table 0.6 m along +z
    common = dict(up=(0.0, 0.0, -1.0), long_axis=(1.0, 0.0, 0.0), height_m=0.05,
                  colour_bgr=(0, 0, 0), base_centre_m=(0.0, 0.0, 0.6))
    box = TableObject(shape="box", length_m=0.08, width_m=0.04, **common)
    cylinder = TableObject(shape="cylinder", length_m=0.04, width_m=0.04, **common)
    origins = np.array([[0.0, 0.0, 0.0], [0.03, 0.015, 0.0], [0.0, 0.03, 0.0]])
    box_t, box_normals = cast_rays(box, origins, forward)
    np.testing.assert_allclose(box_t[:2], 0.55)
    np.testing.assert_allclose(box_normals[:2], [[0, 0, -1]] * 2, atol=1e-12)
    assert box_t[2] == math.inf
    cylinder_t, _ = cast_rays(cylinder, origins, forward)
    assert cylinder_t[0] == pytest.approx(0.55)
    assert (cylinder_t[1:] == math.inf).all()
    sideways_t, sideways_normal = cast_rays(cylinder, [[-0.1, 0.0, 0.57]], [[1.0, 0.0, 0.0]])
    assert sideways_t[0] == pytest.approx(0.08)
    np.testing.assert_allclose(sideways_normal[0], [-1.0, 0.0, 0.0], atol=1e-12)
    assert box.top_centre_m == pytest.approx((0.0, 0.0, 0.55))


def test_impossible_requests_are_refused():
    with pytest.raises(ValueError, match="num_objects"):
        render_rgbd_scene(0, num_objects=-1)
    with pytest.raises(ValueError, match="tilt_deg"):
        render_rgbd_scene(0, tilt_deg=40.0)
    with pytest.raises(ValueError, match="could not place"):
        render_rgbd_scene(0, num_objects=40)
    with pytest.raises(ValueError, match="K must have 9 values"):
        RgbdCamera(640, 480, (1.0, 0.0), "plumb_bob", (), "camera", 0.6)
