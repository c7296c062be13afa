"""The model the detector runs when no `model_path` is given.

Until the project ships trained weights this is the synthetic SGDN-contract model of
`sgdn_ros.synthetic_model`: it is generated on first use (about 16 KB of constant filters,
built in milliseconds) into the user's cache and reused afterwards.
"""

from __future__ import annotations

import os
import pathlib

from sgdn_ros.synthetic_model import save_synthetic_sgdn_model

DEFAULT_NUM_ANGLE_CLASSES = 120
DEFAULT_MODEL_DESCRIPTION = (
    "the built-in synthetic demo model (not a trained network: it finds dark objects on a light "
    "table; set model_path to a real SGDN ONNX file)")


def model_cache_dir() -> pathlib.Path:
    cache_root = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache_root) / "sgdn_ros" / "models"


def default_model_path() -> pathlib.Path:
    """Path of the default model, generated into the cache when missing."""
    path = model_cache_dir() / f"synthetic_sgdn_k{DEFAULT_NUM_ANGLE_CLASSES}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        save_synthetic_sgdn_model(partial, num_angle_classes=DEFAULT_NUM_ANGLE_CLASSES)
        os.replace(partial, path)
    return path


def resolve_model_path(model_path: str) -> tuple[pathlib.Path, str]:
    """The model file to load and a phrase saying which model it is, for the log."""
    if model_path:
        path = pathlib.Path(model_path).expanduser()
        return path, str(path)
    return default_model_path(), DEFAULT_MODEL_DESCRIPTION
