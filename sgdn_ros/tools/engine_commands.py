"""The command line of the engine cache: ``sgdn-ros build-engine`` builds a TensorRT plan ahead
of time (e.g. with TensorRT-RTX on a machine without a GPU), ``sgdn-ros inspect`` says what a
cached plan was built for and whether its file still matches."""

from __future__ import annotations

import argparse
import pathlib
import sys

from sgdn_ros.backends.base import PRECISIONS
from sgdn_ros.backends.tensorrt.engine import get_engine
from sgdn_ros.backends.tensorrt.engine_cache import default_cache_dir, plan_problem, read_record
from sgdn_ros.backends.tensorrt.errors import TensorRTUnavailable
from sgdn_ros.backends.tensorrt.settings import (
    MAX_OPTIMIZATION_LEVEL,
    EngineSettings,
    check_precision,
)


def add_engine_commands(commands: argparse._SubParsersAction) -> None:
    """Add the ``build-engine`` and ``inspect`` subcommands to ``sgdn-ros``'s subparsers."""
    defaults = EngineSettings()
    build = commands.add_parser(
        "build-engine", help="build a TensorRT plan ahead of time into the engine cache")
    build.add_argument("model", type=pathlib.Path, help="SGDN ONNX model")
    build.add_argument("--precision", type=engine_precision, default=defaults.precision,
                       help=f"one of {', '.join(PRECISIONS)}")
    build.add_argument("--cache-dir", type=pathlib.Path, default=None,
                       help=f"engine cache (default {default_cache_dir()})")
    build.add_argument("--workspace-mb", type=int, default=defaults.workspace_mb)
    build.add_argument("--optimization-level", type=int, default=None,
                       help=f"builder optimization level 0..{MAX_OPTIMIZATION_LEVEL} "
                            "(default: TensorRT's)")
    build.add_argument("--no-timing-cache", dest="timing_cache", action="store_false")
    build.add_argument("--force", action="store_true", help="rebuild even if a valid plan exists")
    build.set_defaults(run=run_build_engine)

    inspect = commands.add_parser("inspect", help="what a cached TensorRT plan was built for")
    inspect.add_argument("plan", type=pathlib.Path, help="a .plan file (or its .json sidecar)")
    inspect.set_defaults(run=run_inspect)


def engine_precision(value: str) -> str:
    """``--precision``, refused with ``EngineSettings``' reason (argparse's own "invalid choice"
    would hide why INT8 is not offered)."""
    try:
        check_precision(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def run_build_engine(args: argparse.Namespace) -> int:
    """Build (or find in the cache) the plan; print its path, key and I/O tensors."""
    settings = EngineSettings(precision=args.precision, workspace_mb=args.workspace_mb,
                              optimization_level=args.optimization_level,
                              timing_cache=args.timing_cache)
    try:
        cached = get_engine(args.model, settings, args.cache_dir, force_rebuild=args.force,
                            logger=lambda line: print(line, file=sys.stderr))
    except TensorRTUnavailable as error:
        print(f"sgdn-ros build-engine: {error}", file=sys.stderr)
        return 2
    print(f"plan: {cached.plan_path} ({len(cached.plan) / 1e6:.1f} MB, "
          f"{'built: ' + cached.reason if cached.built else 'cache hit'})")
    print(f"for: {cached.key.module} {cached.key.module_version}, "
          f"{cached.key.precision_method}, GPU {cached.key.gpu_name} "
          f"(compute capability {cached.key.compute_capability})")
    for tensor in cached.io:
        print(tensor.describe())
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """Print what a plan is for, from its sidecar; exit 1 when the plan file does not match."""
    plan_path = args.plan.with_suffix(".plan") if args.plan.suffix == ".json" else args.plan
    record = read_record(plan_path)
    print(f"plan: {plan_path} ({record.plan_bytes / 1e6:.1f} MB, sha256 "
          f"{record.plan_sha256[:16]}...)")
    print(f"model: {record.onnx_path}")
    print(f"built: {record.built_at} in {record.build_seconds:.1f} s")
    for name, value in record.key.as_dict().items():
        print(f"  {name}: {value}")
    for tensor in record.io:
        print(tensor.describe())
    problem = plan_problem(plan_path, record)
    print(f"plan file: {problem or 'matches its metadata (size and sha256)'}")
    return 1 if problem else 0
