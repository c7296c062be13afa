"""ONNX export of SGDN and its parity with PyTorch, on rendered tabletop images.

Weights are random (seeded) but well-conditioned: every batch norm's running statistics are set
from a train-mode pass over real images, so activations stay near unit scale as in a trained
network. Without that, random batch-norm statistics let activations outgrow FP16's range and
the FP16 model returns NaN; the fp32 checks would still pass, on needlessly huge logits.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency (the PyTorch side)")

from sgdn_ros.backends.base import DEFAULT_MAX_BATCH  # noqa: E402
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from sgdn_ros.core.preprocessing import (  # noqa: E402
    PUBLISHED_MEAN_BGR,
    PUBLISHED_SCALE,
    PreprocessConfig,
    Preprocessor,
)
from sgdn_ros.models.metadata import FORMAT_KEY, ModelMetadata, read_model_metadata  # noqa: E402
from sgdn_ros.network.export import (  # noqa: E402
    INPUT_NAME,
    OUTPUT_NAMES,
    ExportError,
    check_parity,
    export_onnx,
)
from sgdn_ros.network.network import PRESETS, SGDN, SGDNConfig, build_sgdn  # noqa: E402
from sgdn_ros.training.scenes import render_tabletop_scene  # noqa: E402

LIGHT = PRESETS["light"]
MAX_ONNX_MEGABYTES = 10


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    return [render_tabletop_scene(seed, num_objects=1 + seed % 3)[0] for seed in range(3)]


def _conditioned(config: SGDNConfig, images: list[np.ndarray], seed: int = 0) -> SGDN:
    """A random network whose batch norms hold the statistics of ``images``."""
    torch.manual_seed(seed)
    model = build_sgdn(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass gives the batch statistics
    preprocess = Preprocessor(PreprocessConfig())
    batch = np.concatenate([preprocess(image)[0] for image in images])
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch))
    return model.eval()


@pytest.fixture(scope="module")
def light_model(scenes) -> SGDN:
    return _conditioned(LIGHT, scenes)


@pytest.fixture(scope="module")
def light_onnx(light_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "sgdn_light.onnx"
    return export_onnx(light_model, LIGHT, path, metadata={"trained_on": "nothing (test)"})


def test_light_export_matches_torch_on_real_images(light_model, light_onnx, scenes):
    report = check_parity(light_model, light_onnx, scenes)
    assert max(report.able_max_abs_diff, report.angle_max_abs_diff,
               report.width_max_abs_diff) < 1e-3
    assert report.same_top_grasp
    assert len(report.torch_top_grasps) == len(scenes)
    assert any("same in every image" in line for line in report.lines())


def _declared_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def test_light_export_has_the_published_io_with_a_dynamic_batch_and_passes_the_checker(
        light_onnx):
    proto = onnx.load(light_onnx)
    onnx.checker.check_model(proto)
    assert light_onnx.stat().st_size < MAX_ONNX_MEGABYTES * 1e6
    assert [(v.name, _declared_shape(v)) for v in proto.graph.input] == [
        (INPUT_NAME, ["batch", 3, 320, 320])]
    assert [(v.name, _declared_shape(v)) for v in proto.graph.output] == [
        ("output_able", ["batch", 1, 320, 320]), ("output_angle", ["batch", 18, 320, 320]),
        ("output_width", ["batch", 1, 320, 320])]
    assert proto.opset_import[0].version == 17
    resize_modes = {(_attribute(n, "mode"), _attribute(n, "coordinate_transformation_mode"))
                    for n in proto.graph.node if n.op_type == "Resize"}
    assert resize_modes == {(b"linear", b"align_corners")}


def test_light_export_carries_what_a_runtime_needs_in_its_metadata(light_onnx):
    metadata = {entry.key: entry.value for entry in onnx.load(light_onnx).metadata_props}
    assert metadata[FORMAT_KEY] == "sgdn_ros.onnx.v1"
    assert (metadata["num_angle_classes"], metadata["width_channels"]) == ("18", "1")
    assert metadata["mean_bgr"] == "[102.9801, 115.9465, 122.7717]"
    assert float(metadata["scale"]) == pytest.approx(1 / 255)
    assert (metadata["backbone"], metadata["upsample"], metadata["precision"]) == (
        "light", "bilinear", "fp32")
    assert metadata["trained_on"] == "nothing (test)"


def test_exported_metadata_reads_back_into_the_record_the_backend_holds(light_onnx):
    expected = ModelMetadata(
        input_size=320, input_channels=3, input_kind="bgr", num_angle_classes=18,
        width_channels=1, mean_bgr=PUBLISHED_MEAN_BGR, scale=PUBLISHED_SCALE, width_units="pixels",
        output_names=OUTPUT_NAMES, format_version="sgdn_ros.onnx.v1",
        extra={"backbone": "light", "upsample": "bilinear", "precision": "fp32", "opset": "17",
               "trained_on": "nothing (test)"})
    assert read_model_metadata(light_onnx) == expected
    with OnnxRuntimeBackend(light_onnx, prefer_gpu=False) as backend:
        assert backend.metadata == expected
        assert backend.info.max_batch == DEFAULT_MAX_BATCH


def test_several_frames_in_one_onnx_run_match_torch_on_the_same_batch(light_model, light_onnx,
                                                                       scenes):
    planes = np.concatenate([Preprocessor(PreprocessConfig())(image)[0] for image in scenes])
    with OnnxRuntimeBackend(light_onnx, prefer_gpu=False) as backend:
        outputs = backend.infer(planes)
    with torch.no_grad():
        expected = [t.numpy() for t in light_model(torch.from_numpy(planes))]
    for ours, theirs in zip((outputs.able, outputs.angle, outputs.width), expected):
        assert ours.shape[0] == len(scenes)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)


def test_a_static_batch_export_keeps_batch_1(light_model, tmp_path):
    path = export_onnx(light_model, LIGHT, tmp_path / "static.onnx", dynamic_batch=False)
    proto = onnx.load(path)
    assert {_declared_shape(v)[0] for v in (*proto.graph.input, *proto.graph.output)} == {1}
    with OnnxRuntimeBackend(path, prefer_gpu=False) as backend:
        assert backend.info.max_batch == 1


def test_fp16_copy_keeps_float32_io_and_stays_close_to_torch(light_model, scenes, tmp_path):
    path = export_onnx(light_model, LIGHT, tmp_path / "sgdn_light_fp16.onnx", fp16=True)
    proto = onnx.load(path)
    float32 = onnx.TensorProto.FLOAT
    assert {v.type.tensor_type.elem_type for v in [*proto.graph.input, *proto.graph.output]} \
        == {float32}
    weight_types = Counter(tensor.data_type for tensor in proto.graph.initializer)
    assert weight_types.most_common(1)[0][0] == onnx.TensorProto.FLOAT16
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert metadata["precision"] == "fp16"
    report = check_parity(light_model, path, scenes)
    assert max(report.able_max_abs_diff, report.angle_max_abs_diff,
               report.width_max_abs_diff) < 0.1
    assert report.same_top_grasp


def test_opset_11_nearest_export_for_old_tensorrt_parses_and_matches(light_model, scenes,
                                                                      tmp_path):
    nearest = dataclasses.replace(LIGHT, upsample="nearest")
    path = export_onnx(light_model, nearest, tmp_path / "sgdn_light_trt7.onnx", opset=11)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 11
    assert {_attribute(n, "mode") for n in proto.graph.node if n.op_type == "Resize"} == {
        b"nearest"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == list(OUTPUT_NAMES)
    report = check_parity(light_model, path, scenes[:1])  # torch side switches to nearest
    assert max(report.able_max_abs_diff, report.angle_max_abs_diff,
               report.width_max_abs_diff) < 1e-3


def test_bilinear_before_opset_11_is_refused(light_model, tmp_path):
    with pytest.raises(ExportError, match="needs opset >= 11.*upsample='nearest'"):
        export_onnx(light_model, LIGHT, tmp_path / "x.onnx", opset=10)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("arguments, message", [
    ({"config": dataclasses.replace(LIGHT, num_angle_classes=36)}, "does not describe"),
    ({"input_size": 300}, "multiple of 16"),
    ({"metadata": {"backbone": "mine"}}, "written by the exporter itself"),
])
def test_inconsistent_export_requests_are_refused(light_model, tmp_path, arguments, message):
    with pytest.raises(ExportError, match=message):
        export_onnx(light_model, arguments.pop("config", LIGHT), tmp_path / "x.onnx",
                    **arguments)


@pytest.mark.parametrize("channels, input_kind", [(1, "depth"), (4, "depth_bgr")])
def test_depth_and_rgbd_networks_export_their_input_kind(tmp_path, channels, input_kind):
    config = dataclasses.replace(LIGHT, input_channels=channels)
    path = export_onnx(build_sgdn(config), config, tmp_path / f"{input_kind}.onnx",
                       input_size=64)
    assert read_model_metadata(path).input_kind == input_kind
    with OnnxRuntimeBackend(path, prefer_gpu=False) as backend:
        assert backend.info.input_kind == input_kind
        assert backend.info.input_shape == (1, channels, 64, 64)


def test_a_network_the_detector_cannot_feed_is_not_exported(tmp_path):
    config = dataclasses.replace(LIGHT, input_channels=2)
    with pytest.raises(ExportError, match="input_channels is 2; the detector feeds 1"):
        export_onnx(build_sgdn(config), config, tmp_path / "x.onnx", input_size=64)
    assert not list(tmp_path.iterdir())


def test_parity_check_refuses_a_depth_model(tmp_path, light_onnx, scenes):
    depth = build_sgdn(dataclasses.replace(LIGHT, input_channels=1))
    with pytest.raises(ExportError, match="feeds BGR images"):
        check_parity(depth, light_onnx, scenes)


def test_published_size_resnet101_export_matches_torch(scenes, tmp_path):
    """The 270 MB published-size network (about 12 s here): K = 120, width 120.

    101 layers accumulate more rounding than the light network: seen 4e-4 here, allowed 2e-3.
    """
    config = PRESETS["resnet101"]
    model = _conditioned(config, scenes[:2])
    path = export_onnx(model, config, tmp_path / "sgdn_resnet101.onnx")
    report = check_parity(model, path, scenes[:1])
    assert max(report.able_max_abs_diff, report.angle_max_abs_diff,
               report.width_max_abs_diff) < 2e-3
    assert report.same_top_grasp


def _attribute(node: onnx.NodeProto, name: str) -> object:
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                None)


@pytest.mark.parametrize("channels", [1, 4])
def test_depth_and_rgbd_exports_match_torch_on_rendered_rgbd_inputs(tmp_path, channels):
    """`sgdn-ros export`'s parity report for a depth or RGB-D network: its inputs are built
    from rendered RGB-D scenes the way the detector builds them."""
    from sgdn_ros.network.export import check_parity_on_planes
    from sgdn_ros.training.rgbd_dataset import parity_planes

    config = dataclasses.replace(PRESETS["tiny"], input_channels=channels)
    torch.manual_seed(channels)
    model = build_sgdn(config).eval()
    path = export_onnx(model, config, tmp_path / f"tiny_{channels}.onnx")
    planes = parity_planes(channels, count=2)
    assert all(plane.shape == (1, channels, 320, 320) for plane in planes)
    report = check_parity_on_planes(model, path, planes)
    assert max(report.able_max_abs_diff, report.angle_max_abs_diff,
               report.width_max_abs_diff) < 1e-3
    assert report.same_top_grasp


def test_sampled_channels_export_gives_the_full_exports_grasps(light_model, light_onnx, scenes,
                                                               tmp_path):
    """Angle and width maps left at the heads' size: half the input's, the parity check passes
    against ``forward_heads``, and the CPU detector (ONNX Runtime) finds in every scene the
    grasps of the full-size export, sampled where the full export reads them."""
    from sgdn_ros.backends import create_backend
    from sgdn_ros.core.decoding import DecodeConfig
    from sgdn_ros.pipeline.factory import cpu_detector

    path = export_onnx(light_model, LIGHT, tmp_path / "sampled.onnx", sampled_channels=True)
    shapes = {v.name: tuple(_declared_shape(v)[1:]) for v in onnx.load(path).graph.output}
    assert shapes == {OUTPUT_NAMES[0]: (1, 320, 320), OUTPUT_NAMES[1]: (18, 160, 160),
                      OUTPUT_NAMES[2]: (1, 160, 160)}
    report = check_parity(light_model, path, scenes)
    assert report.same_top_grasp and report.angle_max_abs_diff < 1e-3
    config = DecodeConfig(confidence_threshold=0.0, max_grasps=10)
    grasps = []
    for model_path in (light_onnx, path):
        with create_backend("onnxruntime", model_path) as backend:
            detector = cpu_detector(backend, PreprocessConfig(), config)
            grasps.append([detector.detect(scene).grasps for scene in scenes])
    full, sampled = ([grasp for frame in found for grasp in frame] for found in grasps)
    assert len(full) == len(sampled) == 10 * len(scenes)
    assert [(g.crop_row, g.crop_col, g.angle_class) for g in sampled] == [
        (g.crop_row, g.crop_col, g.angle_class) for g in full]
    np.testing.assert_allclose([g.crop_width_px for g in sampled],
                               [g.crop_width_px for g in full], rtol=0, atol=1e-3)


def test_sampled_channels_refuse_nearest_upsampling(light_model, tmp_path):
    nearest = dataclasses.replace(LIGHT, upsample="nearest")
    with pytest.raises(ExportError, match="sampled_channels needs the bilinear upsampling"):
        export_onnx(light_model, nearest, tmp_path / "nearest.onnx", sampled_channels=True)


def test_a_full_size_model_converted_to_sampled_channels_is_the_sampled_export(
        light_model, light_onnx, scenes, tmp_path):
    """``save_sampled_channels_copy`` (how the shipped models were converted) removes the last
    upsampling of angle and width: the outputs of ``export --sampled-channels``, a smaller
    graph without the Resizes' size computations, and a nearest-upsampling model refused."""
    from sgdn_ros.models.sampled_channels import save_sampled_channels_copy

    converted = save_sampled_channels_copy(light_onnx, tmp_path / "converted.onnx")
    exported = export_onnx(light_model, LIGHT, tmp_path / "exported.onnx", sampled_channels=True)
    planes = np.concatenate([Preprocessor(PreprocessConfig())(scene)[0] for scene in scenes])
    runs = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        list(OUTPUT_NAMES), {INPUT_NAME: planes}) for path in (converted, exported)]
    for ours, theirs in zip(*runs):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert runs[0][1].shape == (len(scenes), 18, 160, 160)
    ops = Counter(node.op_type for node in onnx.load(converted).graph.node)
    assert ops["Resize"] == Counter(node.op_type for node in onnx.load(light_onnx).graph.node)[
        "Resize"] - 2
    nearest = export_onnx(light_model, dataclasses.replace(LIGHT, upsample="nearest"),
                          tmp_path / "nearest.onnx", opset=11)
    with pytest.raises(ValueError, match="does not come from a bilinear Resize with aligned"):
        save_sampled_channels_copy(nearest, tmp_path / "refused.onnx")
