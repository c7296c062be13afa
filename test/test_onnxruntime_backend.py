"""ONNX Runtime backend: loading checks, output naming, inference, and backend selection."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from sgdn_ros.backends import (
    BACKEND_CHOICES,
    BackendOptions,
    InferenceError,
    ModelLoadError,
    create_backend,
    resolve_output_names,
)
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.synthetic import build_synthetic_sgdn_model, save_synthetic_sgdn_model
from sgdn_ros.training.scenes import render_tabletop_scene

PUBLISHED_OUTPUTS = ("output_able", "output_angle", "output_width")
CUSTOM_NAMES = ("image", "confidence", "orientation", "opening")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def model_k18(model_dir: pathlib.Path) -> pathlib.Path:
    return save_synthetic_sgdn_model(model_dir / "k18.onnx", num_angle_classes=18)


@pytest.fixture(scope="module")
def scene_planes() -> np.ndarray:
    image, _ = render_tabletop_scene(11, num_objects=2)
    return Preprocessor(PreprocessConfig())(image)[0]


def save(model: onnx.ModelProto, path: pathlib.Path) -> pathlib.Path:
    onnx.save(model, str(path))
    return path


def reorder_outputs(model: onnx.ModelProto, order: tuple[int, int, int]) -> onnx.ModelProto:
    outputs = [onnx.ValueInfoProto.FromString(value.SerializeToString())
               for value in model.graph.output]
    del model.graph.output[:]
    model.graph.output.extend(outputs[index] for index in order)
    return model


def model_with_shapes(input_shape: list, output_channels: list[int]) -> onnx.ModelProto:
    """A model of the given input shape whose outputs are (1, C, 32, 32), one per C given."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1], keepdims=1)]
    initializers, outputs = [], []
    for index, channels in enumerate(output_channels):
        shape = np.array([1, channels, 32, 32], dtype=np.int64)
        initializers.append(onnx.numpy_helper.from_array(shape, f"shape_{index}"))
        nodes.append(helper.make_node("Expand", ["mean", f"shape_{index}"], [f"out_{index}"]))
        outputs.append(helper.make_tensor_value_info(
            f"out_{index}", TensorProto.FLOAT, [1, channels, 32, 32]))
    graph = helper.make_graph(
        nodes, "shapes_only",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)], outputs,
        initializer=initializers)
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


@pytest.mark.parametrize("classes, width_channels", [(18, 1), (18, 18), (120, 1), (120, 120)])
def test_synthetic_model_info(tmp_path, classes, width_channels):
    path = save_synthetic_sgdn_model(tmp_path / "model.onnx", num_angle_classes=classes,
                                     width_channels=width_channels)
    with OnnxRuntimeBackend(path, prefer_gpu=False) as backend:
        info = backend.info
        assert backend.name == "onnxruntime-cpu"
        assert backend.providers == ("CPUExecutionProvider",)
    assert (info.input_name, info.input_shape) == ("input", (1, 3, 320, 320))
    assert (info.able_name, info.angle_name, info.width_name) == PUBLISHED_OUTPUTS
    assert (info.num_angle_classes, info.width_channels) == (classes, width_channels)
    assert (info.output_height, info.output_width) == (320, 320)


def test_infer_on_a_rendered_scene_returns_float32_maps_in_sgdn_order(model_k18, scene_planes):
    with OnnxRuntimeBackend(model_k18, intra_op_threads=1) as backend:
        assert backend.last_inference_seconds is None
        outputs = backend.infer(scene_planes)
        assert backend.last_inference_seconds > 0.0
    assert outputs.able.shape == (1, 1, 320, 320)
    assert outputs.angle.shape == (1, 18, 320, 320)
    assert outputs.width.shape == (1, 1, 320, 320)
    assert all(maps.dtype == np.float32 for maps in (outputs.able, outputs.angle, outputs.width))
    reference = ort.InferenceSession(str(model_k18), providers=["CPUExecutionProvider"])
    expected = reference.run(list(PUBLISHED_OUTPUTS), {"input": scene_planes})
    np.testing.assert_array_equal(outputs.able, expected[0])
    np.testing.assert_array_equal(outputs.angle, expected[1])
    assert outputs.able.max() > 2.0  # the scene's objects are found


