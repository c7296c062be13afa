"""What the TensorRT layer raises, kept apart so that each step can raise it and a backend can
tell "TensorRT cannot run here" (move on to another backend) from "this model is bad"."""

from __future__ import annotations

from sgdn_ros.backends.base import ModelLoadError


class TensorRTUnavailable(ImportError):
    """Neither TensorRT nor TensorRT-RTX imports, or the one that does is too old."""


class EngineBuildError(ModelLoadError):
    """The ONNX model cannot be parsed or built into a usable engine here."""


class EngineUnrunnable(EngineBuildError):
    """A plan built here does not deserialize here: this TensorRT cannot run engines on this
    machine (no GPU, or one it does not support). The model is not at fault."""
