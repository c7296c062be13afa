"""Train SGDN on generated grasp scenes, on the CPU or one CUDA GPU.

``input_kind`` picks the model's input and the scenes: "bgr" (colour) learns from the 2-D grasp
scenes (``dataset``), "depth" and "depth_bgr" (depth, depth + B, G, R) from rendered RGB-D
scenes (``rgbd_dataset``); the network's ``input_channels`` follow from it.

Every step draws fresh scenes (seeds ``train_seed_start`` onwards), so there is no epoch and
nothing to shuffle. The loss follows AFFGA-Net's three heads (``losses.sgdn_loss``). The run is
meant to survive time limits: a checkpoint is written every ``checkpoint_every`` steps and at
the end, and SIGINT or SIGTERM stops it after the current step with the checkpoint saved.
With ``time_limit_s`` the learning-rate schedule runs on whichever of steps and time is further
along, so a run cut short by its time limit still ends with the learning rate annealed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

import cv2
import torch
from torch import nn
from torch.utils.data import DataLoader

from sgdn_ros.backends.torch_backend import resolve_torch_device
from sgdn_ros.core.depth_planes import INPUT_KIND_CHANNELS, INPUT_KINDS
from sgdn_ros.network.checkpoint import save_checkpoint
from sgdn_ros.network.network import PRESETS, SGDN, SGDNConfig, build_sgdn
from sgdn_ros.training.dataset import GraspBatch, GraspSceneDataset, collate_scenes
from sgdn_ros.training.losses import LossParts, set_able_prior, sgdn_loss
from sgdn_ros.training.rgbd_dataset import RgbdSceneDataset
from sgdn_ros.training.run_control import LossLog, StopSignals
from sgdn_ros.training.stored_scenes import SceneStore, StoredSceneDataset

CHECKPOINT_FILE = "checkpoint.pt"
LOSS_LOG_FILE = "losses.csv"
SUMMARY_FILE = "summary.json"
WARMUP_FRACTION = 0.05


def preset_config(preset: str, num_angle_classes: int | None = None) -> SGDNConfig:
    """A preset network, with K replaced when given (a per-class width head follows K)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    config = PRESETS[preset]
    if num_angle_classes is None:
        return config
    per_class_width = config.width_channels == config.num_angle_classes
    return dataclasses.replace(
        config, num_angle_classes=num_angle_classes,
        width_channels=num_angle_classes if per_class_width else 1)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``workers`` None: one DataLoader worker per CPU core but one.
    ``input_kind`` sets the network's input channels and the scenes (module docstring).

    Scene seeds ``[train_seed_start, train_seed_start + steps * batch_size)`` are used;
    keep them away from the evaluation seeds (1,000,000 onwards by default).
    """

    preset: str = "light"
    num_angle_classes: int | None = None
    input_kind: str = "bgr"
    steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    train_seed_start: int = 0
    workers: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    log_every: int = 20
    checkpoint_every: int = 500
    time_limit_s: float | None = None
    max_width_px: float = 200.0
    scene_store: str | None = None  # simulated scenes (`sgdn-ros sim-data`) to train on

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(
                f"input_kind must be one of {', '.join(INPUT_KINDS)}, got {self.input_kind!r}")
        if self.num_angle_classes is not None and self.num_angle_classes < 2:
            raise ValueError(
                f"num_angle_classes must be at least 2 (or None for the preset's), "
                f"got {self.num_angle_classes}")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("learning_rate", "max_width_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.train_seed_start < 0:
            raise ValueError(f"train_seed_start must be >= 0, got {self.train_seed_start}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 (or None: automatic), got {self.workers}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive or None, got {self.time_limit_s}")

    def model_config(self) -> SGDNConfig:
        return dataclasses.replace(preset_config(self.preset, self.num_angle_classes),
                                   input_channels=INPUT_KIND_CHANNELS[self.input_kind])

    def worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        return max((os.cpu_count() or 1) - 1, 0)


@dataclass(frozen=True)
class TrainResult:
    """What a run did. ``losses`` holds the total loss of every completed step.

    ``stop_reason``: "completed", "time limit", or the signal that stopped it ("SIGINT",
    "SIGTERM").
    """

    output_dir: pathlib.Path
    checkpoint_path: pathlib.Path
    loss_log_path: pathlib.Path
    steps_completed: int
    losses: list[float]
    stop_reason: str
    seconds: float
    samples_per_second: float


def learning_rate_at(progress: float, peak: float) -> float:
    """Linear warm-up over the first WARMUP_FRACTION of the run, then cosine decay to 0."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < WARMUP_FRACTION:
        return peak * progress / WARMUP_FRACTION
    decay = (progress - WARMUP_FRACTION) / (1.0 - WARMUP_FRACTION)
    return peak * 0.5 * (1.0 + math.cos(math.pi * decay))