def test_custom_names_are_resolved_by_position(tmp_path, scene_planes):
    path = save(build_synthetic_sgdn_model(18, tensor_names=CUSTOM_NAMES), tmp_path / "c.onnx")
    with OnnxRuntimeBackend(path) as backend:
        info = backend.info
        outputs = backend.infer(scene_planes)
    assert info.input_name == "image"
    assert (info.able_name, info.angle_name, info.width_name) == CUSTOM_NAMES[1:]
    assert outputs.angle.shape[1] == 18


def test_reordered_published_outputs_are_resolved_by_name(tmp_path, model_k18, scene_planes):
    reordered = reorder_outputs(build_synthetic_sgdn_model(18, width_channels=18), (2, 0, 1))
    assert [value.name for value in reordered.graph.output] == [
        "output_width", "output_able", "output_angle"]
    path = save(reordered, tmp_path / "reordered.onnx")
    with OnnxRuntimeBackend(path) as backend, OnnxRuntimeBackend(model_k18) as plain:
        assert (backend.info.able_name, backend.info.angle_name, backend.info.width_name) == \
            PUBLISHED_OUTPUTS
        outputs = backend.infer(scene_planes)
        expected = plain.infer(scene_planes)
    np.testing.assert_array_equal(outputs.able, expected.able)
    np.testing.assert_array_equal(outputs.angle, expected.angle)
    assert outputs.width.shape == (1, 18, 320, 320)


def test_reordered_custom_outputs_are_refused_as_not_sgdn(tmp_path):
    reordered = reorder_outputs(build_synthetic_sgdn_model(18, tensor_names=CUSTOM_NAMES),
                                (1, 0, 2))
    with pytest.raises(ModelLoadError, match="able should have 1 channel, not 18.*by position"):
        OnnxRuntimeBackend(save(reordered, tmp_path / "bad_order.onnx"))


