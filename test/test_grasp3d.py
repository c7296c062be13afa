"""The 3-D grasp stage on analytic scenes: a table at 0.6 m seen straight down, boxes on it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest

from sgdn_ros.core.camera import CameraModel
from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.depth import depth_to_metres
from sgdn_ros.core.grasp3d import (
    INVALID_REASONS,
    GripperGeometry,
    GripperGeometryError,
    grasps_in_3d,
)

TABLE_M = 0.6
PINHOLE = CameraModel(640, 480, (613.0, 0.0, 320.0, 0.0, 613.0, 240.0, 0.0, 0.0, 1.0),
                      frame_id="camera_color_optical_frame")
GRIPPER = GripperGeometry()
OPENING_M = 0.08


@dataclass(frozen=True)
class Box:
    """A box on the table: its footprint in the optical frame's x, y and the depth of its top."""

    x: tuple[float, float]
    y: tuple[float, float]
    top_m: float


GRASPED = Box((0.005, 0.055), (-0.045, 0.005), 0.56)  # 5 x 5 cm, 4 cm high
CENTRE = (0.03, -0.02)


def render_depth(camera: CameraModel, boxes: list[Box]) -> np.ndarray:
    """Exact depth of every pixel centre: the first hit of its ray with a box (top or wall),
    else the table."""
    rows, cols = np.mgrid[0:camera.height, 0:camera.width]
    ray_x, ray_y = camera.normalized_rays(cols, rows)
    depth = np.full(ray_x.shape, TABLE_M)
    for box in boxes:
        enter, leave = np.full(ray_x.shape, box.top_m), np.full(ray_x.shape, TABLE_M)
        for ray, (low, high) in ((ray_x, box.x), (ray_y, box.y)):
            with np.errstate(divide="ignore"):
                first, second = low / ray, high / ray
            along_axis = ray == 0
            enter = np.maximum(enter, np.where(along_axis, -np.inf, np.minimum(first, second)))
            leave = np.minimum(leave, np.where(along_axis, np.inf, np.maximum(first, second)))
            if not low <= 0 <= high:
                leave = np.where(along_axis, -np.inf, leave)
        depth = np.where(enter <= leave, np.minimum(depth, enter), depth)
    return depth.astype(np.float32)


def grasp_at(point_xy: tuple[float, float], depth: float, angle: float,
             camera: CameraModel = PINHOLE, opening_m: float = OPENING_M) -> Grasp:
    """The 2-D grasp that sees the 3-D grasp at point_xy, depth, angle and opening."""
    closing = np.array([math.cos(angle), -math.sin(angle)]) * opening_m / 2
    centre = np.array(point_xy)
    points = np.array([[*centre, depth], [*(centre + closing), depth],
                       [*(centre - closing), depth]])
    cols, rows = camera.project(points)
    width_px = float(np.hypot(cols[1] - cols[2], rows[1] - rows[2]))
    return Grasp(row=float(rows[0]), col=float(cols[0]), angle=angle, width_px=width_px,
                 width_m=math.nan, confidence=0.9, angle_class=0, crop_row=0, crop_col=0,
                 crop_width_px=width_px)