def _init_worker(_worker_id: int) -> None:
    """Ctrl-C reaches the whole process group: workers leave it to the main process, which
    finishes its step and then shuts them down. (SIGTERM keeps its default: the DataLoader
    ends stuck workers with it.) OpenCV runs on one thread, as the workers run in parallel."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def _scene_loader(config: TrainConfig, model_config: SGDNConfig,
                  device: torch.device) -> DataLoader:
    scenes = {"num_scenes": config.steps * config.batch_size,
              "seed_start": config.train_seed_start,
              "num_angle_classes": model_config.num_angle_classes,
              "width_channels": model_config.width_channels,
              "max_width_px": config.max_width_px}
    if config.scene_store is not None:
        dataset = StoredSceneDataset(SceneStore(config.scene_store), **scenes,
                                     input_kind=config.input_kind)
    elif config.input_kind == "bgr":
        dataset = GraspSceneDataset(**scenes)
    else:
        dataset = RgbdSceneDataset(**scenes, input_kind=config.input_kind)
    workers = config.worker_count()
    return DataLoader(
        dataset, batch_size=config.batch_size, shuffle=False, drop_last=True,
        collate_fn=collate_scenes, num_workers=workers, pin_memory=device.type == "cuda",
        worker_init_fn=_init_worker if workers > 0 else None)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; batch-norm parameters and biases get no weight decay (it would only fight BN)."""
    decayed = [p for p in model.parameters() if p.ndim > 1]
    undecayed = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decayed, "weight_decay": config.weight_decay},
         {"params": undecayed, "weight_decay": 0.0}],
        lr=config.learning_rate)


