"""The load step the node runs at configure, without ROS: settings to a detector, what it
reports, and that a failed load holds nothing open."""

from __future__ import annotations

import pytest

from sgdn_ros.backends import ModelLoadError, create_backend
from sgdn_ros.pipeline import loading
from sgdn_ros.pipeline.loading import load_detector
from sgdn_ros.pipeline.parameters import defaults, detector_settings
from sgdn_ros.training.scenes import render_tabletop_scene


def settings_for(model_path, **values):
    return detector_settings({**defaults(), "model_path": str(model_path), **values})


def test_load_detector_reports_the_model_and_detects(model_k120):
    loaded = load_detector(settings_for(model_k120, backend="onnxruntime", max_grasps=2))
    try:
        assert loaded.num_angle_classes == 120
        assert loaded.backend_name == "onnxruntime-cpu"
        assert loaded.detector.decode_config.max_grasps == 2
        summary = loaded.summary()
        assert summary.startswith(f"loaded {model_k120} on onnxruntime-cpu")
        assert "120 angle classes" in summary and "CPU pre- and post-processing" in summary
        image, objects = render_tabletop_scene(2, num_objects=1)
        assert len(loaded.detector.detect(image).grasps) == len(objects)
    finally:
        loaded.close()


def test_the_default_model_path_loads_the_trained_default():
    loaded = load_detector(detector_settings({**defaults(), "backend": "onnxruntime"}))
    try:
        assert "trained default model" in loaded.model_description
        assert loaded.num_angle_classes == 18
    finally:
        loaded.close()


def test_a_detector_that_cannot_be_built_closes_its_backend(model_k120, monkeypatch):
    opened = []

    def recording_create_backend(*args, **kwargs):
        backend = create_backend(*args, **kwargs)
        opened.append(backend)
        close = backend.close

        def recorded_close() -> None:
            opened.remove(backend)
            close()

        backend.close = recorded_close
        return backend

    monkeypatch.setattr(loading, "create_backend", recording_create_backend)
    with pytest.raises(ValueError, match="gpu_processing is 'on' but the onnxruntime"):
        load_detector(settings_for(model_k120, backend="onnxruntime", gpu_processing="on"))
    assert opened == []


def test_a_missing_model_fails_the_load_with_its_path(tmp_path):
    with pytest.raises(ModelLoadError, match="missing.onnx"):
        load_detector(settings_for(tmp_path / "missing.onnx", backend="onnxruntime"))