def locate(grasps: list[Grasp], depth: np.ndarray, camera: CameraModel = PINHOLE,
           gripper: GripperGeometry = GRIPPER):
    return grasps_in_3d(grasps, depth, camera, gripper)


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, math.pi / 2, 2.5])
def test_a_grasp_across_the_box_lands_on_its_top(angle):
    depth = render_depth(PINHOLE, [GRASPED])
    (located,) = locate([grasp_at(CENTRE, 0.56, angle)], depth)
    assert located.valid and located.reason == ""
    assert located.surface_depth_m == pytest.approx(0.56, abs=0.002)
    np.testing.assert_allclose(located.surface_point, (*CENTRE, located.surface_depth_m),
                               atol=0.002)
    assert located.grasp_depth_m == pytest.approx(GRIPPER.max_grasp_depth_m)
    np.testing.assert_allclose(located.position,
                               (*CENTRE, located.surface_depth_m + located.grasp_depth_m),
                               atol=0.002)
    np.testing.assert_allclose(
        located.pre_grasp_position,
        np.add(located.position, (0.0, 0.0, -GRIPPER.pre_grasp_offset_m)), atol=1e-12)
    assert located.width_m == pytest.approx(OPENING_M, rel=0.05)


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, math.pi / 2, 2.5])
def test_a_metric_width_becomes_pixels_at_the_surface_depth(angle):
    """A metric-width model's grasp (width_px unknown) lands where the same grasp in pixels
    does, with the model's opening as its width."""
    depth = render_depth(PINHOLE, [GRASPED])
    in_pixels = grasp_at(CENTRE, 0.56, angle)
    in_metres = dataclasses.replace(in_pixels, width_px=math.nan, width_m=OPENING_M,
                                    crop_width_px=math.nan)
    (expected, located) = locate([in_pixels, in_metres], depth)
    assert located.valid and located.width_m == OPENING_M
    assert located.surface_depth_m == expected.surface_depth_m
    assert located.grasp_depth_m == expected.grasp_depth_m
    np.testing.assert_allclose(located.position, expected.position, atol=1e-9)


def test_a_metric_grasp_without_depth_under_its_centre_has_no_depth():
    depth = render_depth(PINHOLE, [GRASPED])
    grasp = grasp_at(CENTRE, 0.56, 0.0)
    depth[round(grasp.row) - 4:round(grasp.row) + 5, round(grasp.col) - 4:round(grasp.col) + 5] \
        = np.nan
    metric = dataclasses.replace(grasp, width_px=math.nan, width_m=OPENING_M)
    (located,) = locate([metric], depth)
    assert (located.valid, located.reason) == (False, "no_depth")


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, math.pi / 2])
def test_orientation_turns_the_gripper_x_axis_onto_the_finger_line(angle):
    depth = render_depth(PINHOLE, [GRASPED])
    (located,) = locate([grasp_at(CENTRE, 0.56, angle)], depth)
    x, y, z, w = located.orientation
    assert (x, y) == (0.0, 0.0)
    assert (z, w) == pytest.approx((math.sin(-angle / 2), math.cos(-angle / 2)))
    closing_axis = (1 - 2 * z * z, 2 * z * w, 0.0)  # the rotation's first column
    assert closing_axis == pytest.approx((math.cos(angle), -math.sin(angle), 0.0))


NEIGHBOUR_FOOTPRINT = {"x": (0.073, 0.12), "y": (-0.07, 0.03)}  # under the +x finger at angle 0


def test_a_neighbour_under_a_finger_limits_the_grasp_depth():
    neighbour = Box(**NEIGHBOUR_FOOTPRINT, top_m=0.5765)  # 16.5 mm below the grasped top
    depth = render_depth(PINHOLE, [GRASPED, neighbour])
    free, blocked = locate([grasp_at(CENTRE, 0.56, math.pi / 2), grasp_at(CENTRE, 0.56, 0.0)],
                           depth)
    assert free.valid and free.grasp_depth_m == pytest.approx(0.03)
    assert blocked.valid and blocked.grasp_depth_m == pytest.approx(0.015)
    assert blocked.surface_depth_m == pytest.approx(0.56, abs=0.002)
    assert blocked.position[2] == pytest.approx(blocked.surface_depth_m + 0.015)


def test_a_finger_blocked_at_the_surface_is_a_collision():
    taller = Box(**NEIGHBOUR_FOOTPRINT, top_m=0.55)
    depth = render_depth(PINHOLE, [GRASPED, taller])
    (located,) = locate([grasp_at(CENTRE, 0.56, 0.0)], depth)
    assert not located.valid and located.reason == "collision"
    assert located.grasp_depth_m == 0.0
    assert located.surface_depth_m == pytest.approx(0.56, abs=0.002)
    assert located.width_m == pytest.approx(OPENING_M, rel=0.05)


