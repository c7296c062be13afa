"""Built TensorRT plans on disk: what a plan is valid for, and the checks before it is reused.

A plan runs only on the TensorRT version, GPU (or TensorRT-RTX target), CUDA major, OS and
builder settings it was built with, so each plan has a metadata sidecar holding its
``EngineKey``, its size and sha256, and its I/O tensors. Layout, one slot per model file and
precision (a changed model, TensorRT or GPU replaces the slot's plan instead of piling up new
ones)::

    <cache_dir>/<model stem>.<precision>.<hash of the model's absolute path>.plan
    <cache_dir>/<same name>.json

What ``load_cached_plan`` checks, here and on any machine: the sidecar exists and parses, its
key equals the expected one (otherwise it names the fields that differ), the plan's size equals
the recorded size (a truncated plan is caught before it is read), and its sha256 equals the
recorded one (a corrupt, replaced or half-paired plan). Whether TensorRT can deserialize the
plan is checked by the caller where a GPU is at hand (``engine.get_engine``): a
CPU-only TensorRT-RTX build machine cannot deserialize at all.

Both files are written atomically (temporary file, fsync, rename): a crash leaves the old pair,
or a new plan beside an old sidecar, which the sha256 check turns into a rebuild. Two processes
building the same slot at once: the last writer wins, and a mixed pair is rebuilt the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike

from sgdn_ros.core.atomic_files import atomic_output

CACHE_FORMAT = "sgdn_ros.engine.v1"
PLAN_SUFFIX = ".plan"
SIDECAR_SUFFIX = ".json"
_HASH_CHUNK_BYTES = 1 << 20
_HASH_PROBLEM = "the plan's sha256 differs from its metadata (corrupt or replaced)"


class CachedPlanError(RuntimeError):
    """A plan's metadata is missing or unreadable, so nothing can be said about the plan."""


class StalePlan(Exception):
    """A cached plan that must not be used; ``reason`` says why, for the rebuild's log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes a built plan invalid when it changes.

    ``gpu_name`` and ``compute_capability`` are the GPU's for TensorRT; for TensorRT-RTX, whose
    plans are not tied to one GPU, they are ``"none"`` and the compute-capability target
    (``"rtx-default"``). ``cuda_major`` is ``"unknown"`` where TensorRT was not installed from
    PyPI. ``precision_method`` says how the precision was obtained (builder flag, or an FP16
    copy of the ONNX and the converter that made it).
    """

    onnx_sha256: str
    onnx_inputs: str
    module: str
    module_version: str
    cuda_major: str
    gpu_name: str
    compute_capability: str
    platform: str
    precision: str
    precision_method: str
    workspace_mb: int
    optimization_level: str
    max_batch: int

    def as_dict(self) -> dict[str, str | int]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """sha256 of the key's canonical JSON: equal keys, equal digests."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        """``field: other value -> this value`` for each field that differs."""
        theirs = other.as_dict()
        return [f"{name}: {theirs[name]} -> {value}" for name, value in self.as_dict().items()
                if theirs[name] != value]

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> EngineKey:
        names = {field.name for field in dataclasses.fields(cls)}
        if set(data) != names:
            raise CachedPlanError(
                f"the key has fields {sorted(data)}, expected {sorted(names)}")
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EngineIO:
    """One input or output tensor of a built engine, found by name at run time."""

    name: str
    mode: str               # "input" or "output"
    shape: tuple[int, ...]
    dtype: str              # numpy's name: "float32", "float16", ...

    def describe(self) -> str:
        return f"{self.mode:<6} {self.name} {self.dtype} {self.shape}"


@dataclass(frozen=True)
class PlanRecord:
    """The sidecar of one plan: what it is for, how to recognise it, and how it was made."""

    key: EngineKey
    plan_bytes: int
    plan_sha256: str
    io: tuple[EngineIO, ...]
    build_seconds: float
    built_at: str           # ISO 8601, UTC
    onnx_path: str

    def to_json(self) -> str:
        return json.dumps({
            "format": CACHE_FORMAT,
            "key": self.key.as_dict(),
            "key_digest": self.key.digest(),
            "plan_bytes": self.plan_bytes,
            "plan_sha256": self.plan_sha256,
            "io": [{"name": tensor.name, "mode": tensor.mode, "shape": list(tensor.shape),
                    "dtype": tensor.dtype} for tensor in self.io],
            "build_seconds": self.build_seconds,
            "built_at": self.built_at,
            "onnx_path": self.onnx_path,
        }, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PlanRecord:
        try:
            data = json.loads(text)
            if data.get("format") != CACHE_FORMAT:
                raise CachedPlanError(
                    f"format {data.get('format')!r}, expected {CACHE_FORMAT!r}")
            return cls(
                key=EngineKey.from_dict(data["key"]),
                plan_bytes=int(data["plan_bytes"]),
                plan_sha256=str(data["plan_sha256"]),
                io=tuple(EngineIO(str(tensor["name"]), str(tensor["mode"]),
                                  tuple(int(size) for size in tensor["shape"]),
                                  str(tensor["dtype"])) for tensor in data["io"]),
                build_seconds=float(data["build_seconds"]),
                built_at=str(data["built_at"]),
                onnx_path=str(data["onnx_path"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise CachedPlanError(f"unreadable metadata ({type(error).__name__}: {error})") \
                from error


def default_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/sgdn_ros/engines``, or ``~/.cache/sgdn_ros/engines``."""
    cache_root = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache_root) / "sgdn_ros" / "engines"


