"""TensorRT engine builds and the engine cache, for real with whichever TensorRT imports.

CI has TensorRT-RTX (``tensorrt_rtx``), whose builder runs on the CPU: parse, build, cache
write, cache hit, rebuild on a changed key, recovery from damaged plans, on the small synthetic
model (K = 18) and on a full ResNet-101 SGDN export (K = 120, random weights). Running an engine
needs a GPU TensorRT supports and is not tested here.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import types

import onnx
import pytest
from onnx import TensorProto, helper

from sgdn_ros.backends.tensorrt.engine import get_engine
from sgdn_ros.backends.tensorrt.engine_cache import (
    CachedPlanError,
    EngineIO,
    EngineKey,
    PlanRecord,
    default_cache_dir,
    plan_problem,
    read_record,
    sidecar_path,
)
from sgdn_ros.backends.tensorrt.errors import EngineBuildError, TensorRTUnavailable
from sgdn_ros.backends.tensorrt.gpu_identity import GPU_SOURCES, NO_GPU, detect_gpu
from sgdn_ros.backends.tensorrt.module import (
    MIN_TENSORRT,
    MODULE_NAMES,
    RTX_MODULE,
    TensorRTModule,
    check_supported,
    load_tensorrt,
)
from sgdn_ros.backends.tensorrt.onnx_identity import onnx_identity
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.tools.engine_commands import add_engine_commands

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

try:
    TRT = load_tensorrt()
    TRT_MISSING = ""
except TensorRTUnavailable as error:
    TRT, TRT_MISSING = None, f"no usable TensorRT: {error}"
requires_tensorrt = pytest.mark.skipif(TRT is None, reason=TRT_MISSING)


class LogLines(list):
    """The log lines one test's builds emit."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def about(self, word: str) -> list[str]:
        return [line for line in self if word in line]


@pytest.fixture(scope="module")
def synthetic_k18(tmp_path_factory) -> pathlib.Path:
    return save_synthetic_sgdn_model(
        tmp_path_factory.mktemp("models") / "synthetic_k18.onnx", num_angle_classes=18)


@pytest.fixture
def model_copy(synthetic_k18, tmp_path) -> pathlib.Path:
    """The synthetic model at a path of this test's own (the cache slot follows the path)."""
    path = tmp_path / "model.onnx"
    path.write_bytes(synthetic_k18.read_bytes())
    return path


def _key(**changes: object) -> EngineKey:
    fields = dict(onnx_sha256="ab" * 32, onnx_inputs="input:float32[1,3,320,320]",
                  module="tensorrt", module_version="10.3.0.26", cuda_major="12",
                  gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                  platform="Linux-x86_64", precision="fp32", precision_method="fp32",
                  workspace_mb=1024, optimization_level="default", max_batch=1)
    return EngineKey(**{**fields, **changes})


# Without TensorRT: settings, keys, sidecars, module loading.

def test_int8_is_refused_with_the_reason_and_the_alternatives() -> None:
    with pytest.raises(ValueError, match="'int8' is not supported.*calibration.*Q/DQ.*fp16"):
        EngineSettings(precision="int8")
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16"):
        EngineSettings(precision="bf16")
    with pytest.raises(ValueError, match="workspace_mb must be a positive integer"):
        EngineSettings(workspace_mb=0)
    with pytest.raises(ValueError, match="optimization_level must be None"):
        EngineSettings(optimization_level=6)


def test_key_names_what_changed_and_digests_canonically() -> None:
    old, new = _key(module_version="10.3.0.26"), _key(module_version="10.4.0.26",
                                                      workspace_mb=512)

    assert new.differences(old) == ["module_version: 10.3.0.26 -> 10.4.0.26",
                                    "workspace_mb: 1024 -> 512"]
    assert old.digest() == _key().digest() != new.digest()
    assert EngineKey.from_dict(json.loads(json.dumps(new.as_dict()))) == new


