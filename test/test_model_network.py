"""The SGDN network's published layout and the checkpoint loader, on real torch modules.

The ResNet-101 files written here have the published key names and shapes (built by our own
network, whose names follow the author's code): 744 entries, 69.2 M parameters.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency (the PyTorch side)")

from sgdn_ros.network.checkpoint import (  # noqa: E402
    CHECKPOINT_FORMAT,
    CheckpointError,
    infer_config,
    load_checkpoint,
    save_checkpoint,
)
from sgdn_ros.network.network import (  # noqa: E402
    PRESETS,
    SGDN,
    ModelConfigError,
    SGDNConfig,
    build_sgdn,
)

PUBLISHED_ENTRIES = 744


def _built(config: SGDNConfig, seed: int = 0) -> SGDN:
    torch.manual_seed(seed)
    return build_sgdn(config).eval()


def _same_weights(first: SGDN, second: SGDN) -> bool:
    theirs = second.state_dict()
    return all(torch.equal(value, theirs[key]) for key, value in first.state_dict().items())


@pytest.fixture(scope="module")
def resnet101() -> SGDN:
    return _built(PRESETS["resnet101"])


@pytest.fixture(scope="module")
def raw_resnet101_file(resnet101, tmp_path_factory) -> pathlib.Path:
    """A bare state_dict, as the published checkpoints are."""
    path = tmp_path_factory.mktemp("checkpoints") / "affga_resnet101_k120.pth"
    torch.save(resnet101.state_dict(), path)
    return path


def test_resnet101_state_dict_has_the_published_names_and_shapes(resnet101):
    state = resnet101.state_dict()
    assert len(state) == PUBLISHED_ENTRIES
    parameters = sum(p.numel() for p in resnet101.parameters())
    assert round(parameters / 1e6, 1) == 69.2
    expected_shapes = {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.layer3.22.conv3.weight": (1024, 256, 1, 1),
        "backbone.layer4.2.bn3.running_var": (2048,),
        "hasp.hasp1_1.atrous_conv.weight": (512, 2048, 1, 1),
        "hasp.hasp2_2.atrous_conv.weight": (256, 2048, 3, 3),
        "hasp.conv_small.0.weight": (256, 768, 1, 1),
        "hasp.conv_all.0.weight": (256, 1536, 1, 1),
        "decoder.conv_1.0.weight": (48, 256, 1, 1),
        "decoder.conv_2.0.weight": (48, 512, 1, 1),
        "decoder.conv_hasp_small.0.weight": (256, 304, 3, 3),
        "decoder.conv_hasp_mid.0.weight": (256, 352, 3, 3),
        "decoder.conv_hasp_big.0.weight": (256, 304, 3, 3),
        "decoder.able_conv.0.weight": (256, 512, 3, 3),
        "decoder.able_conv.8.weight": (128, 128, 2, 2),
        "decoder.able_conv.10.weight": (1, 128, 1, 1),
        "decoder.angle_conv.10.weight": (120, 128, 1, 1),
        "decoder.width_conv.10.bias": (120,),
    }
    assert {key: tuple(state[key].shape) for key in expected_shapes} == expected_shapes
    assert not any(key.startswith("backbone.layer3.23.") for key in state)
    assert isinstance(resnet101.decoder.able_conv[8], torch.nn.ConvTranspose2d)


def test_resnet101_runs_at_output_stride_16_with_a_multi_grid_layer4(resnet101):
    layer4_dilations = [block.conv2.dilation[0] for block in resnet101.backbone.layer4]
    assert layer4_dilations == [2, 4, 8]
    stage_strides = [getattr(resnet101.backbone, f"layer{i}")[0].conv2.stride[0]
                     for i in range(1, 5)]
    assert stage_strides == [1, 2, 2, 1]
    with torch.no_grad():
        features, low_level = resnet101.backbone(torch.zeros(1, 3, 320, 320))
    assert features.shape == (1, 2048, 20, 20)
    assert low_level.shape == (1, 256, 80, 80)


def test_state_dict_loads_strictly_into_a_new_network_with_equal_outputs(resnet101):
    copy = _built(PRESETS["resnet101"], seed=1)
    assert not _same_weights(resnet101, copy)
    copy.load_state_dict(resnet101.state_dict(), strict=True)
    image = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for ours, theirs in zip(resnet101(image), copy(image)):
            assert torch.equal(ours, theirs)


def test_depth_resnet101_with_18_classes_gives_maps_at_input_size():
    model = _built(SGDNConfig(input_channels=1, num_angle_classes=18, width_channels=18))
    with torch.no_grad():
        able, angle, width = model(torch.randn(1, 1, 160, 160))
    assert (able.shape, angle.shape, width.shape) == (
        (1, 1, 160, 160), (1, 18, 160, 160), (1, 18, 160, 160))
    assert model.state_dict()["backbone.conv1.weight"].shape == (64, 1, 7, 7)


def test_light_preset_gives_maps_at_input_size_from_a_small_network():
    config = PRESETS["light"]
    model = _built(config)
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 320, 320))
    assert [tuple(o.shape) for o in outputs] == [
        (2, 1, 320, 320), (2, 18, 320, 320), (2, 1, 320, 320)]
    assert all(torch.isfinite(o).all() for o in outputs)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_nearest_upsampling_repeats_each_half_resolution_value_over_2x2_pixels():
    config = dataclasses.replace(PRESETS["light"], upsample="nearest")
    model = _built(config)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        able, _, _ = model(image)
        bilinear = _built(PRESETS["light"])(image)[0]
    for row_offset, col_offset in ((0, 1), (1, 0), (1, 1)):
        assert torch.equal(able[..., row_offset::2, col_offset::2], able[..., 0::2, 0::2])
    assert not torch.equal(bilinear[..., 0::2, 0::2], bilinear[..., 1::2, 1::2])


@pytest.mark.parametrize("changes, message", [
    ({"backbone": "resnet34"}, "backbone must be one of"),
    ({"upsample": "bicubic"}, "upsample must be one of"),
    ({"width_channels": 7}, "width_channels must be 1 or num_angle_classes"),
    ({"num_angle_classes": 0}, "num_angle_classes must be a positive integer"),
    ({"width_channels": True}, "width_channels must be a positive integer"),
    ({"input_channels": True}, "input_channels must be a positive integer"),
])
def test_invalid_configs_are_refused_with_the_reason(changes, message):
    with pytest.raises(ModelConfigError, match=message):
        SGDNConfig(**changes)


def test_raw_published_state_dict_loads_with_its_config_inferred(resnet101, raw_resnet101_file):
    model, config = load_checkpoint(raw_resnet101_file)
    assert config == PRESETS["resnet101"]
    assert not model.training
    assert _same_weights(model, resnet101)


def test_wrapped_data_parallel_state_dict_loads(resnet101, tmp_path):
    path = tmp_path / "wrapped.pth"
    prefixed = {f"module.{key}": value for key, value in resnet101.state_dict().items()}
    torch.save({"epoch": 12, "net": prefixed}, path)
    model, config = load_checkpoint(path)
    assert config == PRESETS["resnet101"]
    assert _same_weights(model, resnet101)


def test_wrong_angle_classes_give_one_message_with_the_config_to_try(raw_resnet101_file):
    wrong = SGDNConfig(num_angle_classes=18, width_channels=18)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(raw_resnet101_file, config=wrong)
    message = str(raised.value)
    assert "4 shape mismatch: decoder.angle_conv.10.weight (120, 128, 1, 1) vs model " \
           "(18, 128, 1, 1)" in message
    assert "SGDNConfig(num_angle_classes=120, width_channels=120)" in message


def test_missing_and_unexpected_keys_are_named(resnet101, tmp_path):
    state = dict(resnet101.state_dict())
    state["decoder.able_conv.11.weight"] = state.pop("decoder.able_conv.10.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing: decoder\.able_conv\.10\.weight; "
                                              r"1 unexpected: decoder\.able_conv\.11\.weight"):
        load_checkpoint(path, config=PRESETS["resnet101"])


@pytest.mark.parametrize("config", [
    SGDNConfig(input_channels=1, num_angle_classes=18, width_channels=18),
    SGDNConfig(backbone="resnet50", num_angle_classes=36, width_channels=1,
               angle_head_channels=256),
    SGDNConfig(backbone="resnet18", num_angle_classes=18, width_channels=1),
    PRESETS["light"],
], ids=["resnet101-depth-k18", "resnet50-cornell-heads", "resnet18", "light"])
def test_config_is_inferred_from_the_tensor_shapes(config):
    assert infer_config(_built(config).state_dict()) == config


def test_own_checkpoint_round_trips_config_weights_and_extra(tmp_path):
    config = dataclasses.replace(PRESETS["light"], upsample="nearest")
    model = _built(config, seed=4)
    path = tmp_path / "light.pt"
    save_checkpoint(path, model, config, extra={"epoch": 3, "note": "synthetic scenes"})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT
    assert payload["extra"] == {"epoch": 3, "note": "synthetic scenes"}
    loaded, loaded_config = load_checkpoint(path)
    assert loaded_config == config  # upsample is not in the weights: the file kept it
    assert _same_weights(loaded, model)


def test_saving_weights_under_a_config_they_do_not_fit_is_refused(tmp_path):
    model = _built(PRESETS["light"])
    with pytest.raises(CheckpointError, match="do not fit the config"):
        save_checkpoint(tmp_path / "x.pt", model, dataclasses.replace(
            PRESETS["light"], num_angle_classes=36))
    assert not list(tmp_path.iterdir())


def test_a_pickled_whole_model_is_not_unpickled(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(_built(PRESETS["light"]), path)
    with pytest.raises(CheckpointError, match=r"state_dict\(\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("content, message", [
    ({"weights": [1, 2]}, "holds no state_dict"),
    ({"conv.weight": torch.zeros(2)}, "not an SGDN state_dict"),
    ({"format": "sgdn_ros.checkpoint.v9", "state_dict": {}}, "this version reads"),
])
def test_files_that_are_not_sgdn_checkpoints_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "other.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_missing_or_truncated_file_is_reported(raw_resnet101_file, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(raw_resnet101_file.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(truncated)
