"""The multi-camera benchmark's detector level runs here (ONNX Runtime on the CPU, the shipped
light model's dynamic-batch copy and its static original), finds the same grasps in a batch as
in single frames, and reports every camera; the speeds it measures are for
docs/performance.md, not asserted."""

from __future__ import annotations

import re

import pytest

from sgdn_ros.tools.camera_bench import CameraRun, main, report


@pytest.mark.parametrize("static", [False, True])
def test_the_detector_level_reports_every_camera(capsys, tmp_path, static):
    written = tmp_path / "report.md"
    arguments = ["--cameras", "2", "1", "--seconds", "0.6", "--warmup", "0.3",
                 "--write", str(written)]
    assert main([*arguments, "--static"] if static else arguments) == 0
    printed = capsys.readouterr().out
    assert written.read_text() == printed
    assert f"up to {1 if static else 2} frame(s) per inference" in printed
    assert "batched against single frames (2 frames, " in printed
    check = re.search(r" (\d+) grasps\): the same grasps: (\d+) of (\d+) at the same pixel and "
                      r"angle class, largest confidence difference 0 ", printed)
    assert check and int(check[1]) > 0 and check[1] == check[2] == check[3]
    runs, costs = printed.split("One inference of N frames")
    rows = [line for line in runs.splitlines() if line.startswith("| 2 | ")]
    # One summary row for two cameras, then a row for each of them.
    assert len(rows) == 3 and "| 2 | 1 | " in printed
    # What a batch costs, for each batch size the model takes.
    batch_rows = [line.split(" | ") for line in costs.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in batch_rows] == (["| 1"] if static else ["| 1", "| 2"])
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in batch_rows)
    bound = re.search(r"The network alone at 2 frames per inference: ([\d.]+)x the frames per "
                      r"second of one frame at a time", costs)
    assert (bound is None) == static
    if not static:
        one, two = (float(row[2]) for row in batch_rows)
        assert float(bound[1]) == pytest.approx(one / two, rel=0.01, abs=0.01)


def test_the_report_gives_shares_of_the_fair_share():
    run = CameraRun(2, 2.0, [[0.010] * 30, [0.020] * 10])
    assert run.fps() == [15.0, 5.0]
    assert run.fair_shares() == [1.5, 0.5]
    lines = report([CameraRun(1, 2.0, [[0.010] * 20]), run])
    assert "| 2 | 20.0 | 2.00 | 5.0-15.0 | 50 % | 20.0 / 20.0 |" in lines
    assert "| 2 | 1 | 5.0 | 50 % | 20.0 | 20.0 |" in lines
