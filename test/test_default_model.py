"""The shipped default model: what the node runs with no model_path."""

from __future__ import annotations

import onnx

from sgdn_ros.backends import create_backend
from sgdn_ros.models.default import TRAINED_MODEL, resolve_model_path
from sgdn_ros.training.evaluate import evaluate_model


def test_the_default_model_ships_inside_the_package_under_10_mb():
    path, description = resolve_model_path("")
    assert path == TRAINED_MODEL and path.is_file()
    assert path.stat().st_size < 10 * 1024 * 1024
    assert "trained default model" in description
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert metadata["num_angle_classes"] == "18" and metadata["backbone"] == "light"


def test_the_default_model_finds_true_grasps_on_held_out_scenes():
    """A slice of the README's 500-scene figure (99.8 %), as a regression guard."""
    with create_backend("onnxruntime", TRAINED_MODEL) as backend:
        result = evaluate_model(backend, num_scenes=60, seed_start=1_000_000)
    assert result.images == 60
    assert result.accuracy >= 0.9, result.lines()
