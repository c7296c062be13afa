"""Training on generated scenes: the data set feeds what the node feeds, the loss looks where it
should, a short CPU run lowers the loss and leaves a checkpoint that loads, evaluates through the
node's pipeline (checkpoint and ONNX export alike), and SIGTERM stops a run with its checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency (training, torch)")

from sgdn_ros.backends import create_backend  # noqa: E402
from sgdn_ros.backends.torch_backend import TorchBackend  # noqa: E402
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor  # noqa: E402
from sgdn_ros.network.checkpoint import load_checkpoint  # noqa: E402
from sgdn_ros.network.export import export_onnx  # noqa: E402
from sgdn_ros.network.network import PRESETS, build_sgdn  # noqa: E402
from sgdn_ros.training import evaluate, losses, train  # noqa: E402
from sgdn_ros.training.dataset import GraspSceneDataset, collate_scenes  # noqa: E402
from sgdn_ros.training.grasp_scenes import generate_grasp_scene  # noqa: E402
from sgdn_ros.training.labels import label_maps  # noqa: E402

PIXELS = 320 * 320


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """30 steps of 2 scenes on the CPU, light network: a few seconds."""
    config = train.TrainConfig(preset="light", steps=30, batch_size=2, learning_rate=2e-3,
                               seed=0, workers=0, device="cpu", log_every=10)
    output = tmp_path_factory.mktemp("train")
    return config, train.train(config, output, command="sgdn-ros train test")


def test_items_are_the_published_input_and_sparse_labels_of_their_seed():
    dataset = GraspSceneDataset(3, seed_start=500, num_angle_classes=18, width_channels=1)
    item = dataset[2]
    again = GraspSceneDataset(3, seed_start=500, num_angle_classes=18, width_channels=1)[2]
    assert torch.equal(item.images, again.images) and torch.equal(item.angle, again.angle)
    scene = generate_grasp_scene(502)
    planes, _ = Preprocessor(PreprocessConfig())(scene.image)
    np.testing.assert_array_equal(item.images.numpy(), planes)
    labels = label_maps(scene.rectangles, 320, 320, 18)
    np.testing.assert_array_equal(item.able.numpy()[0, 0], labels.able)
    rows, cols = np.divmod(item.positive_index.numpy(), 320)
    assert len(rows) == int(labels.able.sum()) > 0
    np.testing.assert_array_equal(item.angle.numpy(), labels.angle[:, rows, cols].T)
    np.testing.assert_array_equal(item.width.numpy()[:, 0], labels.width[:, rows, cols].max(0))
    assert (item.width.numpy() > 0).all()


def test_per_class_width_targets_are_masked_to_the_valid_classes():
    item = GraspSceneDataset(1, seed_start=7, num_angle_classes=24, width_channels=24)[0]
    assert item.width.shape == item.angle.shape == (item.positive_index.numel(), 24)
    np.testing.assert_array_equal(item.width_mask.numpy(), item.angle.numpy())
    assert ((item.width.numpy() > 0) == (item.angle.numpy() > 0)).all()


def test_collated_pixel_indices_point_at_each_scenes_own_positives():
    dataset = GraspSceneDataset(2, seed_start=30, num_angle_classes=18, width_channels=1)
    items = [dataset[0], dataset[1]]
    batch = collate_scenes(items)
    assert batch.images.shape == (2, 3, 320, 320)
    first = items[0].positive_index.numel()
    assert (batch.positive_index[first:] >= PIXELS).all()
    assert (batch.positive_index[:first] < PIXELS).all()
    assert (batch.able.flatten()[batch.positive_index] == 1).all()
    assert int(batch.able.sum()) == batch.positive_index.numel()


def _logits_matching(batch, config, margin: float):
    """Logits of the right sign everywhere, `margin` strong, and width logits equal to the
    targets' (so every part of the loss is near its minimum)."""
    able = (batch.able * 2 - 1) * margin
    angle = torch.full((2, config.num_angle_classes, 320, 320), -margin)
    width = torch.zeros((2, config.width_channels, 320, 320))
    images, pixels = np.divmod(batch.positive_index.numpy(), PIXELS)
    rows, cols = np.divmod(pixels, 320)
    angle[images, :, rows, cols] = (batch.angle * 2 - 1) * margin
    width[images, :, rows, cols] = torch.logit(batch.width, eps=1e-6)
    return able, angle, width