def test_a_single_pixel_post_in_a_finger_is_found():
    depth = render_depth(PINHOLE, [GRASPED])
    finger_middle = (CENTRE[0] + OPENING_M / 2 + GRIPPER.finger_thickness_m / 2, CENTRE[1],
                     0.56 + GRIPPER.grasp_depth_step_m)
    cols, rows = PINHOLE.project(np.array([finger_middle]))
    depth[int(round(rows[0])), int(round(cols[0]))] = 0.565
    (located,) = locate([grasp_at(CENTRE, 0.56, 0.0)], depth)
    assert located.grasp_depth_m == pytest.approx(0.003)  # the tips pass 0.565 at step two
    assert located.valid


def test_the_table_hidden_behind_an_off_axis_box_counts_as_occupied():
    """Off-axis, rays pass over the box's outer edge and reach the table farther out: the
    space below that edge is not seen, so a finger close to the edge must not go down."""
    far_box = Box((0.16, 0.21), (-0.025, 0.025), 0.56)
    depth = render_depth(PINHOLE, [far_box])
    close, clear = locate([grasp_at((0.185, 0.0), 0.56, 0.0, opening_m=0.07),
                           grasp_at((0.185, 0.0), 0.56, 0.0, opening_m=0.1)], depth)
    assert close.grasp_depth_m < GRIPPER.max_grasp_depth_m
    assert clear.grasp_depth_m == pytest.approx(GRIPPER.max_grasp_depth_m)


def test_a_narrower_opening_than_the_box_collides():
    depth = render_depth(PINHOLE, [GRASPED])
    (located,) = locate([grasp_at(CENTRE, 0.56, 0.0, opening_m=0.04)], depth)
    assert located.reason == "collision"


def test_holes_on_the_finger_line_give_no_depth():
    depth = render_depth(PINHOLE, [GRASPED])
    grasp = grasp_at(CENTRE, 0.56, 0.0)
    row = int(round(grasp.row))
    depth[row - 3:row + 4, :] = np.nan
    (located,) = locate([grasp], depth)
    assert not located.valid and located.reason == "no_depth"
    assert math.isnan(located.surface_depth_m) and math.isnan(located.width_m)
    assert np.isnan(located.position).all() and np.isnan(located.pre_grasp_position).all()
    assert located.orientation == pytest.approx((0.0, 0.0, 0.0, 1.0))


def test_a_few_holes_on_the_finger_line_are_tolerated():
    depth = render_depth(PINHOLE, [GRASPED])
    grasp = grasp_at(CENTRE, 0.56, 0.0)
    depth[int(round(grasp.row)), ::3] = np.nan
    (located,) = locate([grasp], depth)
    assert located.valid and located.surface_depth_m == pytest.approx(0.56, abs=0.002)


def test_grasps_reaching_past_the_border_are_off_the_depth_image():
    depth = render_depth(PINHOLE, [GRASPED])
    near_border = Grasp(row=240.0, col=10.0, angle=0.0, width_px=80.0, width_m=math.nan,
                        confidence=0.9, angle_class=0, crop_row=0, crop_col=0,
                        crop_width_px=80.0)
    outside = Grasp(row=-3.0, col=320.0, angle=math.pi / 2, width_px=2.0, width_m=math.nan,
                    confidence=0.9, angle_class=0, crop_row=0, crop_col=0, crop_width_px=2.0)
    located = locate([near_border, grasp_at(CENTRE, 0.56, 0.0), outside], depth)
    assert [grasp.reason for grasp in located] == ["off_depth_image", "", "off_depth_image"]
    assert math.isnan(located[0].surface_depth_m) and np.isnan(located[0].surface_point).all()
    assert set(INVALID_REASONS) == {"off_depth_image", "no_depth", "collision"}


