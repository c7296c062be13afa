"""Load SGDN weights in the forms users arrive with, and save them in the project's own form.

Accepted files (all read with ``torch.load(weights_only=True)``, which never runs pickled code):

- the project's checkpoint: ``{"format": CHECKPOINT_FORMAT, "config": ..., "state_dict": ...,
  "extra": ...}``; the network's configuration travels with the weights;
- a bare ``state_dict``, as the published AFFGA-Net/SGDN checkpoints are; the configuration
  (backbone, input channels, K, width channels, layer widths) is read off the tensor shapes;
- a training checkpoint holding the ``state_dict`` under ``"state_dict"``, ``"model"`` or
  ``"net"``.

A ``"module."`` prefix (``nn.DataParallel``) is removed. Loading is strict; a mismatch is
reported in one message naming the first differing keys and shapes and the configuration the
file itself suggests.
"""

from __future__ import annotations

import pathlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import asdict, fields
from os import PathLike

import torch

from sgdn_ros.core.atomic_files import atomic_output
from sgdn_ros.models.errors import ModelLoadError
from sgdn_ros.network.backbone import BACKBONES
from sgdn_ros.network.network import SGDN, ModelConfigError, SGDNConfig

CHECKPOINT_FORMAT = "sgdn_ros.checkpoint.v1"
STATE_DICT_KEYS = ("state_dict", "model", "net")
DATA_PARALLEL_PREFIX = "module."
_SHOWN_PROBLEMS = 5
_BLOCK_INDEX = re.compile(r"^backbone\.layer(\d)\.(\d+)\.")


class CheckpointError(ModelLoadError):
    """A checkpoint file that cannot be turned into an SGDN network."""


def load_checkpoint(
    path: str | PathLike[str],
    config: SGDNConfig | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[SGDN, SGDNConfig]:
    """Build the network a checkpoint holds and load its weights strictly.

    ``config`` overrides what the file says or implies (e.g. ``upsample="nearest"`` for a
    TensorRT 7 export). The model is returned in eval mode on ``map_location``.
    """
    if config is not None and not isinstance(config, SGDNConfig):
        raise CheckpointError(
            f"config must be an SGDNConfig or None (read it from the file), got "
            f"{type(config).__name__}")
    path = pathlib.Path(path).expanduser()
    payload = _read(path, map_location)
    state_dict, stored_config = _unpack(payload, path)
    if config is None:
        config = stored_config if stored_config is not None else _inferred(state_dict, path)
    problems = _problems_for(config, state_dict)
    if problems:
        raise CheckpointError(_mismatch_message(path, config, problems, state_dict))
    model = SGDN(config)
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location).eval(), config


def save_checkpoint(path: str | PathLike[str], model: SGDN, config: SGDNConfig,
                    extra: Mapping[str, object] | None = None) -> None:
    """Write the project's checkpoint: config, CPU weights and ``extra`` (plain values only).

    ``extra`` must hold only what ``torch.load(weights_only=True)`` reads back: numbers,
    strings, lists, dicts, tensors. The file is replaced atomically.
    """
    weights = model.state_dict()
    problems = _problems_for(config, weights)
    if problems:
        raise CheckpointError(
            f"the model's weights do not fit the config {config}: {'; '.join(problems)}")
    path = pathlib.Path(path).expanduser()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(config),
        "state_dict": {key: value.detach().cpu() for key, value in weights.items()},
        "extra": dict(extra or {}),
    }
    with atomic_output(path) as partial:
        torch.save(payload, partial)


def infer_config(state_dict: Mapping[str, torch.Tensor], upsample: str = "bilinear") -> SGDNConfig:
    """Read the configuration off a state_dict's tensor shapes.

    Raises ``CheckpointError`` when it is not an SGDN state_dict or the backbone is unknown.
    """
    def channels(key: str, dim: int = 0) -> int:
        return _shape(state_dict, key)[dim]

    head = channels("decoder.able_conv.4.weight")
    angle_head = channels("decoder.angle_conv.4.weight")
    return SGDNConfig(
        backbone=_backbone_name(state_dict),
        input_channels=channels("backbone.conv1.weight", dim=1),
        num_angle_classes=channels("decoder.angle_conv.10.weight"),
        width_channels=channels("decoder.width_conv.10.weight"),
        upsample=upsample,
        hasp_channels=channels("hasp.conv_small.0.weight"),
        decoder_channels=channels("decoder.conv_hasp_small.0.weight"),
        head_channels=head,
        low_level_channels=channels("decoder.conv_1.0.weight"),
        angle_head_channels=None if angle_head == head else angle_head,
    )


def state_dict_problems(model: torch.nn.Module,
                        state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state_dict`` from loading strictly into ``model``, a few of each kind."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [f"{key} {tuple(state_dict[key].shape)} vs model {shape}"
                for key, shape in expected.items()
                if key in state_dict and tuple(state_dict[key].shape) != shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected),
                         ("shape mismatch", reshaped)):
        if items:
            shown = ", ".join(items[:_SHOWN_PROBLEMS])
            more = f" and {len(items) - _SHOWN_PROBLEMS} more" if len(items) > _SHOWN_PROBLEMS \
                else ""
            problems.append(f"{len(items)} {label}: {shown}{more}")
    return problems


