"""FP16 copies of ONNX models (float32 I/O kept), checked against FP32 with ONNX Runtime."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sgdn_ros.core.channel_maps import sample_channels
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.models.fp16 import CONVERSION_FORMAT, convert_to_fp16, converter_identity
from sgdn_ros.models.synthetic import build_synthetic_sgdn_model
from sgdn_ros.training.scenes import render_tabletop_scene

pytest.importorskip("onnxconverter_common", reason="FP16 copies need onnxconverter-common")

MAX_LOGIT_DIFFERENCE = 0.05  # trained light SGDN, measured: 0.011 (able), 0.013 (angle)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _top_grasp(able: np.ndarray, angle: np.ndarray) -> tuple[int, int, int]:
    row, col = np.unravel_index(int(np.argmax(able[0, 0])), able.shape[-2:])
    logits = sample_channels(angle[0], np.array([row]), np.array([col]), *able.shape[-2:])
    return int(row), int(col), int(np.argmax(logits))


def test_fp16_copy_of_the_trained_model_matches_fp32_on_rendered_scenes() -> None:
    original = onnx.load(str(TRAINED_MODEL))
    untouched = original.SerializeToString()
    converted = convert_to_fp16(original)

    assert original.SerializeToString() == untouched
    onnx.checker.check_model(converted)
    for value in [*converted.graph.input, *converted.graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, value.name
    fp16_weights = [tensor for tensor in converted.graph.initializer
                    if tensor.data_type == onnx.TensorProto.FLOAT16]
    assert sum(int(np.prod(tensor.dims)) for tensor in fp16_weights) > 1_000_000
    assert converted.ByteSize() < 0.6 * original.ByteSize()

    fp32, fp16 = _session(original), _session(converted)
    preprocess = Preprocessor(PreprocessConfig())
    for seed in range(3):
        planes, _ = preprocess(render_tabletop_scene(seed, num_objects=1 + seed % 3)[0])
        reference = fp32.run(None, {"input": planes})
        halved = fp16.run(None, {"input": planes})
        for name, ours, theirs in zip(("able", "angle", "width"), reference, halved):
            assert theirs.dtype == np.float32
            assert float(np.abs(ours - theirs).max()) < MAX_LOGIT_DIFFERENCE, (seed, name)
        assert _top_grasp(*halved[:2]) == _top_grasp(*reference[:2]), seed


def test_graphs_with_unnamed_nodes_convert_to_a_valid_model() -> None:
    """The synthetic model's nodes have no names; the converter would give their casts one
    shared name (a graph ONNX and TensorRT reject) unless they are named first."""
    original = build_synthetic_sgdn_model(num_angle_classes=18)
    assert not any(node.name for node in original.graph.node)

    converted = convert_to_fp16(original)

    onnx.checker.check_model(converted)
    produced = [name for node in converted.graph.node for name in node.output]
    assert len(produced) == len(set(produced))
    outputs = _session(converted).run(None, {"input": np.zeros((1, 3, 320, 320), np.float32)})
    assert [output.shape[1] for output in outputs] == [1, 18, 1]
    assert all(output.dtype == np.float32 for output in outputs)


def test_converter_identity_names_format_and_converter_version() -> None:
    version = importlib.metadata.version("onnxconverter-common")
    assert converter_identity() == f"{CONVERSION_FORMAT}, onnxconverter-common {version}"
