"""Stopping the installed detector (issue 11, items 1-3): SIGINT and SIGTERM in every state
(idle with a 0.05 s stats timer, flooded, while the model loads, during a long inference) and
the lifecycle shutdown transition end the `detector` process by itself with exit code 0, with
no traceback, no ERROR line and no "Failed to publish" (rosout or a publisher whose context
went first), and with final counts that sum; the frame in inference is published first.

Each stop is a fresh process over DDS, driven by the reliability suite's own stop routine
(`sgdn_ros.tools.torture_stops`, whose judge `stop_problems` is tested in test_torture.py).
"""

from __future__ import annotations

import signal

import pytest
from conftest import ROS_MISSING

pytestmark = pytest.mark.skipif(ROS_MISSING is not None, reason=ROS_MISSING or "")

STATES = ("idle", "flood", "configure", "inference")


def log_tail(run) -> str:
    """What a failure shows: the judge's findings and the end of the detector's log."""
    lines = run.log.read_text(errors="replace").splitlines()
    return "\n".join([f"problems: {run.problems}", f"log {run.log}:", *lines[-12:]])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from sgdn_ros.ros.session import RosSession
    from sgdn_ros.tools.torture_stops import StopRig

    with RosSession("test_stops") as session:
        yield StopRig(session, tmp_path_factory.mktemp("stops"), inference_s=1.0, seed=11)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_any_state_ends_the_detector_cleanly(rig, state, number):
    from sgdn_ros.tools.torture_stops import stop_once

    run = stop_once(rig, state, number, 0)
    assert run.exit_code == 0, log_tail(run)
    assert run.problems == [], log_tail(run)
    assert f"stopping ({signal.Signals(number).name})" in run.log.read_text()
    if state == "inference":
        assert run.observed, f"the frame in inference was not published\n{log_tail(run)}"


def test_the_lifecycle_shutdown_transition_ends_the_process(rig):
    from sgdn_ros.tools.torture_stops import shutdown_transition_once

    run = shutdown_transition_once(rig, 0)
    assert run.observed, f"the shutdown transition was refused\n{log_tail(run)}"
    assert run.exit_code == 0, f"the finalized node did not end its process\n{log_tail(run)}"
    assert run.problems == [], log_tail(run)
    assert "stopping (lifecycle shutdown)" in run.log.read_text()
