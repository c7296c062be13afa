"""The camera model: validation, undistortion and projection with real OpenCV."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sgdn_ros.core.camera import CameraModel, CameraModelError, camera_model_from_message

K = (613.0, 0.0, 320.0, 0.0, 613.0, 240.0, 0.0, 0.0, 1.0)
DISTORTIONS = {
    "plumb_bob": (-0.12, 0.08, 0.001, -0.0015, -0.02),
    "rational_polynomial": (0.3, -0.1, 0.0008, -0.001, 0.01, 0.6, -0.05, 0.02),
    "equidistant": (0.05, -0.02, 0.004, -0.001),
}


def camera(model: str = "", d: tuple[float, ...] = ()) -> CameraModel:
    return CameraModel(640, 480, K, model, d, "camera_color_optical_frame")


def test_properties_read_k():
    model = CameraModel(640, 480, (600.0, 0, 321.5, 0, 605.0, 239.5, 0, 0, 1), "plumb_bob",
                        (0.0,) * 5)
    assert (model.fx, model.fy, model.cx, model.cy) == (600.0, 605.0, 321.5, 239.5)
    assert not model.is_distorted
    assert camera("plumb_bob", DISTORTIONS["plumb_bob"]).is_distorted
    assert isinstance(model.k, tuple) and isinstance(model.d, tuple)


@pytest.mark.parametrize("arguments, message", [
    ((0, 480, K), "camera width must be a positive integer"),
    ((640, True, K), "camera height must be a positive integer"),
    ((640, 480, K[:8]), "K must have 9 values"),
    ((640, 480, (0.0,) * 9), "focal lengths must be positive.*not calibrated"),
    ((640, 480, (613.0, 0, 320, 0, -613.0, 240, 0, 0, 1)), "focal lengths must be positive"),
    ((640, 480, (613.0, 0, float("nan"), 0, 613.0, 240, 0, 0, 1)), "K must hold finite"),
    ((640, 480, (613.0, 1.5, 320, 0, 613.0, 240, 0, 0, 1)), "no skew"),
    ((640, 480, ("a",) * 9), "K must be a sequence of numbers"),
    ((640, 480, K, "kannala_brandt", ()), "unknown distortion model 'kannala_brandt'"),
    ((640, 480, K, "plumb_bob", (0.1, 0.0)), "'plumb_bob' takes 5 coefficients in D .or none., "
                                             "got 2"),
    ((640, 480, K, "", (0.1,)), "'' takes 0 coefficients"),
    ((640, 480, K, "equidistant", (0.1,) * 5), "'equidistant' takes 4 coefficients"),
    ((640, 480, K, "plumb_bob", (0.1, 0, 0, 0, float("inf"))), "D must hold finite"),
])
def test_invalid_intrinsics_are_refused_with_a_reason(arguments, message):
    with pytest.raises(CameraModelError, match=message):
        CameraModel(*arguments)


def test_an_empty_d_means_no_distortion_for_every_model():
    for model in ("plumb_bob", "rational_polynomial", "equidistant"):
        assert not camera(model).is_distorted


def test_undistorted_rays_are_the_pinhole_formula():
    model = camera()
    x, y = model.normalized_rays(np.array([320.0, 933.0]), np.array([240.0, -373.0]))
    np.testing.assert_allclose(x, [0.0, 1.0])
    np.testing.assert_allclose(y, [0.0, -1.0])
    cols, rows = model.project(np.array([[0.613, -0.613, 1.0]]))
    np.testing.assert_allclose([cols[0], rows[0]], [695.769, -135.769])


def grid_points(depth: float = 0.8) -> np.ndarray:
    lateral = np.stack(np.meshgrid(np.linspace(-0.35, 0.35, 9), np.linspace(-0.25, 0.25, 7)),
                       axis=-1).reshape(-1, 2) * depth
    return np.column_stack([lateral, np.full(len(lateral), depth)])


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_undistortion_inverts_projection(model):
    distorted = camera(model, DISTORTIONS[model])
    points = grid_points()
    cols, rows = distorted.project(points)
    assert np.abs(cols - camera().project(points)[0]).max() > 1.0  # the lens really bends
    x, y = distorted.normalized_rays(cols, rows)
    np.testing.assert_allclose(x, points[:, 0] / points[:, 2], atol=1e-7)
    np.testing.assert_allclose(y, points[:, 1] / points[:, 2], atol=1e-7)
    pixel_cols, pixel_rows = np.meshgrid(np.arange(0, 640, 37.5), np.arange(0, 480, 31.25))
    x, y = distorted.normalized_rays(pixel_cols, pixel_rows)
    back_cols, back_rows = distorted.project(np.stack([x, y, np.ones_like(x)], axis=-1))
    assert back_cols.shape == pixel_cols.shape
    assert np.abs(back_cols - pixel_cols).max() < 0.01
    assert np.abs(back_rows - pixel_rows).max() < 0.01


@pytest.mark.parametrize("model", ["", "rational_polynomial"])
def test_the_ray_table_holds_the_exact_ray_of_every_pixel(model):
    lens = camera(model, DISTORTIONS.get(model, ()))
    ray_x, ray_y = lens.pixel_ray_table()
    assert ray_x.shape == ray_y.shape == (480, 640) and ray_x.dtype == np.float32
    rows, cols = np.array([0, 17, 240, 479]), np.array([0, 600, 320, 639])
    expected_x, expected_y = lens.normalized_rays(cols, rows)
    np.testing.assert_allclose(ray_x[rows, cols], expected_x, atol=1e-6)
    np.testing.assert_allclose(ray_y[rows, cols], expected_y, atol=1e-6)
    assert camera(model, DISTORTIONS.get(model, ())).pixel_ray_table()[0] is ray_x  # shared
    with pytest.raises(ValueError, match="read-only"):
        ray_x[0, 0] = 0.0


def test_rays_keep_the_shape_of_the_input():
    x, y = camera("plumb_bob", DISTORTIONS["plumb_bob"]).normalized_rays(np.zeros((2, 3)),
                                                                       np.zeros((2, 3)))
    assert x.shape == y.shape == (2, 3)
    x, y = camera("plumb_bob", DISTORTIONS["plumb_bob"]).normalized_rays(np.zeros(0),
                                                                       np.zeros(0))
    assert x.shape == (0,)


def test_project_needs_three_coordinates():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        camera().project(np.zeros((4, 2)))


def test_a_camera_info_message_becomes_a_model():
    message = SimpleNamespace(width=640, height=480, k=np.array(K), distortion_model="plumb_bob",
                              d=[0.0] * 5, header=SimpleNamespace(frame_id="optical"))
    model = camera_model_from_message(message)
    assert model == CameraModel(640, 480, K, "plumb_bob", (0.0,) * 5, "optical")
