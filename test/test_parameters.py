"""The parameter table: checks, the configs built from it, and that the YAML file and the
README agree with it."""

from __future__ import annotations

import ast
import pathlib

import pytest
import yaml

from sgdn_ros.backends import BackendOptions
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.pipeline.parameters import (
    PARAMETERS,
    PARAMETERS_BY_NAME,
    ParameterSpec,
    defaults,
    detector_settings,
    markdown_table,
)
from sgdn_ros.pipeline.settings import DetectorSettings

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_default_passes_its_own_check():
    for spec in PARAMETERS:
        assert spec.check(spec.default) is None, spec.name


@pytest.mark.parametrize("name, value, expected", [
    ("confidence_threshold", 1.5, "<= 1"),
    ("confidence_threshold", -0.1, ">= 0"),
    ("confidence_threshold", float("nan"), "finite"),
    ("confidence_threshold", "high", "must be a double"),
    ("max_grasps", 0, ">= 1"),
    ("max_grasps", 2.5, "must be a int"),
    ("decode_mode", "best", "one of max, peaks"),
    ("backend", "tensorrt-7", "one of"),
    ("mean_bgr", [1.0, 2.0], "3 values"),
    ("mean_bgr", "1,2,3", "list of 3 numbers"),
    ("autostart", 1, "must be a bool"),
])
def test_bad_values_are_rejected_with_a_reason(name, value, expected):
    reason = PARAMETERS_BY_NAME[name].check(value)
    assert reason is not None and name in reason and expected in reason


def test_config_yaml_lists_every_parameter_with_its_default():
    config = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    values = config["/**/sgdn_detector"]["ros__parameters"]
    assert set(values) == set(PARAMETERS_BY_NAME)
    expected = defaults()
    expected["autostart"] = True  # the launch file's YAML starts the node by itself
    for name, value in values.items():
        if isinstance(value, float) or isinstance(expected[name], float):
            assert value == pytest.approx(expected[name]), name
        else:
            assert value == expected[name], name


def test_readme_parameter_table_is_generated_from_the_declarations():
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, (
        "README.md's parameter table is stale: paste the output of "
        "`python -c 'from sgdn_ros.pipeline.parameters import markdown_table; "
        "print(markdown_table())'`")


def test_the_parameters_file_applies_under_any_namespace():
    """Keyed `/**/sgdn_detector`: with launch's namespace:=robot1 a `sgdn_detector:` key would
    be silently ignored (issue 11)."""
    config = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())
    assert list(config) == ["/**/sgdn_detector"]


def test_launch_file_is_valid_python_and_names_existing_files():
    source = (REPO / "launch" / "detect.launch.py").read_text()
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    for name in ("detector.yaml", "sgdn_ros.rviz"):
        assert name in source and (REPO / "config" / name).is_file()
    assert '"detector"' in source, "the launch file must start the installed executable"


MAPPED = [spec for spec in PARAMETERS if spec.sets is not None]


def as_parameter_value(setting):
    return list(setting) if isinstance(setting, tuple) else setting


def another_valid_value(spec: ParameterSpec):
    """A value other than the default that the table accepts."""
    if spec.choices:
        return next(choice for choice in spec.choices if choice != spec.default)
    if spec.type_name == "bool":
        return not spec.default
    if spec.type_name == "int":
        return spec.default + 1 if spec.maximum is None or spec.default < spec.maximum \
            else spec.default - 1
    if spec.type_name == "double":
        # Half as much again keeps interdependent settings (a step below its maximum) valid.
        larger = spec.default * 1.5
        if larger != spec.default and (spec.maximum is None or larger <= spec.maximum):
            return larger
        return (spec.default + spec.maximum) / 2 if spec.maximum is not None else spec.default + 1
    if spec.type_name == "string":
        return f"{spec.default}changed"
    return [value + 1.0 for value in spec.default]


def test_the_tables_defaults_are_the_config_defaults():
    settings = detector_settings(defaults())
    assert settings == DetectorSettings()
    assert (settings.preprocess, settings.decode, settings.backend_options) == (
        PreprocessConfig(), DecodeConfig(), BackendOptions())
    for spec in MAPPED:
        assert spec.default == as_parameter_value(DetectorSettings().value_at(spec.sets)), spec.name


@pytest.mark.parametrize("spec", MAPPED, ids=lambda spec: spec.name)
def test_every_mapped_parameter_reaches_its_setting_and_only_it(spec):
    value = another_valid_value(spec)
    assert spec.check(value) is None
    settings = detector_settings({**defaults(), spec.name: value})
    assert as_parameter_value(settings.value_at(spec.sets)) == value
    for other in MAPPED:
        if other is not spec:
            assert settings.value_at(other.sets) == DetectorSettings().value_at(other.sets), \
                other.name


def test_the_settings_refuse_with_the_configs_reason():
    with pytest.raises(ValueError, match="min_distance must be an integer >= 1"):
        detector_settings({**defaults(), "min_distance": 0})


def test_a_parameter_takes_its_default_from_its_setting_or_has_its_own():
    with pytest.raises(ValueError, match="exactly one"):
        ParameterSpec("confidence_threshold", "both", sets="decode.confidence_threshold",
                      default=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        ParameterSpec("nothing", "neither")
    with pytest.raises(AttributeError):
        ParameterSpec("typo", "a path that names no setting", sets="decode.threshold")


def test_int8_is_refused_with_its_reason_not_just_the_choices():
    """Issue 12, defect 6: the node's parameter gives TensorRT's reason for refusing INT8."""
    reason = PARAMETERS_BY_NAME["precision"].check("int8")
    assert reason is not None and "calibration" in reason and "Q/DQ" in reason
    assert "must be one of fp32, fp16" in PARAMETERS_BY_NAME["precision"].check("fp64")