def _problems_for(config: SGDNConfig, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """``state_dict_problems`` against a network built without memory (meta tensors)."""
    with torch.device("meta"):
        return state_dict_problems(SGDN(config), state_dict)


def _read(path: pathlib.Path, map_location: str | torch.device) -> object:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} holds more than weights (a whole pickled model, as torch.save(net) "
            "writes, or custom classes), which is not loaded because unpickling can run code; "
            "in the environment that wrote it, save only the weights: "
            "torch.save(torch.load(path, weights_only=False).state_dict(), 'weights.pth')"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint ({error}); check that it is a "
            "complete .pth/.pt file, not a truncated copy or another format") from error


def _unpack(payload: object,
            path: pathlib.Path) -> tuple[dict[str, torch.Tensor], SGDNConfig | None]:
    """The state_dict (prefix removed) and, for the project's own format, its config."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(payload).__name__}, not a dict of weights")
    config = None
    if "format" in payload:
        if payload["format"] != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{path} is a {payload['format']!r} checkpoint; this version reads "
                f"{CHECKPOINT_FORMAT!r} (or bare state_dicts)")
        config = _stored_config(payload.get("config"), path)
        weights = payload.get("state_dict")
    elif _is_state_dict(payload):
        weights = payload
    else:
        weights = next((payload[key] for key in STATE_DICT_KEYS
                        if key in payload and _is_state_dict(payload[key])), None)
    if not _is_state_dict(weights):
        raise CheckpointError(
            f"{path} holds no state_dict: expected a dict of tensors, or one under "
            f"{', '.join(repr(key) for key in STATE_DICT_KEYS)}; its keys are "
            f"{', '.join(repr(key) for key in list(payload)[:_SHOWN_PROBLEMS])}")
    state_dict = {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in weights.items()}
    return state_dict, config


def _is_state_dict(value: object) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor)
        for key, tensor in value.items())


def _stored_config(values: object, path: pathlib.Path) -> SGDNConfig:
    known = {field.name for field in fields(SGDNConfig)}
    if not isinstance(values, Mapping) or not set(values) <= known:
        raise CheckpointError(
            f"{path} has an unreadable config {values!r}; expected a dict with keys among "
            f"{', '.join(sorted(known))}")
    try:
        return SGDNConfig(**values)
    except ModelConfigError as error:
        raise CheckpointError(f"{path} has an invalid config: {error}") from error


def _inferred(state_dict: Mapping[str, torch.Tensor], path: pathlib.Path) -> SGDNConfig:
    try:
        return infer_config(state_dict)
    except ModelConfigError as error:
        raise CheckpointError(f"{path}: the weights imply an invalid config: {error}") from error
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from error


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(
            f"not an SGDN state_dict: it has no {key!r} (its first keys: "
            f"{', '.join(list(state_dict)[:_SHOWN_PROBLEMS])})")
    return tuple(state_dict[key].shape)


def _backbone_name(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The known backbone with this block type, stem width, stage widths and block counts."""
    blocks = [0, 0, 0, 0]
    for key in state_dict:
        match = _BLOCK_INDEX.match(key)
        if match and 1 <= int(match.group(1)) <= 4:
            layer, index = int(match.group(1)) - 1, int(match.group(2))
            blocks[layer] = max(blocks[layer], index + 1)
    block = "bottleneck" if "backbone.layer1.0.conv3.weight" in state_dict else "basic"
    stem = _shape(state_dict, "backbone.conv1.weight")[0]
    planes = tuple(_shape(state_dict, f"backbone.layer{layer}.0.conv1.weight")[0]
                   for layer in range(1, 5))
    for name, spec in BACKBONES.items():
        if (spec.block, spec.stem_channels, spec.planes, spec.blocks,
                len(spec.layer4_grid)) == (block, stem, planes, tuple(blocks[:3]), blocks[3]):
            return name
    raise CheckpointError(
        f"unknown backbone: {block} blocks {blocks} per stage, stem width {stem}, stage widths "
        f"{planes}; known backbones: {', '.join(BACKBONES)} (ResNet-101 has bottleneck "
        "blocks [3, 4, 23, 3])")


def _mismatch_message(path: pathlib.Path, config: SGDNConfig, problems: list[str],
                      state_dict: Mapping[str, torch.Tensor]) -> str:
    message = f"{path} does not fit {config}: {'; '.join(problems)}"
    try:
        suggested = infer_config(state_dict, upsample=config.upsample)
    except (CheckpointError, ModelConfigError):
        return message + "; the file does not look like an SGDN state_dict"
    if suggested == config:
        return message
    # Name what differs from the given config and what differs from the defaults, so that the
    # suggestion rebuilds the whole config.
    default = SGDNConfig()
    arguments = ", ".join(
        f"{field.name}={getattr(suggested, field.name)!r}" for field in fields(SGDNConfig)
        if getattr(suggested, field.name) != getattr(config, field.name)
        or getattr(suggested, field.name) != getattr(default, field.name))
    return (f"{message}; the weights' shapes suggest SGDNConfig({arguments}) (or leave config "
            "out to use what the file implies)")