def test_dynamic_batch_is_fixed_to_1_and_symbolic_outputs_are_measured(tmp_path):
    model = model_with_shapes(["batch", 3, 32, 32], [1, 18, 1])
    for value in model.graph.output:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = save(model, tmp_path / "dynamic.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[1].shape[0] == "batch"
    with OnnxRuntimeBackend(path) as backend:
        info = backend.info
        outputs = backend.infer(np.zeros((1, 3, 32, 32), np.float32))
    assert info.input_shape == (1, 3, 32, 32)
    assert (info.num_angle_classes, info.width_channels) == (18, 1)
    assert (info.output_height, info.output_width) == (32, 32)
    assert outputs.angle.shape == (1, 18, 32, 32)


def test_missing_file_names_the_file_and_the_parameter(tmp_path):
    missing = tmp_path / "nowhere" / "sgdn.onnx"
    with pytest.raises(ModelLoadError, match=re.escape(f"model file not found: {missing}")
                       + ".*set the model_path parameter"):
        OnnxRuntimeBackend(missing)


def test_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        OnnxRuntimeBackend(tmp_path)


def test_garbage_file_is_not_an_onnx_model(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(3).bytes(4096))
    with pytest.raises(ModelLoadError, match="cannot load .* as an ONNX model"):
        OnnxRuntimeBackend(path)


def test_truncated_file_is_not_an_onnx_model(tmp_path, model_k18):
    data = model_k18.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(ModelLoadError, match="cannot load .*truncated"):
        OnnxRuntimeBackend(path)


@pytest.mark.parametrize("input_shape, output_channels, message", [
    ([1, 3, 32, 32], [1, 18], "has 2 outputs .*an SGDN model has 3"),
    ([1, 1, 32, 32], [1, 18, 1], "has 1 channel.*feeds 3 BGR planes"),
    ([1, 3, "height", "width"], [1, 18, 1], "dynamic dimensions.*static input shape"),
    ([2, 3, 32, 32], [1, 18, 1], "batch size 2"),
    ([1, 3, 32], [1, 18, 1], "expected 4 dimensions"),
    ([1, 3, 32, 32], [2, 18, 1], "able should have 1 channel, not 2"),
    ([1, 3, 32, 32], [1, 18, 5], "width should have 1 or 18"),
])
def test_models_without_sgdn_shapes_are_refused_naming_the_problem(
        tmp_path, input_shape, output_channels, message):
    model = model_with_shapes(input_shape, output_channels)
    with pytest.raises(ModelLoadError, match=message):
        OnnxRuntimeBackend(save(model, tmp_path / "model.onnx"))


def test_infer_refuses_planes_of_the_wrong_shape_or_type(model_k18, scene_planes):
    with OnnxRuntimeBackend(model_k18) as backend:
        with pytest.raises(ValueError, match=re.escape("shape (1, 3, 320, 320)")):
            backend.infer(scene_planes[:, :, :160])
        with pytest.raises(ValueError, match="must be a float32 array"):
            backend.infer(scene_planes.astype(np.float64))


def test_context_manager_closes_the_backend(model_k18, scene_planes):
    with OnnxRuntimeBackend(model_k18) as backend:
        backend.infer(scene_planes)
    with pytest.raises(InferenceError, match="closed"):
        backend.infer(scene_planes)
    backend.close()  # closing twice is harmless


def test_intra_op_threads_must_be_a_non_negative_integer(model_k18):
    with pytest.raises(ValueError, match="intra_op_threads must be an integer >= 0"):
        OnnxRuntimeBackend(model_k18, intra_op_threads=-1)


@pytest.mark.parametrize("kind, reason", [
    ("auto", "auto chose onnxruntime"),
    ("onnxruntime", "'onnxruntime' was requested"),
])
def test_create_backend_says_why_it_chose_the_backend(model_k18, kind, reason):
    with create_backend(kind, model_k18) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert reason in backend.selection_reason
        assert backend.info.num_angle_classes == 18


def test_create_backend_refuses_unknown_kinds_naming_the_choices(model_k18):
    assert BACKEND_CHOICES == ("auto", "tensorrt", "onnxruntime", "torch")
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'; choose one of: auto, "
                                         "tensorrt, onnxruntime, torch"):
        create_backend("tensorflow", model_k18)


def test_onnxruntime_refuses_precision_and_graph_options_it_cannot_honour(model_k18):
    for options in (BackendOptions(precision="fp16"), BackendOptions(cuda_graph=True)):
        with pytest.raises(ModelLoadError, match="sgdn-ros export --fp16"):
            create_backend("onnxruntime", model_k18, options)


def test_create_backend_reports_a_bad_model_instead_of_skipping_it(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        create_backend("auto", tmp_path / "missing.onnx")


def test_resolve_output_names_prefers_published_names_then_position():
    shapes = [(1, 18, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)]
    names = ["output_angle", "output_able", "output_width"]
    assert resolve_output_names(names, shapes) == PUBLISHED_OUTPUTS
    positional = [(1, 1, 8, 8), (1, 18, 8, 8), (1, 18, 8, 8)]
    assert resolve_output_names(["a", "b", "c"], positional) == ("a", "b", "c")


def test_resolve_output_names_refuses_mismatched_sizes():
    with pytest.raises(ModelLoadError, match="same height and width"):
        resolve_output_names(["a", "b", "c"], [(1, 1, 8, 8), (1, 18, 8, 8), (1, 1, 4, 4)])
    with pytest.raises(ModelLoadError, match="one channel per angle class"):
        resolve_output_names(["a", "b", "c"], [(1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)])
