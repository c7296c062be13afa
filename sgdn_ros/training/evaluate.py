"""Image-wise grasp accuracy of a model on held-out generated scenes, through the node's pipeline.

Frames go through ``GraspDetector`` (the published preprocessing, the backend, the decoding the
node runs), so the number measured is the number the node delivers, for an ONNX export as for a
checkpoint. The scenes' seeds start far from the training range (1,000,000 by default; training
uses seeds from 0), so no evaluation scene was seen in training.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import shlex
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sgdn_ros.backends import PRECISIONS, InferenceBackend, ModelLoadError, create_backend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.pipeline.factory import cpu_detector
from sgdn_ros.training.grasp_scenes import generate_grasp_scene
from sgdn_ros.training.metrics import EvaluationResult, evaluate_top_grasps

if TYPE_CHECKING:
    from torch import nn

HELD_OUT_SEED_START = 1_000_000
# The Cornell image-wise metric judges each image's single best grasp: the global maximum of the
# confidence map, whatever its value.
TOP_GRASP_DECODING = DecodeConfig(mode="max", confidence_threshold=0.0)


def evaluate_model(backend_or_model: InferenceBackend | nn.Module, *, num_scenes: int = 500,
                   seed_start: int = HELD_OUT_SEED_START,
                   decode_config: DecodeConfig | None = None) -> EvaluationResult:
    """Accuracy over scenes ``seed_start .. seed_start + num_scenes - 1``.

    A backend is used as it is and left open (its owner closes it); a network in memory is
    copied and run by a ``TorchBackend`` (fp32, on the GPU when there is one), so the caller's
    module keeps its device and training mode.
    """
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be at least 1, got {num_scenes}")
    if isinstance(backend_or_model, InferenceBackend):
        return _evaluate_backend(backend_or_model, num_scenes, seed_start, decode_config)
    # torch only for a network in memory: evaluating an ONNX export needs no PyTorch.
    from torch import nn

    from sgdn_ros.backends.torch_backend import TorchBackend

    if isinstance(backend_or_model, nn.Module):
        with TorchBackend.from_module(copy.deepcopy(backend_or_model)) as backend:
            return _evaluate_backend(backend, num_scenes, seed_start, decode_config)
    raise TypeError(
        f"expected an InferenceBackend or a torch nn.Module, got "
        f"{type(backend_or_model).__name__}")


def _evaluate_backend(backend: InferenceBackend, num_scenes: int, seed_start: int,
                      decode_config: DecodeConfig | None) -> EvaluationResult:
    detector = cpu_detector(backend, PreprocessConfig(), decode_config or TOP_GRASP_DECODING)
    predictions = []
    truths = []
    for seed in range(seed_start, seed_start + num_scenes):
        scene = generate_grasp_scene(seed)
        predictions.append(detector.detect(scene.image).grasps)
        truths.append(list(scene.rectangles))
    return evaluate_top_grasps(predictions, truths)


def open_model(path: pathlib.Path, *, device: str = "auto",
               precision: str = "fp32") -> InferenceBackend:
    """An ``.onnx`` file runs on ONNX Runtime, as the node runs it; anything else is read as a
    PyTorch checkpoint and runs on the torch backend (``device`` and ``precision`` apply)."""
    if path.suffix.lower() == ".onnx":
        return create_backend("onnxruntime", path)
    from sgdn_ros.backends.torch_backend import TorchBackend

    return TorchBackend(path, device=device, precision=precision)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgdn-ros evaluate",
        description="Image-wise grasp accuracy (IoU > 0.25 and angle within 30 degrees of a "
                    "true grasp, best grasp per image) on held-out generated scenes.")
    parser.add_argument("model", type=pathlib.Path,
                        help="an .onnx export or a PyTorch checkpoint (.pt/.pth)")
    parser.add_argument("--scenes", type=int, default=500, help="number of scenes")
    parser.add_argument("--seed-start", type=int, default=HELD_OUT_SEED_START,
                        help="seed of the first scene (training uses seeds from 0)")
    parser.add_argument("--device", default="auto", help="checkpoints: auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="checkpoints: fp16 needs a CUDA GPU")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``sgdn-ros evaluate``: print the accuracy and the command that produced it."""
    args = build_parser().parse_args(argv)
    if args.scenes < 1:
        print(f"sgdn-ros evaluate: --scenes must be at least 1, got {args.scenes}",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        backend = open_model(args.model, device=args.device, precision=args.precision)
    except (ModelLoadError, ValueError) as error:
        print(f"sgdn-ros evaluate: {error}", file=sys.stderr)
        return 2
    with backend:
        result = evaluate_model(backend, num_scenes=args.scenes, seed_start=args.seed_start)
    seconds = time.perf_counter() - started
    for line in result.lines():
        print(line)
    print(f"model {args.model} on {backend.name}; scenes {args.seed_start}.."
          f"{args.seed_start + args.scenes - 1}; {seconds:.1f} s")
    print(f"command: {shlex.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
