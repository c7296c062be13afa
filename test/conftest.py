"""Shared fixtures. ROS tests use real rclpy over Fast DDS, kept on loopback in a domain of
this test run's own (an id already set in the environment is respected).

The `ros` marker picks the ROS-facing tests, which scripts/test.sh runs on every ROS 2
distribution it builds (`pytest -m ros`), the whole suite running on the default one. A test
module is ROS-facing when it imports rclpy, launch, ROS messages or interfaces, the generated
sgdn_ros.msg or the ROS layer (sgdn_ros.ros): the rule below marks its tests, so a new node or
launch test module is picked without being listed. A test that reaches ROS only at run time
(a subprocess, an import inside the test) carries @pytest.mark.ros itself."""

from __future__ import annotations

import importlib.util
import pathlib
import types

import pytest

from sgdn_ros.ros.dds_isolation import isolate_dds, remove_stale_shared_memory

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

ROS_ROOTS = frozenset({"rclpy", "launch", "launch_ros", "launch_testing", "launch_testing_ros",
                       "ros2cli", "ament_index_python"})
ROS_LAYER = ("sgdn_ros.ros", "sgdn_ros.msg")


def is_ros_module_name(name: str) -> bool:
    """rclpy, launch, a ROS message or interface package, or this package's ROS layer."""
    root = name.split(".")[0]
    return (root in ROS_ROOTS or root.endswith(("_msgs", "_interfaces"))
            or any(name == layer or name.startswith(layer + ".") for layer in ROS_LAYER))


def is_ros_facing(module: types.ModuleType) -> bool:
    """Whether a test module imports anything ROS (modules, or names taken from them), or
    ``ROS_MISSING`` to skip without ROS: the tests that start the installed detector or
    ``ros2 launch`` in a subprocess import nothing of ROS themselves."""
    if "ROS_MISSING" in vars(module):
        return True
    for value in vars(module).values():
        name = (value.__name__ if isinstance(value, types.ModuleType)
                else getattr(value, "__module__", None))
        if isinstance(name, str) and is_ros_module_name(name):
            return True
    return False


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "ros: ROS-facing (node over DDS, the installed executable, messages, "
        "launch); run on every ROS 2 distribution by scripts/test.sh")


def pytest_sessionfinish(session, exitstatus) -> None:
    """The detector processes the tests started leave their Fast DDS segments in /dev/shm."""
    remove_stale_shared_memory()


def pytest_collection_modifyitems(items) -> None:
    facing: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module.__name__ not in facing:
            facing[module.__name__] = is_ros_facing(module)
        if facing[module.__name__]:
            item.add_marker(pytest.mark.ros)


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
