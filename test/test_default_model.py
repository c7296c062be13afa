"""The shipped default model: what the node runs with no model_path."""

from __future__ import annotations

import os
import subprocess
import sys

import onnx
import pytest

from sgdn_ros.backends import create_backend
from sgdn_ros.models.default import TRAINED_MODEL, resolve_model_path
from sgdn_ros.models.errors import ModelLoadError
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


def written(path):
    path.write_bytes(b"x")
    return path


@pytest.mark.parametrize("make, message", [
    (lambda folder: folder / "missing.onnx", "model file not found"),
    (lambda folder: folder, "is a folder, not a model file"),
    (lambda folder: written(folder / "weights.bin"),
     "extension '.bin', which is not a model file's"),
])
def test_a_bad_model_path_is_named_before_any_runtime_loads(tmp_path, make, message):
    with pytest.raises(ModelLoadError, match=message) as raised:
        resolve_model_path(str(make(tmp_path)))
    assert "set model_path to an SGDN model file" in str(raised.value)


def test_an_unreadable_model_file_says_so(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file: the permission check cannot fail here")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(ModelLoadError, match="not readable"):
        resolve_model_path(str(path))


def test_a_missing_checkpoint_costs_no_torch_import(tmp_path):
    """The path is checked before the torch backend is chosen (torch: hundreds of MB)."""
    script = (
        "import sys\n"
        "from sgdn_ros.models.errors import ModelLoadError\n"
        "from sgdn_ros.pipeline.loading import load_detector\n"
        "from sgdn_ros.pipeline.settings import DetectorSettings\n"
        f"try:\n    load_detector(DetectorSettings(model_path={str(tmp_path / 'no.pt')!r}))\n"
        "except ModelLoadError as error:\n    print(error)\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model file not found" in result.stdout


def test_the_depth_default_is_shipped_and_takes_depth():
    from sgdn_ros.models.default import DEPTH_MODEL_NAME

    path, description = resolve_model_path(DEPTH_MODEL_NAME)
    assert path.is_file() and path.stat().st_size < 10 * 2**20
    assert "depth" in description and "use_depth" in description
    with create_backend("onnxruntime", path) as backend:
        assert backend.info.input_kind == "depth" and backend.info.num_angle_classes == 18
