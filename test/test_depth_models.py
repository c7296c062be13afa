"""Depth (1 channel) and RGB-D (4 channels) models through the detector, on rendered RGB-D
scenes, with real ONNX Runtime sessions of the synthetic model (which finds raised objects on
the depth plane)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from sgdn_ros.backends.base import ModelInfo
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.core.decoding import DecodeConfig, decode_grasps
from sgdn_ros.core.depth import depth_to_metres, fill_depth_holes
from sgdn_ros.core.depth_planes import depth_bgr_planes, depth_planes
from sgdn_ros.core.grasp3d import GripperGeometry, grasps_in_3d
from sgdn_ros.core.preprocessing import PreprocessConfig, PreprocessingError, crop_geometry
from sgdn_ros.models.errors import ModelLoadError
from sgdn_ros.models.synthetic import build_synthetic_sgdn_model, save_synthetic_sgdn_model
from sgdn_ros.pipeline.factory import cpu_detector
from sgdn_ros.training.rgbd_scenes import render_rgbd_scene

K = 18
CONFIG = PreprocessConfig()
DECODE = DecodeConfig()
FOUND_WITHIN_PX = 8.0


@pytest.fixture(scope="module")
def scenes():
    return [render_rgbd_scene(seed) for seed in range(3)]


def measured_depth(scene) -> np.ndarray:
    """The scene's sensor depth in metres, holes NaN, as the node converts it."""
    height, width = scene.depth_mm.shape
    return depth_to_metres(scene.depth_mm.tobytes(), height, width, 2 * width, "16UC1")


def model_path(tmp_path_factory, input_kind: str, **options) -> str:
    folder = tmp_path_factory.mktemp(input_kind)
    return save_synthetic_sgdn_model(folder / "model.onnx", num_angle_classes=K,
                                     input_kind=input_kind, **options)


@pytest.fixture(scope="module", params=["depth", "depth_bgr"])
def depth_model(request, tmp_path_factory):
    return request.param, model_path(tmp_path_factory, request.param, dynamic_batch=True)


def frame_of(input_kind: str, scene):
    return (None if input_kind == "depth" else scene.bgr), measured_depth(scene)


def object_centres(scene) -> set[tuple[float, float]]:
    return {(grasp.row, grasp.col) for grasp in scene.true_grasps}


def test_depth_models_load_with_their_kind(depth_model):
    input_kind, path = depth_model
    with OnnxRuntimeBackend(path) as backend:
        assert backend.info.input_kind == backend.metadata.input_kind == input_kind
        assert backend.info.input_shape == (1, 1 if input_kind == "depth" else 4, 320, 320)


def test_the_detector_finds_every_raised_object(depth_model, scenes):
    input_kind, path = depth_model
    with cpu_detector(OnnxRuntimeBackend(path), CONFIG, DECODE) as detector:
        assert detector.input_kind == input_kind
        for scene in scenes:
            grasps = detector.detect(*frame_of(input_kind, scene)).grasps
            centres = object_centres(scene)
            assert len(grasps) == len(centres)
            for row, col in centres:
                assert min(math.hypot(g.row - row, g.col - col) for g in grasps) \
                    < FOUND_WITHIN_PX


def test_the_network_gets_the_authors_planes(depth_model, scenes):
    """The detector feeds the model ``depth_planes`` / ``depth_bgr_planes``, and those are the
    author's normalisation of the centre crop, computed here independently."""
    input_kind, path = depth_model
    scene = scenes[0]
    image, depth = frame_of(input_kind, scene)
    geometry = crop_geometry(*depth.shape, CONFIG)
    crop = (slice(geometry.top, geometry.top + 320), slice(geometry.left, geometry.left + 320))
    filled = fill_depth_holes(depth)[crop].astype(np.float64)
    expected = [np.clip(filled - filled.mean(), -1.0, 1.0)]
    if input_kind == "depth":
        planes, got_geometry = depth_planes(depth, CONFIG)
    else:
        colour = scene.bgr[crop].transpose(2, 0, 1) / 255.0
        expected.extend(colour - colour.mean())
        planes, got_geometry = depth_bgr_planes(depth, scene.bgr, CONFIG)
    assert got_geometry == geometry
    assert planes.dtype == np.float32
    np.testing.assert_allclose(planes[0], np.stack(expected), atol=2e-6)
    with OnnxRuntimeBackend(path) as backend:
        outputs = backend.infer(planes)
        direct = decode_grasps(outputs.able, outputs.angle, outputs.width, geometry, DECODE)
        with cpu_detector(backend, CONFIG, DECODE) as detector:
            assert detector.detect(image, depth).grasps == direct


def test_a_batch_of_frames_equals_the_frames_one_by_one(depth_model, scenes):
    input_kind, path = depth_model
    frames = [frame_of(input_kind, scene) for scene in scenes]
    with cpu_detector(OnnxRuntimeBackend(path), CONFIG, DECODE) as detector:
        batch = detector.detect_batch([image for image, _ in frames],
                                      [depth for _, depth in frames])
        singles = [detector.detect(image, depth) for image, depth in frames]
    assert [d.grasps for d in batch] == [d.grasps for d in singles]
    assert all(d.depth_m is depth for d, (_, depth) in zip(batch, frames))


def test_a_frame_without_depth_is_refused_clearly(depth_model, scenes):
    input_kind, path = depth_model
    with cpu_detector(OnnxRuntimeBackend(path), CONFIG, DECODE) as detector:
        with pytest.raises(ValueError, match=(
                rf"this model takes depth \(input_kind {input_kind}\); enable use_depth and "
                "publish depth/image_raw")):
            detector.detect(scenes[0].bgr)
        with pytest.raises(ValueError, match="one depth image \\(or None\\) per image"):
            detector.detect_batch([scenes[0].bgr] * 2, [measured_depth(scenes[0])])


