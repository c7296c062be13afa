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
from sgdn_ros.backends.base import DEFAULT_MAX_BATCH
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, SessionTuning
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.metadata import FORMAT_KEY, ModelMetadata
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


def without_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model as the author's published sgdn.onnx comes: no SGDN metadata."""
    del model.metadata_props[:]
    return model


def with_metadata(model: onnx.ModelProto, **entries: str) -> onnx.ModelProto:
    """The model with these metadata entries added or replaced."""
    properties = {entry.key: entry.value for entry in model.metadata_props}
    onnx.helper.set_model_props(model, {**properties, **entries})
    return model


def model_with_shapes(input_shape: list, output_channels: list[int],
                      sizes_known: bool = True) -> onnx.ModelProto:
    """A model of the given input shape whose outputs are (1, C, 32, 32), one per C given,
    named as published (able, angle, width). ``sizes_known`` False: the output shapes depend
    on the input's values (plus 0 times its maximum), so ONNX Runtime cannot infer them."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("ReduceMax", ["input"], ["peak"], keepdims=0),
             helper.make_node("Cast", ["peak"], ["peak_int"], to=TensorProto.INT64),
             helper.make_node("Mul", ["peak_int", "zero"], ["nothing"])]
    initializers = [onnx.numpy_helper.from_array(np.array(0, np.int64), "zero")]
    outputs = []
    for index, channels in enumerate(output_channels):
        shape = np.array([1, channels, 32, 32], dtype=np.int64)
        initializers.append(onnx.numpy_helper.from_array(shape, f"shape_{index}"))
        if not sizes_known:
            nodes.append(helper.make_node("Add", ["nothing", f"shape_{index}"],
                                          [f"runtime_shape_{index}"]))
        nodes.append(helper.make_node(
            "Expand", ["mean", f"{'' if sizes_known else 'runtime_'}shape_{index}"],
            [PUBLISHED_OUTPUTS[index]]))
        outputs.append(helper.make_tensor_value_info(
            PUBLISHED_OUTPUTS[index], TensorProto.FLOAT,
            [1, channels, 32, 32] if sizes_known else None))
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


def test_custom_names_are_resolved_by_the_names_in_the_metadata(tmp_path, scene_planes):
    model = build_synthetic_sgdn_model(18, tensor_names=CUSTOM_NAMES)
    reordered = reorder_outputs(model, (2, 0, 1))
    path = save(reordered, tmp_path / "custom.onnx")
    with OnnxRuntimeBackend(path) as backend:
        info = backend.info
        outputs = backend.infer(scene_planes)
        assert backend.metadata.output_names == CUSTOM_NAMES[1:]
    assert info.input_name == "image"
    assert (info.able_name, info.angle_name, info.width_name) == CUSTOM_NAMES[1:]
    assert (outputs.able.shape[1], outputs.angle.shape[1], outputs.width.shape[1]) == (1, 18, 1)


def test_unknown_output_names_are_refused_saying_how_to_fix(tmp_path):
    model = without_metadata(build_synthetic_sgdn_model(18, tensor_names=CUSTOM_NAMES))
    with pytest.raises(ModelLoadError) as raised:
        OnnxRuntimeBackend(save(model, tmp_path / "unnamed.onnx"))
    message = str(raised.value)
    assert "outputs are confidence, orientation, opening" in message
    assert "never by position" in message
    assert "rename the outputs to output_able, output_angle, output_width" in message
    assert "re-export with `sgdn-ros export`" in message
    assert "metadata_props entry output_names" in message


def test_reordered_published_outputs_are_resolved_by_name(tmp_path, model_k18, scene_planes):
    reordered = reorder_outputs(build_synthetic_sgdn_model(18, width_channels=18), (2, 0, 1))
    assert [value.name for value in reordered.graph.output] == [
        "output_width", "output_able", "output_angle"]
    path = save(without_metadata(reordered), tmp_path / "reordered.onnx")
    with OnnxRuntimeBackend(path) as backend, OnnxRuntimeBackend(model_k18) as plain:
        assert (backend.info.able_name, backend.info.angle_name, backend.info.width_name) == \
            PUBLISHED_OUTPUTS
        outputs = backend.infer(scene_planes)
        expected = plain.infer(scene_planes)
    np.testing.assert_array_equal(outputs.able, expected.able)
    np.testing.assert_array_equal(outputs.angle, expected.angle)
    assert outputs.width.shape == (1, 18, 320, 320)


def test_outputs_named_for_the_wrong_roles_are_refused_as_not_sgdn(tmp_path):
    swapped = without_metadata(build_synthetic_sgdn_model(
        18, tensor_names=("input", "output_angle", "output_able", "output_width")))
    with pytest.raises(ModelLoadError, match="able should have 1 channel, not 18.*right output"):
        OnnxRuntimeBackend(save(swapped, tmp_path / "swapped.onnx"))


def test_a_dynamic_batch_sets_max_batch_and_symbolic_outputs_are_measured(tmp_path):
    path = save(model_with_shapes(["batch", 3, 32, 32], [1, 18, 1], sizes_known=False),
                tmp_path / "dynamic.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[1].shape == [None, None, 32, 32]
    with OnnxRuntimeBackend(path) as backend, \
            OnnxRuntimeBackend(path, max_batch=3) as three:
        info = backend.info
        outputs = backend.infer(np.zeros((1, 3, 32, 32), np.float32))
        assert three.infer(np.zeros((3, 3, 32, 32), np.float32)).angle.shape == (3, 18, 32, 32)
        assert three.info.max_batch == 3
    assert info.max_batch == DEFAULT_MAX_BATCH
    assert info.input_shape == (1, 3, 32, 32)
    assert (info.num_angle_classes, info.width_channels) == (18, 1)
    assert (info.output_height, info.output_width) == (32, 32)
    assert outputs.angle.shape == (1, 18, 32, 32)


def test_a_declared_dynamic_batch_the_model_cannot_run_is_reported(tmp_path):
    model = model_with_shapes(["batch", 3, 32, 32], [1, 18, 1])
    mean = model.graph.node[0]
    assert mean.op_type == "ReduceMean"
    mean.attribute[0].ints[:] = [0, 1]  # averages the frames too: always one frame out
    with OnnxRuntimeBackend(save(model, tmp_path / "one_frame_out.onnx")) as backend:
        assert backend.info.max_batch == DEFAULT_MAX_BATCH
        with pytest.raises(InferenceError, match="maps of 1 frame.*for 2.*max_batch 1"):
            backend.infer(np.zeros((2, 3, 32, 32), np.float32))


def test_a_static_model_takes_one_frame_per_inference(model_k18, scene_planes):
    with OnnxRuntimeBackend(model_k18, max_batch=4) as backend:
        assert backend.info.max_batch == 1
        with pytest.raises(ValueError, match="planes hold 2 frames; onnxruntime-cpu takes 1 to "
                                             "1 per inference.*batches"):
            backend.infer(np.concatenate([scene_planes, scene_planes]))


def test_metadata_is_read_at_load_and_missing_metadata_means_published_conventions(
        tmp_path, model_k18):
    bare = save(without_metadata(build_synthetic_sgdn_model(18)), tmp_path / "bare.onnx")
    with OnnxRuntimeBackend(model_k18) as described, OnnxRuntimeBackend(bare) as published:
        assert (described.metadata.num_angle_classes, described.metadata.width_channels,
                described.metadata.input_size) == (18, 1, 320)
        assert described.metadata.format_version == "sgdn_ros.onnx.v1"
        assert published.metadata == ModelMetadata()
        assert published.metadata.output_names == PUBLISHED_OUTPUTS
        assert published.metadata.width_units == "pixels"
        assert published.info == described.info


@pytest.mark.parametrize("entries, message", [
    ({"num_angle_classes": "36"},
     "num_angle_classes \\(channels of angle output\\) is 36 in the metadata but 18 in the graph"),
    ({"input_size": "480", "width_channels": "18"},
     "input_size \\(height\\) is 480 .* but 320 .*width_channels \\(channels of width output\\) "
     "is 18 in the metadata but 1"),
    ({"output_names": '["able", "angle", "width"]'}, "name able, angle, width, which the graph "
                                                     "lacks"),
    ({"num_angle_classes": "eighteen"}, "unreadable SGDN metadata: num_angle_classes is "
                                        "'eighteen'"),
    ({"width_units": "inches"}, "width_units is 'inches': not one of pixels, metres"),
    ({FORMAT_KEY: "sgdn_ros.onnx.v9"}, "a format this sgdn_ros does not read"),
])
def test_metadata_that_contradicts_the_graph_is_refused_naming_the_mismatch(
        tmp_path, entries, message):
    model = with_metadata(build_synthetic_sgdn_model(18), **entries)
    with pytest.raises(ModelLoadError, match=message) as raised:
        OnnxRuntimeBackend(save(model, tmp_path / "contradicting.onnx"))
    assert "re-export the model with `sgdn-ros export`" in str(raised.value)


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
    ([1, 1, 32, 32], [1, 18, 1], "input_kind 'bgr' takes 3 input channel.*graph's input has 1"),
    ([1, 3, "height", "width"], [1, 18, 1], "dynamic dimensions.*static input size"),
    ([2, 3, 32, 32], [1, 18, 1], "fixed batch size 2.*dynamic batch axis"),
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


def test_the_session_runs_with_the_chosen_settings(model_k18):
    """Sequential, one inter-op thread, spinning pool threads (ONNX Runtime's default), every
    graph optimisation, memory arena and pattern: what SessionTuning says and why."""
    with OnnxRuntimeBackend(model_k18, intra_op_threads=2, prefer_gpu=False) as backend:
        options = backend.session_options
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.enable_cpu_mem_arena and options.enable_mem_pattern
    for pool in ("intra_op", "inter_op"):
        assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == "1"


@pytest.mark.parametrize("tuning", [
    SessionTuning(spinning=False), SessionTuning(parallel=True),
    SessionTuning(optimization="basic"), SessionTuning(memory_arena=False, memory_pattern=False),
])
def test_every_session_setting_gives_the_same_maps(model_k18, scene_planes, tuning):
    with OnnxRuntimeBackend(model_k18, prefer_gpu=False) as chosen:
        expected = chosen.infer(scene_planes)
    with OnnxRuntimeBackend(model_k18, prefer_gpu=False, tuning=tuning) as backend:
        options = backend.session_options
        outputs = backend.infer(scene_planes)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") \
        == ("1" if tuning.spinning else "0")
    assert (options.execution_mode == ort.ExecutionMode.ORT_PARALLEL) == tuning.parallel
    assert options.enable_cpu_mem_arena == tuning.memory_arena
    for name in ("able", "angle", "width"):
        np.testing.assert_allclose(getattr(outputs, name), getattr(expected, name), rtol=0,
                                   atol=1e-4)


def test_an_unknown_optimisation_level_is_refused(model_k18):
    with pytest.raises(ValueError, match="optimization must be one of basic, extended, all"):
        OnnxRuntimeBackend(model_k18, tuning=SessionTuning(optimization="max"))


def test_intra_op_threads_and_max_batch_must_be_integers_in_range(model_k18):
    with pytest.raises(ValueError, match="intra_op_threads must be an integer >= 0"):
        OnnxRuntimeBackend(model_k18, intra_op_threads=-1)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="max_batch must be an integer >= 1"):
            OnnxRuntimeBackend(model_k18, max_batch=bad)


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


def test_resolve_output_names_matches_names_never_positions():
    shapes = [(1, 18, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)]
    names = ["output_angle", "output_able", "output_width"]
    assert resolve_output_names(names, shapes) == PUBLISHED_OUTPUTS
    assert resolve_output_names(["o", "a", "w"], shapes, ("a", "o", "w")) == ("a", "o", "w")
    in_sgdn_order = [(1, 1, 8, 8), (1, 18, 8, 8), (1, 18, 8, 8)]
    with pytest.raises(ModelLoadError, match="never by position.*lacks output_able, "
                                             "output_angle, output_width"):
        resolve_output_names(["a", "b", "c"], in_sgdn_order)


def test_resolve_output_names_refuses_mismatched_sizes():
    with pytest.raises(ModelLoadError, match="same height and width"):
        resolve_output_names(PUBLISHED_OUTPUTS, [(1, 1, 8, 8), (1, 18, 8, 8), (1, 1, 4, 4)])
    with pytest.raises(ModelLoadError, match="one channel per angle class"):
        resolve_output_names(PUBLISHED_OUTPUTS, [(1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 8, 8)])
