"""The bench's short form through the real node: the sim camera's messages pass the node's
checks (nothing rejected, colour and depth paired), every frame is answered with 3-D grasps
that the gripper executes, and the figures and the attempt strip are written."""

from __future__ import annotations

import json
import re

import cv2
import pytest
from conftest import requires_ros

pytest.importorskip("pybullet", reason="pybullet is not installed: run through scripts/test.sh")


@requires_ros
@pytest.mark.ros  # the node and the sim camera over DDS, reached through sgdn_ros.tools
def test_short_bench_through_the_node(tmp_path, capsys):
    from sgdn_ros.tools.sim_eval import run_sim_eval

    code = run_sim_eval(scenes=2, objects=3, seed=500, split="held_out", planner="node",
                        model_path="", out_dir=tmp_path)
    output = capsys.readouterr().out
    assert code == 0, output
    figures = json.loads((tmp_path / "figures.json").read_text())
    hits, attempts = figures["grasp_success"]
    assert attempts >= 2 and figures["seeds"] == [500, 501]
    assert all(int(key) >= 800 for key in figures["per_object"])  # held-out objects only
    assert cv2.imread(str(tmp_path / "attempts.png")) is not None
    assert "grasp success:" in output and "clearance:" in output
    stopping = (tmp_path / "detector.log").read_text().split("stopping:")[-1]
    counts = {name: int(value) for name, value in re.findall(
        r"(received|processed|dropped|rejected|failed|unmatched|depth rejected) (\d+)",
        stopping)}
    assert counts["rejected"] == 0 and counts["failed"] == 0, stopping
    # Every colour found its depth: the only frames left unmatched are those whose partner a
    # loaded machine lost on the way (best effort, as cameras send), one each at most.
    paired = counts["processed"] + counts["dropped"]
    assert counts.get("unmatched", 0) <= figures["frames_sent"] - paired, (figures, stopping)
    assert counts.get("depth rejected", 0) == 0, stopping
    assert counts["processed"] >= attempts, stopping  # every attempt's frame answered