def _autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA GPUs that support it; no gradient scaling is needed with bf16."""
    if not config.amp or device.type != "cuda":
        return None
    if not torch.cuda.is_bf16_supported():
        print("train: this GPU has no bf16; training in float32", flush=True)
        return None
    return torch.bfloat16


def train(config: TrainConfig, output_dir: str | PathLike[str], *,
          command: str | None = None) -> TrainResult:
    """Train from scratch; write checkpoint.pt, losses.csv and summary.json into output_dir.

    ``command`` is recorded in the checkpoint and summary (default: this process's command line).
    """
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    command = command if command is not None else shlex.join(sys.argv)
    device = resolve_torch_device(config.device)
    torch.manual_seed(config.seed)
    model_config = config.model_config()
    model = build_sgdn(model_config)
    set_able_prior(model)
    memory_format = (torch.channels_last if config.channels_last and device.type == "cuda"
                     else torch.contiguous_format)
    model = model.to(device, memory_format=memory_format).train()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels once
    optimizer = _optimizer(model, config)
    autocast_dtype = _autocast_dtype(config, device)
    loader = _scene_loader(config, model_config, device)
    checkpoint_path = output / CHECKPOINT_FILE
    log = LossLog(output / LOSS_LOG_FILE)
    print(f"train: {config.preset} {config.input_kind} (K={model_config.num_angle_classes}, "
          f"width channels {model_config.width_channels}) on {_device_name(device)}, "
          f"{config.steps} steps of {config.batch_size}, {config.worker_count()} workers, "
          f"autocast {autocast_dtype or 'off'}", flush=True)

    def checkpoint_extra(step: int, stop_reason: str) -> dict:
        return {"train_config": dataclasses.asdict(config), "command": command,
                "step": step, "stop_reason": stop_reason}

    started = window_start = time.monotonic()
    stop_reason = "completed"
    with StopSignals() as stop:
        try:
            for step, batch in enumerate(loader, start=1):
                progress = step / config.steps
                if config.time_limit_s is not None:
                    progress = max(progress, (time.monotonic() - started) / config.time_limit_s)
                learning_rate = learning_rate_at(progress, config.learning_rate)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                parts = _train_step(model, optimizer, batch.to(device, non_blocking=True),
                                    memory_format, autocast_dtype)
                log.add(step, learning_rate, parts)
                if step % config.log_every == 0 or step == config.steps:
                    now = time.monotonic()
                    _print_progress(step, config, log.flush(), learning_rate,
                                    _window_samples(step, config) / (now - window_start))
                    window_start = now
                if step % config.checkpoint_every == 0 and step < config.steps:
                    save_checkpoint(checkpoint_path, model, model_config,
                                    checkpoint_extra(step, "periodic"))
                if stop.received:
                    stop_reason = stop.received
                elif (config.time_limit_s is not None
                      and time.monotonic() - started >= config.time_limit_s):
                    stop_reason = "time limit"
                if stop_reason != "completed":
                    break
        except KeyboardInterrupt:
            stop_reason = stop.received or "SIGINT"
        except RuntimeError:
            # A SIGTERM sent to the whole process group also ends the DataLoader workers, and
            # the DataLoader reports their end as an error; the stop was asked for all the same.
            if stop.received is None:
                raise
            stop_reason = stop.received
        finally:
            log.close()
        seconds = time.monotonic() - started
        steps_completed = len(log.totals)
        save_checkpoint(checkpoint_path, model, model_config,
                        checkpoint_extra(steps_completed, stop_reason))
    samples_per_second = steps_completed * config.batch_size / seconds if seconds > 0 else 0.0
    summary = {"train_config": dataclasses.asdict(config), "command": command,
               "device": _device_name(device), "steps_completed": steps_completed,
               "stop_reason": stop_reason, "seconds": round(seconds, 2),
               "samples_per_second": round(samples_per_second, 2),
               "final_loss": log.totals[-1] if log.totals else None}
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"train: {stop_reason} after {steps_completed} steps in {seconds:.1f} s "
          f"({samples_per_second:.1f} samples/s); checkpoint {checkpoint_path}", flush=True)
    return TrainResult(output_dir=output, checkpoint_path=checkpoint_path,
                       loss_log_path=log.path, steps_completed=steps_completed,
                       losses=log.totals, stop_reason=stop_reason, seconds=seconds,
                       samples_per_second=samples_per_second)


def _train_step(model: SGDN, optimizer: torch.optim.Optimizer, batch: GraspBatch,
                memory_format: torch.memory_format,
                autocast_dtype: torch.dtype | None) -> LossParts:
    images = batch.images.contiguous(memory_format=memory_format)
    device_type = images.device.type
    with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        able, angle, width = model(images)
    parts = sgdn_loss(able, angle, width, batch)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    optimizer.step()
    return parts


def _window_samples(step: int, config: TrainConfig) -> int:
    """Samples since the previous log line."""
    previous = (step - 1) // config.log_every * config.log_every
    return (step - previous) * config.batch_size


def _print_progress(step: int, config: TrainConfig, losses: list[float] | None,
                    learning_rate: float, samples_per_second: float) -> None:
    if losses is None:
        return
    total, able, angle, width = losses
    print(f"step {step:>6}/{config.steps}  loss {total:.4f} (able {able:.4f}  angle "
          f"{angle:.4f}  width {width:.4f})  lr {learning_rate:.2e}  "
          f"{samples_per_second:.1f} samples/s", flush=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="sgdn-ros train",
        description="Train SGDN on generated grasp scenes; writes checkpoint.pt, losses.csv "
                    "and summary.json. SIGINT/SIGTERM stop after the current step, saving.")
    parser.add_argument("output_dir", type=pathlib.Path, help="folder for the run's files")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=defaults.preset)
    parser.add_argument("--classes", type=int, default=None, dest="num_angle_classes",
                        help="angle classes K (default: the preset's)")
    parser.add_argument("--input-kind", choices=INPUT_KINDS, default=defaults.input_kind,
                        help="bgr: colour, on the 2-D grasp scenes; depth, depth_bgr (depth "
                             "first): on rendered RGB-D scenes")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate,
                        dest="learning_rate", help="peak learning rate (AdamW)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the weight initialisation")
    parser.add_argument("--train-seed-start", type=int, default=defaults.train_seed_start,
                        help="first scene seed")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="DataLoader workers (default: CPU cores - 1)")
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--no-amp", action="store_false", dest="amp",
                        help="train in float32 on CUDA (default: bf16 autocast)")
    parser.add_argument("--no-channels-last", action="store_false", dest="channels_last",
                        help="keep NCHW on CUDA (default: channels-last)")
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--time-limit-s", type=float, default=defaults.time_limit_s,
                        help="stop (and anneal the learning rate) by this many seconds")
    parser.add_argument("--max-width-px", type=float, default=defaults.max_width_px,
                        help="grasp width that a width output of 1 stands for")
    parser.add_argument("--scenes", dest="scene_store", default=None,
                        help="train on this scene store (`sgdn-ros sim-data`) instead of "
                             "generated scenes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``sgdn-ros train``: exit status 0 when the run ends or meets its time limit, 128 + the
    signal number when a signal stopped it (the checkpoint is saved either way)."""
    args = vars(build_parser().parse_args(argv))
    output_dir = args.pop("output_dir")
    try:
        config = TrainConfig(**args)
        resolve_torch_device(config.device)
    except ValueError as error:
        print(f"sgdn-ros train: {error}", file=sys.stderr)
        return 2
    result = train(config, output_dir)
    if result.stop_reason in ("SIGINT", "SIGTERM"):
        return 128 + signal.Signals[result.stop_reason].value
    return 0


if __name__ == "__main__":
    sys.exit(main())