def test_an_rgbd_frame_needs_its_colour_image_of_the_same_size(tmp_path_factory, scenes):
    path = model_path(tmp_path_factory, "depth_bgr")
    depth = measured_depth(scenes[0])
    with cpu_detector(OnnxRuntimeBackend(path), CONFIG, DECODE) as detector:
        with pytest.raises(ValueError, match="takes a colour image \\(input_kind depth_bgr\\)"):
            detector.detect(None, depth)
        with pytest.raises(PreprocessingError, match="depth image is 320x240 but the colour "
                                                     "image is 640x480"):
            detector.detect(scenes[0].bgr, np.ascontiguousarray(depth[::2, ::2]))


def test_a_depth_image_without_any_valid_pixel_is_refused(scenes):
    empty = np.full(scenes[0].depth_mm.shape, np.nan, dtype=np.float32)
    with pytest.raises(PreprocessingError, match="no valid pixel"):
        depth_planes(empty, CONFIG)
    with pytest.raises(PreprocessingError, match=r"\(H, W\) float array in metres"):
        depth_planes(scenes[0].depth_mm, CONFIG)


def test_a_colour_model_ignores_depth_and_refuses_a_missing_image(tmp_path_factory, scenes):
    path = model_path(tmp_path_factory, "bgr")
    scene = scenes[0]
    with cpu_detector(OnnxRuntimeBackend(path), CONFIG, DECODE) as detector:
        assert detector.input_kind == "bgr"
        assert detector.detect(scene.bgr, measured_depth(scene)).grasps \
            == detector.detect(scene.bgr).grasps
        with pytest.raises(ValueError, match="takes a colour image \\(input_kind bgr\\)"):
            detector.detect(None, measured_depth(scene))


@pytest.mark.parametrize("graph_kind, written_kind, message", [
    ("depth", "bgr", "input_kind 'bgr' takes 3 input channel\\(s\\) but the graph's input has 1"),
    ("depth_bgr", "depth", "input_kind 'depth' takes 1 input channel\\(s\\) but the graph's "
                           "input has 4"),
    ("bgr", "depth_bgr", "input_kind 'depth_bgr' takes 4 input channel\\(s\\) but the graph's "
                         "input has 3"),
    ("depth", "rgbd", "unreadable SGDN metadata: input_kind is 'rgbd': not one of bgr, depth, "
                      "depth_bgr"),
])
def test_a_kind_that_contradicts_the_graph_is_refused_at_load(tmp_path, graph_kind,
                                                               written_kind, message):
    model = build_synthetic_sgdn_model(K, input_kind=graph_kind)
    properties = {entry.key: entry.value for entry in model.metadata_props}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**properties, "input_kind": written_kind})
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=message):
        OnnxRuntimeBackend(path)


def test_a_backend_cannot_describe_a_model_it_cannot_feed():
    """A backend without the model's metadata (torch, TensorRT) describes colour models: a
    depth model's channels contradict that and are refused at load."""
    with pytest.raises(ModelLoadError, match="input_kind 'bgr' takes 3.*has 1"):
        ModelInfo("input", (1, 1, 320, 320), "able", "angle", "width", K, 1, 320, 320)


def test_metric_widths_decode_to_metres_and_become_pixels_in_3d(tmp_path_factory, scenes):
    """The author's width map is sigmoid x 0.1 m: the synthetic model's fraction f read as
    metres. Without an image scale the pixel width is unknown; the 3-D stage projects the
    metric opening at the surface depth and locates the grasp on the object's top."""
    pixels_path = model_path(tmp_path_factory, "depth")
    metres_path = model_path(tmp_path_factory, "depth", width_units="metres")
    scene = scenes[1]
    depth = measured_depth(scene)
    with cpu_detector(OnnxRuntimeBackend(pixels_path), CONFIG, DECODE) as detector:
        in_pixels = detector.detect(None, depth).grasps
    with cpu_detector(OnnxRuntimeBackend(metres_path), CONFIG, DECODE) as detector:
        assert detector.backend.info.width_units == "metres"
        in_metres = detector.detect(None, depth).grasps
        detector.decode_config = DecodeConfig(metres_per_pixel=0.001)
        scaled = detector.detect(None, depth).grasps
        heatmap = detector.detect(None, depth).heatmap()
    assert heatmap.shape == (320, 320, 3)
    assert len(in_metres) == len(object_centres(scene))
    for pixel, metric, known in zip(in_pixels, in_metres, scaled):
        assert (metric.row, metric.col, metric.angle_class) == (pixel.row, pixel.col,
                                                                pixel.angle_class)
        assert metric.width_m == pytest.approx(
            pixel.width_px / DECODE.max_width_px * DECODE.max_width_m, rel=1e-12)
        assert math.isnan(metric.width_px) and math.isnan(metric.crop_width_px)
        assert known.width_px == pytest.approx(known.width_m / 0.001, rel=1e-12)
    located = grasps_in_3d(in_metres, depth, scene.camera, GripperGeometry())
    assert [pose.width_m for pose in located] == [grasp.width_m for grasp in in_metres]
    tops = {(truth.row, truth.col): truth.surface_depth_m for truth in scene.true_grasps}
    for grasp, pose in zip(in_metres, located):
        top = min(tops.items(), key=lambda item: math.hypot(item[0][0] - grasp.row,
                                                            item[0][1] - grasp.col))[1]
        assert pose.surface_depth_m == pytest.approx(top, abs=0.005)