def test_sidecar_round_trips_and_rejects_what_it_cannot_read() -> None:
    record = PlanRecord(key=_key(), plan_bytes=10, plan_sha256="cd" * 32,
                        io=(EngineIO("input", "input", (1, 3, 320, 320), "float32"),),
                        build_seconds=1.5, built_at="2026-11-25T12:00:00+00:00",
                        onnx_path="/models/sgdn.onnx")

    assert PlanRecord.from_json(record.to_json()) == record
    with pytest.raises(CachedPlanError, match="unreadable metadata"):
        PlanRecord.from_json("{")
    with pytest.raises(CachedPlanError, match="format"):
        PlanRecord.from_json(record.to_json().replace("sgdn_ros.engine.v1", "other.v9"))
    broken = json.loads(record.to_json())
    del broken["key"]["gpu_name"]
    with pytest.raises(CachedPlanError, match="fields"):
        PlanRecord.from_json(json.dumps(broken))


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "sgdn_ros" / "engines"


def test_tensorrt_without_name_based_io_is_refused_naming_the_minimum() -> None:
    """What TensorRT 8.4 reports: no ICudaEngine.num_io_tensors."""
    old = TensorRTModule(module=types.ModuleType("tensorrt"), name="tensorrt",
                         version="8.4.3.1", features=frozenset({"explicit_batch_flag"}),
                         cuda_major="11")
    with pytest.raises(TensorRTUnavailable, match=rf"8\.4\.3\.1 is too old.*{MIN_TENSORRT}"):
        check_supported(old)