def plan_slot(cache_dir: str | PathLike[str], onnx_path: str | PathLike[str],
              precision: str) -> pathlib.Path:
    """The plan path for this model file and precision (see the module docstring)."""
    model = pathlib.Path(onnx_path).expanduser().resolve()
    path_hash = hashlib.sha256(str(model).encode()).hexdigest()[:12]
    name = f"{model.stem}.{precision}.{path_hash}{PLAN_SUFFIX}"
    return pathlib.Path(cache_dir).expanduser() / name


def sidecar_path(plan_path: str | PathLike[str]) -> pathlib.Path:
    return pathlib.Path(plan_path).with_suffix(SIDECAR_SUFFIX)


def file_sha256(path: str | PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_plan(plan_path: str | PathLike[str], plan: bytes, record: PlanRecord) -> None:
    """Write the plan, then its sidecar, each atomically (module docstring: why that order)."""
    with atomic_output(plan_path) as partial:
        partial.write_bytes(plan)
    with atomic_output(sidecar_path(plan_path)) as partial:
        partial.write_text(record.to_json())


def read_record(plan_path: str | PathLike[str]) -> PlanRecord:
    """The sidecar of ``plan_path``; ``CachedPlanError`` when it is missing or unreadable."""
    path = sidecar_path(plan_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CachedPlanError(f"no metadata file {path.name} beside the plan") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CachedPlanError(f"cannot read {path}: {error}") from error
    return PlanRecord.from_json(text)


def plan_problem(plan_path: str | PathLike[str], record: PlanRecord) -> str:
    """What is wrong with the plan file against its record (size, then sha256), or ''."""
    path = pathlib.Path(plan_path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"the plan file {path.name} is missing"
    if size != record.plan_bytes:
        return _size_problem(size, record)
    return "" if file_sha256(path) == record.plan_sha256 else _HASH_PROBLEM


def load_cached_plan(plan_path: str | PathLike[str],
                     expected: EngineKey) -> tuple[bytes, PlanRecord]:
    """The plan bytes and record when the plan may be used for ``expected``; else ``StalePlan``.

    The plan is read once and hashed in memory, so what is checked is what is returned.
    """
    path = pathlib.Path(plan_path)
    if not path.exists():
        raise StalePlan("no cached plan yet")
    try:
        record = read_record(path)
    except CachedPlanError as error:
        raise StalePlan(f"its metadata is unusable: {error}") from None
    if record.key != expected:
        raise StalePlan("the key differs: " + "; ".join(expected.differences(record.key)))
    if path.stat().st_size != record.plan_bytes:
        raise StalePlan(_size_problem(path.stat().st_size, record))
    plan = path.read_bytes()
    if len(plan) != record.plan_bytes or hashlib.sha256(plan).hexdigest() != record.plan_sha256:
        raise StalePlan(_HASH_PROBLEM)
    return plan, record


def _size_problem(size: int, record: PlanRecord) -> str:
    return (f"the plan has {size} bytes, its metadata says {record.plan_bytes} "
            "(truncated or replaced)")
