"""What a model file may be, checked before any runtime is imported to read it."""

from __future__ import annotations

import os
import pathlib

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
MODEL_SUFFIXES = (".onnx", *CHECKPOINT_SUFFIXES)


def model_file_problem(path: pathlib.Path) -> str | None:
    """Why ``path`` cannot be a model file, or None."""
    advice = ("set model_path to an SGDN model file (.onnx, or a PyTorch checkpoint "
              f"{', '.join(CHECKPOINT_SUFFIXES)}), '' for the trained default or 'synthetic'")
    if path.is_dir():
        return f"model_path {path} is a folder, not a model file; {advice}"
    if not path.exists():
        return f"model file not found: {path}; {advice}"
    if path.suffix.lower() not in MODEL_SUFFIXES:
        return (f"model_path {path} has the extension {path.suffix or '(none)'!r}, which is "
                f"not a model file's; {advice}")
    if not os.access(path, os.R_OK):
        return f"model file {path} is not readable by this user; fix its permissions"
    return None
