"""The ROS side of the parameter table: every parameter reaches either the detector's settings
or the node's options, descriptors carry the table's ranges, changes are checked by the table."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ROS_MISSING

from sgdn_ros.pipeline.parameters import PARAMETERS, PARAMETERS_BY_NAME, defaults

rclpy = pytest.importorskip("rclpy", reason=ROS_MISSING or "")
pytest.importorskip("sgdn_ros.msg", reason=ROS_MISSING or "")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402

from sgdn_ros.ros.parameters import (  # noqa: E402
    NodeOptions,
    applied_later,
    parameter_descriptor,
    values_after,
)


def test_every_parameter_sets_a_detector_setting_or_a_node_option():
    node_options = {field.name for field in dataclasses.fields(NodeOptions)}
    unmapped = {spec.name for spec in PARAMETERS if spec.sets is None}
    assert unmapped == node_options


def test_node_options_take_the_tables_values():
    options = NodeOptions.from_values(defaults())
    assert dataclasses.asdict(options) == {
        name: defaults()[name] for name in dataclasses.asdict(options)}
    qos = options.image_qos()
    assert qos.depth == 1 and qos.reliability == ReliabilityPolicy.BEST_EFFORT
    reliable = NodeOptions.from_values({**defaults(), "qos_reliability": "reliable"})
    assert reliable.image_qos().reliability == ReliabilityPolicy.RELIABLE


def test_descriptors_carry_the_tables_ranges_and_choices():
    threshold = parameter_descriptor(PARAMETERS_BY_NAME["confidence_threshold"])
    assert (threshold.floating_point_range[0].from_value,
            threshold.floating_point_range[0].to_value) == (0.0, 1.0)
    distance = parameter_descriptor(PARAMETERS_BY_NAME["min_distance"])
    assert (distance.integer_range[0].from_value, distance.integer_range[0].to_value) == (1, 320)
    assert "one of: max, peaks" in parameter_descriptor(
        PARAMETERS_BY_NAME["decode_mode"]).additional_constraints


def test_a_change_is_checked_by_the_table_and_other_parameters_pass_through():
    with pytest.raises(ValueError, match="min_distance must be >= 1"):
        values_after(defaults(), [Parameter("min_distance", value=0)])
    values = values_after(defaults(), [Parameter("max_grasps", value=2),
                                       Parameter("use_sim_time", value=True)])
    assert values == {**defaults(), "max_grasps": 2}
    assert applied_later([Parameter("max_grasps", value=2), Parameter("backend", value="torch"),
                          Parameter("autostart", value=True)]) == ["backend", "autostart"]