def test_loss_is_near_zero_for_right_logits_and_reads_angle_and_width_only_at_grasps():
    config = PRESETS["light"]
    dataset = GraspSceneDataset(2, seed_start=40, num_angle_classes=18, width_channels=1)
    batch = collate_scenes([dataset[0], dataset[1]])
    able, angle, width = _logits_matching(batch, config, margin=12.0)
    right = losses.sgdn_loss(able, angle, width, batch)
    assert float(right.total) < 1e-3
    wrong = losses.sgdn_loss(-able, -angle, width + 3.0, batch)
    assert min(float(wrong.able), float(wrong.angle), float(wrong.width)) > 0.1
    off_grasp = torch.ones((2, 1, 320, 320), dtype=torch.bool)
    off_grasp.view(-1)[batch.positive_index] = False
    changed = losses.sgdn_loss(able, angle + 5.0 * off_grasp, width - 5.0 * off_grasp, batch)
    assert float(changed.angle) == pytest.approx(float(right.angle))
    assert float(changed.width) == pytest.approx(float(right.width))


def test_learning_rate_warms_up_then_anneals_to_zero():
    peak = 1e-3
    rates = [train.learning_rate_at(step / 100, peak) for step in range(101)]
    warmup = round(train.WARMUP_FRACTION * 100)
    assert rates[0] == 0 and rates[warmup] == pytest.approx(peak)
    assert all(a <= b for a, b in zip(rates[:warmup], rates[1:warmup + 1]))
    assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1:]))
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_bad_settings_are_refused_with_the_reason(capsys):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        train.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="preset must be one of"):
        train.TrainConfig(preset="vgg")
    assert train.main(["unused_dir", "--steps", "0"]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err


def test_a_short_run_lowers_the_loss_and_logs_every_step(tiny_run):
    config, result = tiny_run
    assert result.stop_reason == "completed"
    assert result.steps_completed == len(result.losses) == config.steps
    first, last = statistics.mean(result.losses[:5]), statistics.mean(result.losses[-5:])
    assert last < 0.9 * first, f"loss went from {first:.3f} to {last:.3f}"
    rows = result.loss_log_path.read_text().splitlines()
    assert rows[0] == "step,loss,able,angle,width,learning_rate" and len(rows) == config.steps + 1
    summary = json.loads((result.output_dir / train.SUMMARY_FILE).read_text())
    assert summary["steps_completed"] == config.steps
    assert summary["command"] == "sgdn-ros train test"


def test_the_checkpoint_loads_back_with_its_training_record(tiny_run):
    config, result = tiny_run
    model, model_config = load_checkpoint(result.checkpoint_path)
    assert model_config == PRESETS["light"]
    extra = torch.load(result.checkpoint_path, weights_only=True)["extra"]
    assert extra["train_config"] == dataclasses.asdict(config)
    assert (extra["command"], extra["step"], extra["stop_reason"]) == (
        "sgdn-ros train test", config.steps, "completed")
    torch.manual_seed(config.seed)
    untrained = build_sgdn(model_config)
    final_conv = model.decoder.able_conv[-1].weight
    assert not torch.equal(final_conv, untrained.decoder.able_conv[-1].weight)


def test_evaluation_runs_the_node_pipeline_on_checkpoint_and_onnx_alike(tiny_run, tmp_path,
                                                                         capsys):
    _config, result = tiny_run
    with TorchBackend(result.checkpoint_path, device="cpu") as backend:
        by_torch = evaluate.evaluate_model(backend, num_scenes=4)
    assert by_torch.images == 4 and 0 <= by_torch.correct <= 4
    assert by_torch.accuracy == by_torch.correct / 4
    model, model_config = load_checkpoint(result.checkpoint_path)
    assert evaluate.evaluate_model(model, num_scenes=4) == by_torch
    onnx_path = export_onnx(model, model_config, tmp_path / "tiny.onnx")
    with create_backend("onnxruntime", onnx_path) as backend:
        assert evaluate.evaluate_model(backend, num_scenes=4).correct == by_torch.correct
    assert evaluate.main([str(onnx_path), "--scenes", "2", "--seed-start", "2000000"]) == 0
    printed = capsys.readouterr().out
    assert "image-wise grasp accuracy" in printed and "command: " in printed
    assert "onnxruntime-cpu" in printed and "scenes 2000000..2000001" in printed


def test_evaluate_refuses_a_missing_model(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "missing.pt"), "--scenes", "1"]) == 2
    assert "not found" in capsys.readouterr().err


def test_sigterm_stops_after_the_step_and_saves_the_checkpoint(tmp_path):
    """A real process with DataLoader workers, stopped as a batch system stops it."""
    command = [sys.executable, "-m", "sgdn_ros.training.train", str(tmp_path), "--steps",
               "100000", "--batch-size", "1", "--workers", "2", "--device", "cpu",
               "--log-every", "1"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=environment)
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if line.startswith("step "):
                process.send_signal(signal.SIGTERM)
                break
        output.extend(process.stdout)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM, "".join(output)
    finally:
        if process.poll() is None:
            process.kill()
    summary = json.loads((tmp_path / train.SUMMARY_FILE).read_text())
    assert summary["stop_reason"] == "SIGTERM" and 1 <= summary["steps_completed"] < 100000
    _model, config = load_checkpoint(tmp_path / train.CHECKPOINT_FILE)
    assert config == PRESETS["light"]
