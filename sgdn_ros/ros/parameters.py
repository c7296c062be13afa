"""The ROS side of the parameter table (``sgdn_ros.pipeline.parameters``): descriptors with the
table's ranges, declaration that survives a bad override, checking a change before it is taken,
and the options that only the node itself uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from sgdn_ros.pipeline.parameters import (
    APPLIES_AT_RUNTIME,
    PARAMETERS,
    PARAMETERS_BY_NAME,
    ParameterSpec,
    ParameterValue,
)


def parameter_descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """What `ros2 param describe` shows: the description, choices or when it applies, range."""
    descriptor = ParameterDescriptor(
        description=spec.description,
        additional_constraints=(
            f"one of: {', '.join(spec.choices)}" if spec.choices
            else f"takes effect at {spec.applies}"))
    if spec.type_name == "double" and spec.minimum is not None and spec.maximum is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    if spec.type_name == "int" and spec.minimum is not None and spec.maximum is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.minimum), to_value=int(spec.maximum), step=0)]
    return descriptor


def declare_parameters(node: Node) -> None:
    """Declare every parameter of the table on ``node``."""
    for spec in PARAMETERS:
        _declare(node, spec)


def _declare(node: Node, spec: ParameterSpec) -> None:
    """A bad override is reported and replaced by the default, so a typo in a YAML file costs
    one log line, not the node."""
    descriptor = parameter_descriptor(spec)
    try:
        _declare_with_default(node, spec, descriptor, ignore_override=False)
    except (rclpy.exceptions.InvalidParameterValueException,
            rclpy.exceptions.InvalidParameterTypeException) as error:
        node.get_logger().error(
            f"parameter {spec.name}: {error}; using the default {spec.default!r}")
        _declare_with_default(node, spec, descriptor, ignore_override=True)
        return
    reason = spec.check(node.get_parameter(spec.name).value)
    if reason is not None:
        node.get_logger().error(f"{reason}; using the default {spec.default!r}")
        node.set_parameters([_default_parameter(spec)])


def _declare_with_default(node: Node, spec: ParameterSpec, descriptor: ParameterDescriptor,
                          ignore_override: bool) -> None:
    """An empty string list (``cameras``) has no type rclpy can tell from the value (it
    guesses a byte array): declare the type, then set the default where no override gave one."""
    if spec.type_name != "string[]":
        node.declare_parameter(spec.name, spec.default, descriptor, ignore_override)
        return
    node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor, ignore_override)
    if node.get_parameter_or(spec.name).type_ == Parameter.Type.NOT_SET:
        node.set_parameters([_default_parameter(spec)])


def _default_parameter(spec: ParameterSpec) -> Parameter:
    if spec.type_name == "string[]":
        return Parameter(spec.name, Parameter.Type.STRING_ARRAY, list(spec.default))
    return Parameter(spec.name, value=spec.default)


def parameter_values(node: Node) -> dict[str, ParameterValue]:
    """The node's current value of every parameter of the table, by name."""
    return {spec.name: node.get_parameter(spec.name).value for spec in PARAMETERS}


def values_after(current: Mapping[str, ParameterValue],
                 parameters: Sequence[Parameter]) -> dict[str, ParameterValue]:
    """``current`` with the table's parameters among ``parameters`` changed; ValueError with
    the table's reason for the first value it refuses."""
    changed = {parameter.name: parameter.value for parameter in parameters
               if parameter.name in PARAMETERS_BY_NAME}
    for name, value in changed.items():
        reason = PARAMETERS_BY_NAME[name].check(value)
        if reason is not None:
            raise ValueError(reason)
    return {**current, **changed}


def applied_later(parameters: Sequence[Parameter]) -> list[str]:
    """Names among ``parameters`` whose new value waits for the next configure (or start)."""
    return [parameter.name for parameter in parameters
            if parameter.name in PARAMETERS_BY_NAME
            and PARAMETERS_BY_NAME[parameter.name].applies != APPLIES_AT_RUNTIME]


@dataclass(frozen=True)
class NodeOptions:
    """The table's parameters that do not configure the detector (no ``sets``) but the node's
    topics and timers; each field is the parameter of the same name."""

    image_transport: str
    qos_reliability: str
    qos_depth: int
    use_depth: bool
    depth_scale: float
    depth_slop_s: float
    depth_qos_reliability: str
    camera_info_qos_reliability: str
    cameras: Sequence[str]
    max_batch: int
    heatmap: str
    stats_period_s: float
    autostart: bool

    @classmethod
    def from_values(cls, values: Mapping[str, ParameterValue]) -> NodeOptions:
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})

    def image_qos(self) -> QoSProfile:
        return _qos(self.qos_reliability, self.qos_depth)

    def depth_qos(self) -> QoSProfile:
        return _qos(self.depth_qos_reliability, self.qos_depth)

    def camera_info_qos(self) -> QoSProfile:
        return _qos(self.camera_info_qos_reliability, 1)


def _qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last with the parameter's reliability (`best_effort` or `reliable`)."""
    policy = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
              else ReliabilityPolicy.RELIABLE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)
