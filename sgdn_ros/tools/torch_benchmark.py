"""How fast the torch backend runs SGDN on one CUDA GPU: eager FP32, eager FP16, FP16 + CUDA graph.

All three variants run in one process on the same random weights (speed does not depend on the
weights), so their times compare directly. Two times per variant: the forward pass alone
(CUDA events around ``forward_on_device``, input already on the GPU: the GPU timeline, launch
gaps included), and a whole ``infer`` call (host array in, host arrays out, as the node calls it).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sgdn_ros.backends.base import ModelOutputs
from sgdn_ros.backends.torch_backend import TorchBackend
from sgdn_ros.network.network import build_sgdn
from sgdn_ros.tools.timing import median_wall_ms
from sgdn_ros.training.train import preset_config

VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("eager fp32", "fp32", False),
    ("eager fp16", "fp16", False),
    ("fp16 + CUDA graph", "fp16", True),
)
WARMUP_RUNS = 10
CALIBRATION_BATCHES = 4


def benchmark_torch_variants(preset: str = "resnet101", num_angle_classes: int = 120,
                             repeats: int = 50) -> list[str]:
    """Measure the variants, print the results as markdown lines and return those lines."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"the torch benchmark measures CUDA variants, but this PyTorch ({torch.__version__}) "
            "sees no CUDA GPU; run it on a machine with one")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    config = preset_config(preset, num_angle_classes)
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = calibrate_batch_norm(build_sgdn(config).to(device))
    planes = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, 320, 320)).astype(np.float32)
    lines = [
        f"GPU: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
        f"Model: {preset} (K = {config.num_angle_classes}, width channels "
        f"{config.width_channels}), input 1x3x320x320, random weights; median of {repeats} runs",
        "",
        "| variant | forward ms | infer() ms (host in/out) | forward speed-up vs eager fp32 "
        "| able-logit difference vs fp32 (max, relative to the largest) |",
        "|---|---|---|---|---|",
    ]
    for line in lines:
        print(line, flush=True)
    baseline_ms: float | None = None
    reference: ModelOutputs | None = None
    for label, precision, cuda_graph in VARIANTS:
        backend = TorchBackend.from_module(copy.deepcopy(model), config, device="cuda",
                                           precision=precision, cuda_graph=cuda_graph)
        with backend:
            forward_ms, infer_ms, outputs = _measure(backend, planes, repeats)
        if baseline_ms is None or reference is None:
            baseline_ms, reference = forward_ms, outputs
        difference = float(np.abs(outputs.able - reference.able).max()
                           / np.abs(reference.able).max())
        line = (f"| {label} | {forward_ms:.2f} | {infer_ms:.2f} | "
                f"{baseline_ms / forward_ms:.1f}x | {difference:.2g} |")
        print(line, flush=True)
        lines.append(line)
    return lines


def calibrate_batch_norm(model: nn.Module) -> nn.Module:
    """Give batch norm the statistics of its own activations on random images.

    A freshly initialised deep ResNet with unit running variances grows its activations layer
    after layer, past what FP16 can hold, so FP16 would time a network full of inf and NaN.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batches
    model.train()
    device = next(model.parameters()).device
    channels = model.config.input_channels  # 1 (depth), 3 (colour) or 4 (RGB-D)
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            model(torch.randn((2, channels, 320, 320), device=device))
    return model.eval()


def spread_able_logits(model: nn.Module, planes: np.ndarray, spread: float = 2.0) -> nn.Module:
    """Rescale the last able convolution so that the able logits of ``planes`` (preprocessed
    images, (N, 3, H, W) float32) have mean 0 and standard deviation ``spread``.

    A random deep network's able logits run into the hundreds, so every confidence rounds to
    1.0 and no threshold selects a few grasps; rescaled on the images it will see, random
    weights give what decoding sees from a trained model: a few pixels above a threshold.
    Speed is unchanged.
    """
    head = model.decoder.able_conv[-1]
    device = head.weight.device
    with torch.no_grad():
        able = model.eval()(torch.from_numpy(planes).to(device))[0]
        mean, deviation = able.mean(), able.std().clamp_min(1e-6)
        head.weight.mul_(spread / deviation)
        head.bias.sub_(mean).mul_(spread / deviation)
    return model


def _measure(backend: TorchBackend, planes: np.ndarray,
             repeats: int) -> tuple[float, float, ModelOutputs]:
    """(forward ms, infer ms, the outputs for ``planes``)."""
    inputs = torch.from_numpy(planes).to(backend.device)
    forward_ms = median_gpu_ms(lambda: backend.forward_on_device(inputs), repeats)
    infer_ms = median_wall_ms(lambda: backend.infer(planes), repeats, WARMUP_RUNS)
    return forward_ms, infer_ms, backend.infer(planes)


def median_gpu_ms(run: Callable[[], object], repeats: int) -> float:
    """Median GPU time of ``run`` between CUDA events, after a warm-up: the GPU timeline of
    work the host only enqueues."""
    for _ in range(WARMUP_RUNS):
        run()
    events = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sgdn_ros.tools.torch_benchmark",
        description="Torch backend speed on CUDA: eager fp32, eager fp16, fp16 + CUDA graph.")
    parser.add_argument("--preset", default="resnet101")
    parser.add_argument("--classes", type=int, default=120, help="angle classes K")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    try:
        benchmark_torch_variants(args.preset, args.classes, args.repeats)
    except (RuntimeError, ValueError) as error:
        print(f"benchmark_torch: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
