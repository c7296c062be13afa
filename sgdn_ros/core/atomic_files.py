"""Files that appear whole or not at all: checkpoints, ONNX exports, cached models and engines.

A reader (another node starting, a second build) must never see half a file, and a crash or a
kill mid-write must leave no corrupt one behind.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from os import PathLike


@contextlib.contextmanager
def atomic_output(path: str | PathLike[str]) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside `path` to write to; when the block succeeds its content
    is flushed to disk and renamed onto `path` in one step, otherwise it is removed."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