def test_millimetre_and_metre_depth_give_the_same_poses():
    metres = render_depth(PINHOLE, [GRASPED, Box(**NEIGHBOUR_FOOTPRINT, top_m=0.5765)])
    millimetres = np.round(metres * 1000).astype("<u2")
    from_16uc1 = depth_to_metres(millimetres.tobytes(), 480, 640, 1280, "16UC1")
    from_32fc1 = depth_to_metres(metres.astype("<f4").tobytes(), 480, 640, 2560, "32FC1")
    grasps = [grasp_at(CENTRE, 0.56, angle) for angle in (0.0, 0.7, math.pi / 2)]
    for in_millimetres, in_metres in zip(locate(grasps, from_16uc1), locate(grasps, from_32fc1)):
        assert (in_millimetres.reason, in_millimetres.grasp_depth_m) == \
            (in_metres.reason, in_metres.grasp_depth_m)
        np.testing.assert_allclose(in_millimetres.position, in_metres.position, atol=1e-5)
        assert in_millimetres.width_m == pytest.approx(in_metres.width_m, abs=1e-5)


def test_a_distorted_camera_recovers_the_same_physical_grasp():
    distorted = CameraModel(640, 480, PINHOLE.k, "plumb_bob",
                            (-0.15, 0.1, 0.002, -0.001, -0.02))
    corner_box = Box((0.16, 0.21), (0.09, 0.14), 0.56)  # far off-axis, where the lens bends
    centre = (0.185, 0.115)
    depth = render_depth(distorted, [corner_box])
    # Off-axis, the box hides a wider strip of the table beside it; the opening clears it.
    grasp = grasp_at(centre, 0.56, 0.4, camera=distorted, opening_m=0.1)
    (located,) = locate([grasp], depth, camera=distorted)
    assert located.valid and located.grasp_depth_m == pytest.approx(0.03)
    np.testing.assert_allclose(located.surface_point, (*centre, 0.56), atol=0.002)
    assert located.width_m == pytest.approx(0.1, rel=0.05)
    assert math.dist(located.surface_point[:2], centre) < 0.0005
    (as_pinhole,) = locate([grasp], depth, camera=PINHOLE)  # ignoring the lens misses it
    assert math.dist(as_pinhole.surface_point[:2], centre) > 0.004


def test_no_grasps_no_poses():
    assert locate([], render_depth(PINHOLE, [])) == []


@pytest.mark.parametrize("depth, message", [
    (np.full((240, 320), 0.6, np.float32), "the depth image is 320x240 but camera_info "
                                           "describes 640x480"),
    (np.full((480, 640), 600, np.uint16), r"an \(H, W\) float array in metres"),
])
def test_depth_that_does_not_fit_the_camera_is_refused(depth, message):
    with pytest.raises(ValueError, match=message):
        locate([grasp_at(CENTRE, 0.56, 0.0)], depth)


@pytest.mark.parametrize("settings, message", [
    ({"finger_width_m": 0.0}, "finger_width_m must be > 0"),
    ({"finger_thickness_m": float("nan")}, "finger_thickness_m must be a finite number"),
    ({"grasp_depth_step_m": 0.05}, "must not exceed max_grasp_depth_m"),
    ({"min_grasp_depth_m": 0.04}, "min_grasp_depth_m must be in"),
    ({"pre_grasp_offset_m": -0.1}, "pre_grasp_offset_m must be >= 0"),
    ({"min_valid_fraction": 0.0}, "min_valid_fraction must be in"),
    ({"surface_percentile": 101.0}, "surface_percentile must be in"),
    ({"max_grasp_depth_m": True}, "max_grasp_depth_m must be a finite number"),
])
def test_gripper_geometry_is_validated(settings, message):
    with pytest.raises(GripperGeometryError, match=message):
        GripperGeometry(**settings)


def test_the_default_gripper_steps_ten_times():
    assert GRIPPER.depth_steps == 10