def test_module_imports_and_explains_itself_without_any_tensorrt() -> None:
    script = (
        "import sys\n"
        "sys.modules['tensorrt'] = sys.modules['tensorrt_rtx'] = None\n"
        "import sgdn_ros.tools.engine_commands\n"
        "from sgdn_ros.backends.tensorrt.errors import TensorRTUnavailable\n"
        "from sgdn_ros.backends.tensorrt.module import load_tensorrt\n"
        "assert 'onnx' not in sys.modules, 'onnx imported at module import'\n"
        "try:\n"
        "    load_tensorrt()\n"
        "except TensorRTUnavailable as error:\n"
        "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})

    assert result.returncode == 0, result.stderr
    assert "no TensorRT module imports (tensorrt:" in result.stdout
    assert "tensorrt_rtx:" in result.stdout and f">= {MIN_TENSORRT}" in result.stdout


def test_onnx_identity_is_the_files_sha256_and_its_static_inputs(synthetic_k18,
                                                                  tmp_path) -> None:
    assert onnx_identity(synthetic_k18) == (
        hashlib.sha256(synthetic_k18.read_bytes()).hexdigest(), "input:float32[1,3,320,320]")
    with pytest.raises(EngineBuildError, match="ONNX model not found"):
        onnx_identity(tmp_path / "missing.onnx")


def test_gpu_detection_answers_with_an_identity_or_the_placeholder() -> None:
    assert detect_gpu(sources=()) == NO_GPU
    with pytest.raises(ValueError, match="unknown GPU source"):
        detect_gpu(sources=("nvml",))
    found = detect_gpu()
    assert found == NO_GPU or (found.source in GPU_SOURCES and found.name != "none"
                               and found.compute_capability.replace(".", "").isdigit())


# With TensorRT: real builds.

@requires_tensorrt
def test_loaded_module_reports_version_and_features() -> None:
    assert TRT.name in MODULE_NAMES
    assert TRT.version == TRT.module.__version__
    assert "name_based_io" in TRT.features
    assert TRT.cuda_major == "unknown" or TRT.cuda_major.isdigit()
    if TRT.name == RTX_MODULE:
        assert not {"fp16_builder_flag", "timing_cache", "explicit_batch_flag"} & TRT.features


@requires_tensorrt
def test_first_build_writes_plan_and_sidecar_then_hits_the_cache(model_copy, tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()

    first = get_engine(model_copy, cache_dir=cache, logger=log)

    assert first.built and first.reason == "no cached plan yet"
    assert first.plan_path.read_bytes() == first.plan
    record = read_record(first.plan_path)
    assert record.key == first.key and record.io == first.io
    assert record.plan_sha256 == hashlib.sha256(first.plan).hexdigest()
    assert record.onnx_path == str(model_copy.resolve())
    assert [(t.name, t.mode, t.shape, t.dtype) for t in first.io] == [
        ("input", "input", (1, 3, 320, 320), "float32"),
        ("output_able", "output", (1, 1, 320, 320), "float32"),
        ("output_angle", "output", (1, 18, 320, 320), "float32"),
        ("output_width", "output", (1, 1, 320, 320), "float32")]
    assert first.key.module == TRT.name and first.key.module_version == TRT.version
    assert first.key.onnx_inputs == "input:float32[1,3,320,320]"
    assert first.key.onnx_sha256 == hashlib.sha256(model_copy.read_bytes()).hexdigest()
    if TRT.name == RTX_MODULE:
        assert (first.key.gpu_name, first.key.compute_capability) == ("none", "rtx-default")
    assert len(log.about("building")) == 1 and len(log.about("engine: built ")) == 1

    second = get_engine(model_copy, cache_dir=cache, logger=log)

    assert not second.built and second.reason == "cache hit" and second.build_seconds is None
    assert second.plan == first.plan and second.io == first.io
    assert len(log.about("cache hit")) == 1 and len(log.about("building")) == 1
    assert sorted(path.name for path in cache.iterdir()) == sorted(
        [first.plan_path.name, sidecar_path(first.plan_path).name])


@requires_tensorrt
def test_a_dynamic_batch_gets_a_profile_up_to_max_batch(tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()
    dynamic = save_synthetic_sgdn_model(tmp_path / "dynamic.onnx", num_angle_classes=18,
                                        dynamic_batch=True)

    built = get_engine(dynamic, EngineSettings(max_batch=4), cache, logger=log)

    assert built.built and built.key.max_batch == 4
    assert built.key.onnx_inputs == "input:float32[batch,3,320,320]"
    assert [(tensor.name, tensor.shape) for tensor in built.io][:2] == [
        ("input", (-1, 3, 320, 320)), ("output_able", (-1, 1, 320, 320))]
    rebuilt = get_engine(dynamic, EngineSettings(max_batch=2), cache, logger=log)
    assert rebuilt.built and rebuilt.reason == "the key differs: max_batch: 4 -> 2"


@requires_tensorrt
def test_a_static_model_ignores_max_batch(model_copy, tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()

    first = get_engine(model_copy, EngineSettings(max_batch=1), cache, logger=log)
    second = get_engine(model_copy, EngineSettings(max_batch=8), cache, logger=log)

    assert first.key.max_batch == second.key.max_batch == 1
    assert first.built and not second.built


@requires_tensorrt
def test_a_changed_key_rebuilds_with_one_line_naming_the_change(model_copy, tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()
    built = get_engine(model_copy, cache_dir=cache, logger=log)

    # The sidecar as an older TensorRT install would have left it.
    sidecar = sidecar_path(built.plan_path)
    stored = json.loads(sidecar.read_text())
    stored["key"]["module_version"] = "0.9.0"
    sidecar.write_text(json.dumps(stored))
    upgraded = get_engine(model_copy, cache_dir=cache, logger=log)
    assert upgraded.built
    assert upgraded.reason == f"the key differs: module_version: 0.9.0 -> {TRT.version}"

    smaller = get_engine(model_copy, EngineSettings(workspace_mb=512), cache, logger=log)
    assert smaller.built and smaller.reason == "the key differs: workspace_mb: 1024 -> 512"

    save_synthetic_sgdn_model(model_copy, num_angle_classes=18, width_channels=18)
    retrained = get_engine(model_copy, EngineSettings(workspace_mb=512), cache, logger=log)
    assert retrained.built and retrained.reason.startswith("the key differs: onnx_sha256: ")
    assert retrained.io[-1].shape == (1, 18, 320, 320)

    assert log.about("building")[1:] == [
        f"TensorRT engine: building {built.plan_path.name}: {reason}"
        for reason in (upgraded.reason, smaller.reason, retrained.reason)]


@requires_tensorrt
def test_truncated_corrupt_or_unpaired_plans_are_rebuilt(model_copy, tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()
    plan_path = get_engine(model_copy, cache_dir=cache, logger=log).plan_path
    size = plan_path.stat().st_size

    with open(plan_path, "r+b") as plan:  # what a crash mid-write without atomic writes leaves
        plan.truncate(size // 2)
    assert "truncated" in plan_problem(plan_path, read_record(plan_path))
    recovered = get_engine(model_copy, cache_dir=cache, logger=log)
    assert recovered.built
    assert recovered.reason == (f"the plan has {size // 2} bytes, its metadata says {size} "
                                "(truncated or replaced)")
    assert plan_problem(plan_path, read_record(plan_path)) == ""

    content = bytearray(plan_path.read_bytes())
    content[size // 2] ^= 0xFF
    plan_path.write_bytes(bytes(content))
    assert get_engine(model_copy, cache_dir=cache, logger=log).reason == (
        "the plan's sha256 differs from its metadata (corrupt or replaced)")

    sidecar_path(plan_path).write_text("{not json")
    unpaired = get_engine(model_copy, cache_dir=cache, logger=log)
    assert unpaired.built and unpaired.reason.startswith("its metadata is unusable:")

    forced = get_engine(model_copy, cache_dir=cache, force_rebuild=True, logger=log)
    assert forced.built and forced.reason == "a rebuild was forced"
    assert not get_engine(model_copy, cache_dir=cache, logger=log).built
    assert not list(cache.glob(".*partial"))


@requires_tensorrt
def test_external_weights_are_part_of_the_key(tmp_path) -> None:
    model = tmp_path / "external.onnx"
    onnx.save(onnx.load(str(TRAINED_MODEL)), str(model), save_as_external_data=True,
              all_tensors_to_one_file=True, location="external.weights", size_threshold=0)
    weights = tmp_path / "external.weights"

    before = get_engine(model, cache_dir=tmp_path, logger=LogLines())
    content = bytearray(weights.read_bytes())
    content[len(content) // 2] ^= 0x01
    weights.write_bytes(bytes(content))
    after = get_engine(model, cache_dir=tmp_path, logger=LogLines())

    assert before.built and after.built
    assert after.reason.startswith("the key differs: onnx_sha256: ")
    assert [tensor.shape for tensor in after.io] == [tensor.shape for tensor in before.io]


@requires_tensorrt
def test_fp16_comes_from_the_builder_flag_or_an_fp16_onnx_copy(tmp_path) -> None:
    model = tmp_path / "light.onnx"
    model.write_bytes(TRAINED_MODEL.read_bytes())

    fp32 = get_engine(model, EngineSettings(precision="fp32"), tmp_path, logger=LogLines())
    fp16 = get_engine(model, EngineSettings(precision="fp16"), tmp_path, logger=LogLines())

    assert fp16.plan_path != fp32.plan_path
    if "fp16_builder_flag" in TRT.features:
        assert fp16.key.precision_method == "fp16 builder flag"
    else:
        assert fp16.key.precision_method.startswith("fp16 ONNX copy (sgdn_ros.models.fp16.v1")
    assert [tensor.dtype for tensor in fp16.io] == ["float32"] * 4
    assert len(fp16.plan) < 0.8 * len(fp32.plan)
    assert not get_engine(model, EngineSettings(precision="fp16"), tmp_path,
                          logger=LogLines()).built


@requires_tensorrt
@pytest.mark.skipif(detect_gpu() != NO_GPU, reason="checks a machine without a GPU")
def test_without_a_gpu_deserialization_fails_after_one_rebuild(model_copy, tmp_path) -> None:
    log = LogLines()
    get_engine(model_copy, cache_dir=tmp_path, logger=log)

    with pytest.raises(EngineBuildError, match="does not deserialize either.*build-engine"):
        get_engine(model_copy, cache_dir=tmp_path, deserialize=True, logger=log)
    assert len(log.about("building")) == 2
    assert "TensorRT cannot deserialize it here: " in log.about("building")[1]


@requires_tensorrt
def test_models_that_cannot_be_built_are_explained(tmp_path) -> None:
    with pytest.raises(EngineBuildError, match="ONNX model not found"):
        get_engine(tmp_path / "missing.onnx", cache_dir=tmp_path, logger=LogLines())

    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_bytes(b"\x00\xff not a protobuf")
    with pytest.raises(EngineBuildError, match="is not an ONNX model"):
        get_engine(not_onnx, cache_dir=tmp_path, logger=LogLines())

    def save(name: str, node: onnx.NodeProto, dims: list) -> pathlib.Path:
        graph = helper.make_graph(
            [node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
        path = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        return path

    dynamic = save("dynamic", helper.make_node("Relu", ["x"], ["y"]), ["N", 3, "H", 8])
    with pytest.raises(EngineBuildError,
                       match=r"dynamic shape \['batch', 3, 'H', 8\].*only the batch axis"):
        get_engine(dynamic, cache_dir=tmp_path, logger=LogLines())

    unknown = save("unknown", helper.make_node("NoSuchOperator", ["x"], ["y"]), [1, 3, 8, 8])
    with pytest.raises(EngineBuildError, match="cannot parse .*NoSuchOperator"):
        get_engine(unknown, cache_dir=tmp_path, logger=LogLines())


@requires_tensorrt
def test_command_line_builds_ahead_of_time_and_inspects_plans(model_copy, tmp_path,
                                                              capsys) -> None:
    parser = argparse.ArgumentParser(prog="sgdn-ros")
    add_engine_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(argv)
        code = args.run(args)
        return code, capsys.readouterr().out

    cache = str(tmp_path / "engines")
    code, built = run("build-engine", str(model_copy), "--cache-dir", cache)
    assert code == 0 and "built: no cached plan yet" in built
    assert "output output_angle float32 (1, 18, 320, 320)" in built
    code, again = run("build-engine", str(model_copy), "--cache-dir", cache)
    assert code == 0 and "cache hit" in again

    plan_path = pathlib.Path(again.split()[1])
    code, described = run("inspect", str(plan_path))
    assert code == 0
    assert f"  module: {TRT.name}" in described and "  precision: fp32" in described
    assert f"model: {model_copy.resolve()}" in described
    assert "plan file: matches its metadata (size and sha256)" in described

    with open(plan_path, "r+b") as plan:
        plan.truncate(100)
    code, damaged = run("inspect", str(sidecar_path(plan_path)))
    assert code == 1 and "truncated" in damaged


# A full SGDN: ResNet-101, K = 120, random weights (exported once for this module).

@pytest.fixture(scope="module")
def resnet101_onnx(tmp_path_factory) -> pathlib.Path:
    if TRT is None:
        pytest.skip(TRT_MISSING)
    torch = pytest.importorskip("torch", reason="exporting SGDN ResNet-101 needs PyTorch")
    from sgdn_ros.network.export import export_onnx
    from sgdn_ros.network.network import PRESETS, build_sgdn

    torch.manual_seed(0)
    config = PRESETS["resnet101"]
    path = tmp_path_factory.mktemp("resnet101") / "sgdn_resnet101_k120.onnx"
    return export_onnx(build_sgdn(config), config, path)


def test_full_resnet101_sgdn_builds_caches_and_recovers(resnet101_onnx, tmp_path) -> None:
    cache, log = tmp_path / "engines", LogLines()

    built = get_engine(resnet101_onnx, cache_dir=cache, logger=log)
    assert built.built and built.build_seconds is not None
    # `sgdn-ros export` writes a dynamic batch axis: the engine gets a profile of 1..max_batch.
    assert [(tensor.name, tensor.shape) for tensor in built.io] == [
        ("input", (-1, 3, 320, 320)), ("output_able", (-1, 1, 320, 320)),
        ("output_angle", (-1, 120, 320, 320)), ("output_width", (-1, 120, 320, 320))]
    assert built.key.onnx_inputs == "input:float32[batch,3,320,320]"
    assert built.key.max_batch == EngineSettings().max_batch
    assert len(built.plan) > 200e6  # 69 M float32 weights
    plan_path, size, key = built.plan_path, len(built.plan), built.key
    del built

    hit = get_engine(resnet101_onnx, cache_dir=cache, logger=log)
    assert not hit.built and hit.key == key
    del hit

    changed = get_engine(resnet101_onnx, dataclasses.replace(EngineSettings(), workspace_mb=2048),
                         cache, logger=log)
    assert changed.built and changed.reason == "the key differs: workspace_mb: 1024 -> 2048"
    del changed

    with open(plan_path, "r+b") as plan:
        plan.truncate(size // 3)
    recovered = get_engine(resnet101_onnx, EngineSettings(workspace_mb=2048), cache, logger=log)
    assert recovered.built and "truncated" in recovered.reason
    assert plan_problem(plan_path, read_record(plan_path)) == ""
    assert len(log.about("engine: built ")) == 3 and len(log.about("cache hit")) == 1
