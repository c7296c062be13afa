"""The parameter table: checks, and that the YAML file and the README agree with it."""

from __future__ import annotations

import ast
import pathlib

import pytest
import yaml

from sgdn_ros.pipeline.parameters import PARAMETERS, PARAMETERS_BY_NAME, defaults, markdown_table

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
    values = config["sgdn_detector"]["ros__parameters"]
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


def test_launch_file_is_valid_python_and_names_existing_files():
    source = (REPO / "launch" / "detect.launch.py").read_text()
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    for name in ("detector.yaml", "sgdn_ros.rviz"):
        assert name in source and (REPO / "config" / name).is_file()
    assert '"detector"' in source, "the launch file must start the installed executable"
