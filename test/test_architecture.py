"""The package's shape, checked: the layer contracts (.importlinter), no import cycle between any
two modules, modules short enough to read, and tests that use only public names.

The contracts are checked on the source tree (as `lint-imports` in scripts/test.sh); the graph
checks on the installed package, which also holds the generated messages (scripts/test.sh
builds it from this source tree first).
"""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess

import pytest

import sgdn_ros

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCE = REPO / "sgdn_ros"
MAX_MODULE_LINES = 400
MAX_NODE_LINES = 250
GENERATED_MESSAGES = "sgdn_ros.msg"

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (requirements.txt)")


def _strongly_connected(graph) -> list[set[str]]:
    """Tarjan's algorithm over the module graph; components of two or more modules are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            components.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return components


def test_the_layer_contracts_hold():
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("lint-imports is not installed (it comes with scripts/requirements.txt)")
    result = subprocess.run([lint_imports, str(REPO / ".importlinter")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_only_the_ros_layer_imports_the_generated_messages():
    """The rule .importlinter cannot state: sgdn_ros.msg exists only once colcon built it."""
    graph = grimp.build_graph("sgdn_ros", include_external_packages=False)
    importers = {importer for module in {GENERATED_MESSAGES,
                                         *graph.find_descendants(GENERATED_MESSAGES)}
                 for importer in graph.find_modules_that_directly_import(module)}
    outside = sorted(importer for importer in importers
                     if not importer.startswith(("sgdn_ros.ros.", GENERATED_MESSAGES)))
    assert importers and outside == []


def test_no_import_cycle_between_any_two_modules():
    graph = grimp.build_graph("sgdn_ros", include_external_packages=False)
    # The message package is rosidl's generated code, not ours (its __init__ and its modules
    # import each other).
    for generated in sorted(graph.find_descendants(GENERATED_MESSAGES)):
        graph.remove_module(generated)
    graph.remove_module(GENERATED_MESSAGES)
    cycles = [sorted(component) for component in _strongly_connected(graph)
              if len(component) > 1]
    assert cycles == [], f"modules importing each other (directly or round about): {cycles}"


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert [component for component in _strongly_connected(graph)
            if len(component) > 1] == [{"a", "b", "c"}]


@pytest.mark.parametrize("path", sorted(SOURCE.rglob("*.py")),
                         ids=lambda path: str(path.relative_to(REPO)))
def test_modules_stay_short(path):
    lines = len(path.read_text().splitlines())
    limit = MAX_NODE_LINES if path == SOURCE / "ros" / "node.py" else MAX_MODULE_LINES
    assert lines <= limit, f"{path.relative_to(REPO)} has {lines} lines; split it by concern"


def test_the_installed_package_is_this_source_tree():
    """Otherwise the checks above would judge a stale copy."""
    installed = pathlib.Path(sgdn_ros.__file__).resolve().parent
    for path in SOURCE.rglob("*.py"):
        copy = installed / path.relative_to(SOURCE)
        assert copy.is_file() and copy.read_bytes() == path.read_bytes(), (
            f"{copy} differs from {path}; run scripts/setup_env.sh")


def _private_imports(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            local = node.module.startswith("sgdn_ros") or node.module.startswith("test_")
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if local and alias.name.startswith("_")]
    return found


@pytest.mark.parametrize("path", sorted((REPO / "test").glob("*.py")), ids=lambda p: p.name)
def test_tests_use_public_names_only(path):
    assert _private_imports(path) == []
