"""The synthetic SGDN-contract model: valid ONNX, SGDN's shapes, outputs that match the truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.metadata import ModelMetadata, read_model_metadata
from sgdn_ros.models.synthetic import (
    ASSUMED_MAX_WIDTH_PX,
    PUBLISHED_TENSOR_NAMES,
    WIDTH_CLEARANCE_PX,
    build_synthetic_sgdn_model,
    save_synthetic_sgdn_model,
)
from sgdn_ros.training.scenes import SceneObject, object_coverage, render_tabletop_scene

PREPROCESS = Preprocessor(PreprocessConfig())
GRASP_DEGREES = [0, 30, 60, 90, 135]


def session_for(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sessions() -> dict[int, ort.InferenceSession]:
    return {classes: session_for(build_synthetic_sgdn_model(classes)) for classes in (18, 120)}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


@dataclass
class SceneMaps:
    """The model's maps for one image, decoded as the decoder does, and the crop's origin."""

    able: np.ndarray
    angle: np.ndarray
    width_px: np.ndarray
    origin: tuple[int, int]

    @property
    def confidence(self) -> np.ndarray:
        return sigmoid(self.able)

    def best_pixel(self) -> tuple[int, int]:
        """Arg-max of the logits: float32 confidences near 1 are too coarse to rank."""
        row, col = np.unravel_index(np.argmax(self.able), self.able.shape)
        return int(row), int(col)


def run_scene(session: ort.InferenceSession, image: np.ndarray) -> SceneMaps:
    planes, geometry = PREPROCESS(image)
    able, angle, width = session.run(None, {"input": planes})
    return SceneMaps(able[0, 0], angle[0], sigmoid(width[0]) * ASSUMED_MAX_WIDTH_PX,
                     (geometry.top, geometry.left))


def angle_error(angle: float, truth: float) -> float:
    """Difference between two grasp angles, which repeat every pi."""
    return abs((angle - truth + math.pi / 2) % math.pi - math.pi / 2)


def table_mask(objects: list[SceneObject], origin: tuple[int, int], margin: float) -> np.ndarray:
    """Crop pixels more than ``margin`` px from every object."""
    top, left = origin
    occupied = sum((object_coverage(obj, 480, 640) for obj in objects),
                   np.zeros((480, 640), np.float32))[top:top + 320, left:left + 320] > 0
    free = np.where(occupied, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(free, cv2.DIST_L2, 5) > margin


def test_model_is_valid_small_onnx_with_the_requested_opset():
    model = build_synthetic_sgdn_model(num_angle_classes=18, opset=13)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 13
    assert len(model.SerializeToString()) < 100_000


@pytest.mark.parametrize("classes, width_channels", [(18, 1), (18, 18), (120, 1), (120, 120)])
def test_output_shapes_are_static_and_follow_the_contract(classes, width_channels):
    model = build_synthetic_sgdn_model(classes, width_channels)
    declared = [[dim.dim_value for dim in value.type.tensor_type.shape.dim]
                for value in (*model.graph.input, *model.graph.output)]
    expected = [[1, 3, 320, 320], [1, 1, 320, 320], [1, classes, 320, 320],
                [1, width_channels, 320, 320]]
    assert declared == expected
    planes = np.random.default_rng(0).normal(0, 0.3, size=(1, 3, 320, 320)).astype(np.float32)
    outputs = session_for(model).run(None, {"input": planes})
    assert [list(output.shape) for output in outputs] == expected[1:]
    assert all(output.dtype == np.float32 and np.isfinite(output).all() for output in outputs)
    if width_channels > 1:
        np.testing.assert_array_equal(outputs[2], np.repeat(outputs[2][:, :1], classes, axis=1))


def test_custom_tensor_names_and_input_size():
    names = ("image", "confidence", "orientation", "opening")
    model = build_synthetic_sgdn_model(18, tensor_names=names, input_size=96)
    session = session_for(model)
    assert [node.name for node in session.get_inputs()] == ["image"]
    assert [node.name for node in session.get_outputs()] == list(names[1:])
    outputs = session.run(None, {"image": np.zeros((1, 3, 96, 96), np.float32)})
    assert [output.shape for output in outputs] == [(1, 1, 96, 96), (1, 18, 96, 96),
                                                    (1, 1, 96, 96)]


def test_dynamic_batch_runs_several_frames_as_each_alone():
    model = build_synthetic_sgdn_model(18, dynamic_batch=True)
    onnx.checker.check_model(model, full_check=True)
    assert {value.type.tensor_type.shape.dim[0].dim_param
            for value in (*model.graph.input, *model.graph.output)} == {"batch"}
    planes = np.concatenate([PREPROCESS(render_tabletop_scene(seed, num_objects=2)[0])[0]
                             for seed in range(3)])
    session = session_for(model)
    together = session.run(None, {"input": planes})
    for index in range(len(planes)):
        alone = session.run(None, {"input": planes[index:index + 1]})
        for batched_map, single_map in zip(together, alone):
            np.testing.assert_allclose(batched_map[index:index + 1], single_map, atol=1e-5)


def test_the_file_carries_the_sgdn_metadata_with_its_tensor_names(tmp_path):
    names = ("image", "confidence", "orientation", "opening")
    path = save_synthetic_sgdn_model(tmp_path / "named.onnx", num_angle_classes=18,
                                     width_channels=18, input_size=96, tensor_names=names)
    assert read_model_metadata(path) == ModelMetadata(
        input_size=96, input_channels=3, num_angle_classes=18, width_channels=18,
        output_names=names[1:], format_version="sgdn_ros.onnx.v1")


@pytest.mark.parametrize("input_kind, channels", [("depth", 1), ("depth_bgr", 4)])
def test_a_depth_model_takes_its_planes_and_says_so(tmp_path, input_kind, channels):
    path = save_synthetic_sgdn_model(tmp_path / "depth.onnx", num_angle_classes=18,
                                     input_kind=input_kind, width_units="metres")
    assert read_model_metadata(path) == ModelMetadata(
        input_size=320, input_channels=channels, input_kind=input_kind, num_angle_classes=18,
        width_channels=1, width_units="metres", output_names=PUBLISHED_TENSOR_NAMES[1:],
        format_version="sgdn_ros.onnx.v1")
    planes = np.zeros((1, channels, 320, 320), np.float32)
    planes[0, 0, 100:160, 100:140] = -0.04  # a box 4 cm above the table
    able, _angle, _width = session_for(onnx.load(str(path))).run(None, {"input": planes})
    assert able[0, 0, 130, 120] > 3.0 > -3.0 > able[0, 0, 10, 10]


def test_opset_11_computes_the_same_maps_as_opset_17():
    image, _ = render_tabletop_scene(2, num_objects=2)
    planes, _ = PREPROCESS(image)
    old, new = (session_for(build_synthetic_sgdn_model(18, opset=opset)).run(
        None, {"input": planes}) for opset in (11, 17))
    for old_map, new_map in zip(old, new):
        np.testing.assert_allclose(old_map, new_map, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("classes, tolerance_degrees", [(18, 10.0), (120, 5.0)])
@pytest.mark.parametrize("shape", ["box", "ellipse", "capsule"])
def test_best_grasp_is_at_the_object_centre_and_across_it(sessions, classes, tolerance_degrees,
                                                          shape):
    for degrees in GRASP_DEGREES:
        obj = SceneObject(row=236.6, col=331.3, length=104.0, thickness=32.0,
                          grasp_angle=math.radians(degrees), shape=shape)
        image, _ = render_tabletop_scene(degrees, objects=[obj])
        maps = run_scene(sessions[classes], image)
        row, col = maps.best_pixel()
        top, left = maps.origin
        assert math.hypot(row + top - obj.row, col + left - obj.col) <= 3.0
        assert maps.confidence[row, col] > 0.9
        predicted = np.argmax(maps.angle[:, row, col]) / classes * math.pi
        assert math.degrees(angle_error(predicted, obj.grasp_angle)) <= tolerance_degrees


def test_every_object_of_random_scenes_gets_its_own_peak_and_angle(sessions):
    for seed in range(6):
        image, objects = render_tabletop_scene(seed, num_objects=3)
        maps = run_scene(sessions[120], image)
        top, left = maps.origin
        peaks = maps.able == cv2.dilate(maps.able, np.ones((21, 21), np.uint8))
        peak_rows, peak_cols = np.nonzero(peaks & (maps.confidence > 0.5))
        assert len(peak_rows) == len(objects)
        for obj in objects:
            distances = np.hypot(peak_rows + top - obj.row, peak_cols + left - obj.col)
            nearest = int(np.argmin(distances))
            assert distances[nearest] <= 3.0
            peak_angles = maps.angle[:, peak_rows[nearest], peak_cols[nearest]]
            predicted = np.argmax(peak_angles) / 120 * math.pi
            assert math.degrees(angle_error(predicted, obj.grasp_angle)) <= 5.0


def test_confidence_is_high_on_objects_and_low_on_the_table(sessions):
    for seed in range(4):
        image, objects = render_tabletop_scene(seed, num_objects=2)
        maps = run_scene(sessions[18], image)
        top, left = maps.origin
        assert maps.confidence[table_mask(objects, maps.origin, 15.0)].max() < 0.1
        for obj in objects:
            assert maps.confidence[round(obj.row) - top, round(obj.col) - left] > 0.9


def test_empty_table_gives_low_confidence_class_0_and_the_clearance_width(sessions):
    image, _ = render_tabletop_scene(9, num_objects=0)
    maps = run_scene(sessions[18], image)
    assert maps.confidence.max() < 0.02
    assert np.all(np.argmax(maps.angle, axis=0) == 0)
    np.testing.assert_allclose(maps.width_px, WIDTH_CLEARANCE_PX, atol=0.01)


def test_width_estimates_the_thickness_plus_clearance(sessions):
    widths = []
    for thickness in (20.0, 30.0, 40.0):
        obj = SceneObject(row=240.0, col=320.0, length=110.0, thickness=thickness,
                          grasp_angle=math.pi / 2)
        maps = run_scene(sessions[18], render_tabletop_scene(1, objects=[obj])[0])
        top, left = maps.origin
        widths.append(float(maps.width_px[0, 240 - top, 320 - left]))
        assert widths[-1] == pytest.approx(thickness + WIDTH_CLEARANCE_PX, abs=3.0)
    assert widths == sorted(widths)


def test_save_writes_a_loadable_model_and_returns_its_path(tmp_path):
    path = save_synthetic_sgdn_model(tmp_path / "models" / "synthetic.onnx",
                                     num_angle_classes=18, width_channels=18)
    assert path == tmp_path / "models" / "synthetic.onnx"
    assert path.stat().st_size < 1_000_000
    model = onnx.load(str(path))
    assert [value.name for value in model.graph.output] == list(PUBLISHED_TENSOR_NAMES[1:])
    assert model.graph.output[2].type.tensor_type.shape.dim[1].dim_value == 18


@pytest.mark.parametrize("arguments, message", [
    ({"num_angle_classes": 1}, "num_angle_classes must be >= 2"),
    ({"num_angle_classes": 18, "width_channels": 5}, "width_channels must be 1 or"),
    ({"tensor_names": ("input", "a", "a", "b")}, "four distinct non-empty names"),
    ({"opset": 10}, "opset must be between 11"),
    ({"input_size": 2}, "input_size must be >= 3"),
    ({"input_kind": "rgbd"}, "input_kind must be one of bgr, depth, depth_bgr"),
    ({"width_units": "mm"}, "width_units must be one of pixels, metres"),
])
def test_invalid_arguments_are_refused_with_the_reason(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_synthetic_sgdn_model(**arguments)
