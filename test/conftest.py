"""Shared fixtures. ROS tests use real rclpy over Fast DDS, kept on loopback in a domain of
this test run's own (an id already set in the environment is respected)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

from sgdn_ros.ros.dds_isolation import isolate_dds

DOMAIN_ID = isolate_dds()

ROS_MISSING = None
if importlib.util.find_spec("rclpy") is None:
    ROS_MISSING = "rclpy is not installed: run the tests through scripts/test.sh"
elif importlib.util.find_spec("sgdn_ros.msg") is None:
    ROS_MISSING = ("sgdn_ros.msg is not built: run the tests through scripts/test.sh, which "
                   "builds the package with colcon")


def pytest_report_header(config) -> list[str]:
    lines = [f"DDS: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID={DOMAIN_ID}"]
    if ROS_MISSING:
        lines.append(f"ROS tests skipped: {ROS_MISSING}")
    return lines


requires_ros = pytest.mark.skipif(ROS_MISSING is not None, reason=ROS_MISSING or "")


@pytest.fixture(scope="session")
def model_k120(tmp_path_factory) -> pathlib.Path:
    from sgdn_ros.models.synthetic import save_synthetic_sgdn_model

    return save_synthetic_sgdn_model(
        tmp_path_factory.mktemp("models") / "synthetic_k120.onnx", num_angle_classes=120)


@pytest.fixture
def ros_context():
    """A fresh rclpy context per test, shut down afterwards."""
    if ROS_MISSING:
        pytest.skip(ROS_MISSING)
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        context.shutdown()
