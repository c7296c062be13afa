"""The reliability suite (`sgdn-ros torture`): its short form passes against the installed
detector (the CI form, about two minutes), and its parts judge what they claim to judge: the
stop checker catches each kind of bad stop, the fuzz's broken frames are broken in the way
they say and its well-formed ones are not, the slow model answers as the original does."""

from __future__ import annotations

import collections
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROS_MISSING

from sgdn_ros.core.frames import raw_image_problem
from sgdn_ros.tools.torture_fuzz import DEFECTS, FuzzFrames
from sgdn_ros.tools.torture_report import final_counts, stop_problems

CLEAN_STOP = ("[INFO] [1.0] [sgdn_detector]: active: listening on /image_raw\n"
              "[INFO] [2.0] [sgdn_detector]: stopping (SIGTERM): received 9, processed 5, "
              "dropped 2 (stale), rejected 1 (bad image), failed 1; latency p50 3.0 ms\n")


def test_the_stop_checker_passes_a_clean_stop_and_reads_its_counts():
    assert stop_problems(CLEAN_STOP) == []
    assert final_counts(CLEAN_STOP) == {"received": 9, "processed": 5, "dropped": 2,
                                        "rejected": 1, "failed": 1}


@pytest.mark.parametrize("bad_line", [
    "Traceback (most recent call last):",
    "[ERROR] [1.5] [sgdn_detector]: processing a frame failed: RCLError('Failed to publish')",
    "Failed to publish log message to rosout: publisher's context is invalid",
    "terminate called after throwing an instance of 'rclcpp::exceptions::RCLError'",
])
def test_the_stop_checker_catches_every_kind_of_bad_stop(bad_line):
    assert stop_problems(CLEAN_STOP + bad_line + "\n") == [bad_line]


def test_the_stop_checker_wants_a_final_line_whose_counts_sum():
    assert stop_problems("[INFO] [1.0] [sgdn_detector]: active\n") == [
        "no final 'stopping (...)' line"]
    unbalanced = CLEAN_STOP.replace("received 9", "received 10")
    assert stop_problems(unbalanced)[0].startswith("final counts do not sum")


def test_fuzzed_frames_are_broken_exactly_as_labelled():
    frames = [frame for generator in (FuzzFrames(seed) for seed in range(3))
              for frame in (generator.next() for _ in range(1000))]
    assert set(collections.Counter(frame.defect for frame in frames)) == {None, *DEFECTS}
    for frame in frames:
        problem = raw_image_problem(frame.height, frame.width, frame.step, frame.encoding,
                                    frame.size)
        assert (problem is None) == (frame.defect is None), (frame, problem)
    sizes = [frame.size for frame in frames if frame.defect is None]
    assert max(sizes) > 1_000_000 and min(sizes) < 320 * 320 * 3


def test_the_slow_model_answers_as_the_original_only_later(model_k120, tmp_path):
    import onnxruntime

    from sgdn_ros.tools.torture_model import save_slow_model

    seconds = save_slow_model(model_k120, tmp_path / "slow.onnx", 0.3)
    assert seconds > 0.1
    frame = np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)
    original, slow = (onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                      for path in (model_k120, tmp_path / "slow.onnx"))
    for expected, got in zip(original.run(None, {"input": frame}),
                             slow.run(None, {"input": frame})):
        np.testing.assert_array_equal(got, expected)
    assert slow.get_modelmeta().custom_metadata_map == original.get_modelmeta().custom_metadata_map


@pytest.mark.skipif(ROS_MISSING is not None, reason=ROS_MISSING or "")
def test_the_short_torture_passes(tmp_path):
    """The CI form of the suite, as a user runs it: every figure within its bound."""
    command = shutil.which("sgdn-ros")
    assert command is not None, "the installed sgdn-ros command is not on PATH"
    result = subprocess.run([command, "torture", "--short", "--work-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "torture: passed" in output and "| phase | figure | value | bound | held |" in output
    logs = sorted(pathlib.Path(tmp_path).glob("*.log"))
    assert len(logs) >= 15, logs
