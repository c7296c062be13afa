"""Which model the detector runs when `model_path` names none.

Empty: the trained default shipped inside the package (`models/`, see models/README.md: a
light SGDN trained on the project's synthetic grasp scenes). `depth`: the second shipped
default, a light SGDN on depth alone trained on the bin-picking simulator's scenes (training
objects only), for a depth camera over clutter. `synthetic`: the constant-filter
test model of `sgdn_ros.models.synthetic` (about 16 KB, generated into the user's cache on first
use): not trained, but its outputs are predictable, which tests and debugging want.
"""

from __future__ import annotations

import os
import pathlib

from sgdn_ros.core.atomic_files import atomic_output
from sgdn_ros.models.errors import ModelLoadError
from sgdn_ros.models.files import model_file_problem
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model

TRAINED_MODEL = pathlib.Path(__file__).resolve().parent / "sgdn_light_k18.onnx"
TRAINED_MODEL_DESCRIPTION = (
    "the trained default model (light SGDN, K = 18, trained on synthetic tabletop scenes; "
    "set model_path to your own SGDN model for real objects)")
DEPTH_MODEL = pathlib.Path(__file__).resolve().parent / "sgdn_light_depth_k18.onnx"
DEPTH_MODEL_NAME = "depth"
DEPTH_MODEL_DESCRIPTION = (
    "the trained depth default (light SGDN on depth, K = 18, trained on simulated bin-picking "
    "scenes; needs use_depth)")
SYNTHETIC_MODEL_NAME = "synthetic"
SYNTHETIC_NUM_ANGLE_CLASSES = 120
SYNTHETIC_MODEL_DESCRIPTION = (
    "the built-in synthetic test model (not a trained network: it finds dark objects on a light "
    "table)")


def model_cache_dir() -> pathlib.Path:
    cache_root = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache_root) / "sgdn_ros" / "models"


def synthetic_model_path() -> pathlib.Path:
    """Path of the synthetic test model, generated into the cache when missing."""
    path = model_cache_dir() / f"synthetic_sgdn_k{SYNTHETIC_NUM_ANGLE_CLASSES}.onnx"
    if not path.exists():
        with atomic_output(path) as partial:
            save_synthetic_sgdn_model(partial, num_angle_classes=SYNTHETIC_NUM_ANGLE_CLASSES)
    return path


def resolve_model_path(model_path: str) -> tuple[pathlib.Path, str]:
    """The model file to load and a phrase saying which model it is, for the log.

    A user's path is checked here, before any backend imports its runtime (torch alone costs
    hundreds of MB): ``ModelLoadError`` says whether it is missing, a folder, unreadable or not
    a model file.
    """
    if not model_path:
        return TRAINED_MODEL, TRAINED_MODEL_DESCRIPTION
    if model_path == SYNTHETIC_MODEL_NAME:
        return synthetic_model_path(), SYNTHETIC_MODEL_DESCRIPTION
    if model_path == DEPTH_MODEL_NAME:
        return DEPTH_MODEL, DEPTH_MODEL_DESCRIPTION
    path = pathlib.Path(model_path).expanduser()
    problem = model_file_problem(path)
    if problem is not None:
        raise ModelLoadError(problem)
    return path, str(path)
