"""The logic around TensorRT, pinned against stand-ins for each release's module
(``fake_tensorrt``) and for pycuda (``fake_pycuda``): no engine runs here (README)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fake_pycuda import FakeCuda, FakeDriverStack
from fake_tensorrt import NULLPTR, RELEASES, Behaviour, DataType, make_fake_tensorrt

from sgdn_ros.backends import BackendOptions, BackendUnavailable, ModelLoadError, create_backend
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.backends.tensorrt.engine import get_engine
from sgdn_ros.backends.tensorrt.errors import EngineBuildError, TensorRTUnavailable
from sgdn_ros.backends.tensorrt.gpu_identity import NO_GPU, detect_gpu
from sgdn_ros.backends.tensorrt.module import load_tensorrt
from sgdn_ros.backends.tensorrt.runtime import TensorRTBackend
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.backends.tensorrt.tensorrt_log import KEPT_ERRORS, tensorrt_log
from sgdn_ros.gpu import cuda_context
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.tools.engine_commands import engine_precision

FEATURES = {
    "8.5": {"name_based_io", "explicit_batch_flag", "fp16_builder_flag", "timing_cache"},
    "8.6": {"name_based_io", "explicit_batch_flag", "fp16_builder_flag", "timing_cache",
            "optimization_level"},
    "10.x": {"name_based_io", "fp16_builder_flag", "timing_cache", "optimization_level"},
    "11": {"name_based_io", "timing_cache", "optimization_level"},
    "rtx": {"name_based_io", "optimization_level"},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_synthetic_sgdn_model(tmp_path_factory.mktemp("m") / "k18.onnx",
                                     num_angle_classes=18)


def install(monkeypatch, release: str, behaviour: Behaviour | None = None):
    """Make ``release``'s stand-in the TensorRT that ``load_tensorrt`` finds."""
    fake = make_fake_tensorrt(release, behaviour)
    names = ("tensorrt_rtx",) if release == "rtx" else ("tensorrt",)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    for name in names:
        monkeypatch.setitem(sys.modules, name, fake.module)
    load_tensorrt.cache_clear()
    return fake


@pytest.fixture(autouse=True)
def fresh_module_cache():
    load_tensorrt.cache_clear()
    yield
    load_tensorrt.cache_clear()


@pytest.fixture
def cuda(monkeypatch) -> FakeCuda:
    fake = FakeCuda()
    monkeypatch.setitem(sys.modules, "pycuda", fake.package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", fake.driver)
    monkeypatch.setattr(cuda_context, "DriverContextStack", lambda: FakeDriverStack(fake))
    return fake


@pytest.mark.parametrize("release", RELEASES)
def test_features_and_network_flags_follow_each_release(monkeypatch, model, tmp_path, release):
    fake = install(monkeypatch, release)
    trt = load_tensorrt()
    assert trt.features == FEATURES[release]
    get_engine(model, EngineSettings(), tmp_path, logger=lambda line: None)
    flags = [call[1] for call in fake.calls if call[0] == "create_network"]
    assert flags == [1 if release in ("8.5", "8.6") else 0]


@pytest.mark.parametrize("release", RELEASES)
def test_fp16_comes_from_the_builder_flag_or_an_fp16_copy(monkeypatch, model, tmp_path, release):
    fake = install(monkeypatch, release)
    get_engine(model, EngineSettings(precision="fp16"), tmp_path, logger=lambda line: None)
    if release in ("8.5", "8.6", "10.x"):
        assert ("set_flag", "FP16") in fake.calls and ("parse_from_file",) in fake.calls
    else:
        assert ("parse", "fp16 weights") in fake.calls
        assert not [call for call in fake.calls if call[0] == "set_flag"]


def test_a_cuda_driver_mismatch_means_tensorrt_cannot_run_here(monkeypatch, model, tmp_path):
    """Defect 1: a deserialisation that fails once, then a Builder that cannot start."""
    install(monkeypatch, "10.x", Behaviour(start_error=NULLPTR))
    with pytest.raises(TensorRTUnavailable, match="cannot start its Builder.*driver"):
        get_engine(model, EngineSettings(), tmp_path, logger=lambda line: None)


@pytest.mark.parametrize("behaviour", [Behaviour(start_error=NULLPTR),
                                       Behaviour(deserializes=False),
                                       Behaviour(execution_context=False)])
def test_auto_falls_back_on_every_way_tensorrt_cannot_run(monkeypatch, model, tmp_path, cuda,
                                                          behaviour):
    install(monkeypatch, "10.x", behaviour)
    options = BackendOptions(engine_cache_dir=str(tmp_path))
    with create_backend("auto", model, options) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert "after skipping tensorrt (" in backend.selection_reason
    # pycuda holds nothing; the driver entry pycuda's detach leaves is defect 4, still open.
    assert cuda.pycuda_stack == [] and cuda.driver_stack == [] and cuda.retained == 0


def test_auto_falls_back_without_pycuda_or_tensorrt(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with create_backend("auto", model) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert "pycuda does not import" in backend.selection_reason


def test_errors_are_forwarded_bounded_and_explain_a_failed_run(monkeypatch, model, tmp_path,
                                                                cuda, capsys):
    """Defect 2: errors outside a capture reach stderr; a failed run names TensorRT's reason."""
    fake = install(monkeypatch, "10.x", Behaviour(execute_ok=False))
    lines: list[str] = []
    backend = TensorRTBackend(model, cache_dir=tmp_path, logger=lines.append)
    log = tensorrt_log(load_tensorrt())
    for index in range(KEPT_ERRORS * 3):
        log.log(fake.module.ILogger.Severity.ERROR, f"error {index}")
    assert len(log.take_errors()) == KEPT_ERRORS
    with pytest.raises(Exception, match="illegal memory access"):
        backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    assert "TensorRT error: IExecutionContext::enqueueV3" in capsys.readouterr().err
    backend.close()


def test_the_input_is_bound_again_only_when_its_address_changes(monkeypatch, model, tmp_path,
                                                               cuda):
    fake = install(monkeypatch, "10.x")
    with TensorRTBackend(model, cache_dir=tmp_path, logger=lambda line: None) as backend:
        fake.calls.clear()
        backend.infer_device(0x1000, 7)
        backend.infer_device(0x1000, 7)
        backend.infer_device(0x2000, 7)
        binds = [call for call in fake.calls if call[0] == "set_tensor_address"]
        assert binds == [("set_tensor_address", "input", 0x1000),
                         ("set_tensor_address", "input", 0x2000)]
        assert [call for call in fake.calls if call[0] == "execute_async_v3"] == \
            [("execute_async_v3", 7)] * 3


def test_release_order_and_a_failing_free(monkeypatch, model, tmp_path, cuda):
    """Defect 3: every buffer is freed and the context popped though the first free fails."""
    fake = install(monkeypatch, "10.x")
    backend = TensorRTBackend(model, cache_dir=tmp_path, logger=lambda line: None)
    cuda.failing_frees = 1
    with pytest.raises(Exception, match="illegal memory access"):
        backend.close()
    assert fake.released == ["execution context", "engine", "runtime"]
    frees = [event for event in cuda.events if "free" in event]
    assert frees[0] == "device free failed" and len(frees) == 8  # 4 device, 4 host buffers
    assert cuda.pycuda_stack == [] and cuda.driver_stack == [] and cuda.retained == 0


def test_bf16_io_is_a_model_error(monkeypatch, model, tmp_path, cuda):
    """Defect 5."""
    install(monkeypatch, "10.x", Behaviour(io_dtype=DataType.BF16))
    with pytest.raises(ModelLoadError, match="bf16.*float32") as raised:
        TensorRTBackend(model, cache_dir=tmp_path, logger=lambda line: None)
    assert not isinstance(raised.value, BackendUnavailable)
    assert cuda.pycuda_stack == [] and cuda.driver_stack == [] and cuda.retained == 0


def test_int8_is_refused_with_its_reason_everywhere(model):
    """Defect 6: the factory and the command line give EngineSettings' reason."""
    with pytest.raises(ValueError, match="'int8' is not supported.*calibration"):
        create_backend("auto", model, BackendOptions(precision="int8"))
    with pytest.raises(Exception, match="'int8' is not supported.*calibration"):
        engine_precision("int8")
    assert engine_precision("fp16") == "fp16"


def test_a_stale_timing_cache_does_not_explain_a_later_failure(monkeypatch, model, tmp_path):
    """Defect 7."""
    install(monkeypatch, "10.x")
    get_engine(model, EngineSettings(), tmp_path, logger=lambda line: None)
    install(monkeypatch, "10.x", Behaviour(timing_cache_matches=False,
                                           build_error="no implementation for node Conv_3"))
    with pytest.raises(EngineBuildError, match="no implementation for node Conv_3"):
        get_engine(model, EngineSettings(), tmp_path, force_rebuild=True,
                   logger=lambda line: None)


@pytest.mark.parametrize(("order", "gpus", "expected"), [
    ("", ["NVIDIA GeForce RTX 3060, 8.6", "NVIDIA GeForce RTX 4090, 8.9"], None),
    ("PCI_BUS_ID", ["NVIDIA GeForce RTX 3060, 8.6", "NVIDIA GeForce RTX 4090, 8.9"],
     "NVIDIA GeForce RTX 3060"),
    ("", ["NVIDIA H200, 9.0", "NVIDIA H200, 9.0"], "NVIDIA H200"),
])
def test_nvidia_smi_answers_only_where_its_order_is_cudas(monkeypatch, tmp_path, order, gpus,
                                                          expected):
    """Defect 8: nvidia-smi counts in PCI order, CUDA fastest first."""
    script = tmp_path / "nvidia-smi"
    lines = "\\n".join(gpus)
    script.write_text("#!/bin/sh\ncase \"$1\" in\n  --id=0) echo '" + gpus[0] + "';;\n"
                      "  --id=1) echo '" + gpus[1] + "';;\n  *) printf '" + lines + "\\n';;\n"
                      "esac\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", order or "FASTEST_FIRST")
    found = detect_gpu(0, sources=("nvidia-smi",))
    assert (found.name if found != NO_GPU else None) == expected


def test_context_cycles_leave_no_context_current(cuda):
    """Defect 4: each release used to leave the primary context current on the thread."""
    for _ in range(100):
        context = cuda_context.CudaContext(0)
        context.push()
        context.release()
    assert cuda.driver_stack == [] and cuda.pycuda_stack == [] and cuda.retained == 0


@pytest.mark.parametrize("inner_popped_first", [False, True])
def test_two_holders_of_the_primary_context_release_in_turn(cuda, inner_popped_first):
    """The TensorRT backend and the GPU pre/post-processing each retain and push the primary
    context on the inference thread and release in reverse order: the inner one's release
    must not pop the outer one's push."""
    outer, inner = cuda_context.CudaContext(0), cuda_context.CudaContext(0)
    outer.push()
    inner.push()
    if inner_popped_first:
        inner.pop()
    inner.release()
    assert cuda.driver_stack == [0xC0] and len(cuda.pycuda_stack) == 1  # outer still current
    outer.release()
    assert cuda.driver_stack == [] and cuda.pycuda_stack == [] and cuda.retained == 0


def test_the_first_holder_released_leaves_the_second_its_context(cuda):
    """A detector replaced while the next one already runs on the same thread: the first
    one's release must leave the context current for the second (on the H200 the second's
    next page-locked allocation failed with "invalid device context")."""
    first, second = cuda_context.CudaContext(0), cuda_context.CudaContext(0)
    first.push()
    second.push()
    first.release()
    assert cuda.driver_stack == [0xC0] and len(cuda.pycuda_stack) == 1 and cuda.retained == 1
    second.release()
    assert cuda.driver_stack == [] and cuda.pycuda_stack == [] and cuda.retained == 0


def test_an_engine_says_when_its_angle_and_width_maps_are_smaller(monkeypatch, model, tmp_path,
                                                                  cuda):
    """An engine of a ``--sampled-channels`` export hands the GPU decoders maps to sample."""
    pytest.importorskip("torch", reason="the sampled-channels model is exported from PyTorch")
    from sgdn_ros.network.export import export_onnx
    from sgdn_ros.network.network import PRESETS, build_sgdn

    install(monkeypatch, "10.x")
    sampled = export_onnx(build_sgdn(PRESETS["tiny"]), PRESETS["tiny"],
                          tmp_path / "sampled.onnx", dynamic_batch=False, sampled_channels=True)
    with TensorRTBackend(sampled, cache_dir=tmp_path, logger=lambda line: None) as backend:
        assert backend.device_channel_size == (160, 160)
        assert (backend.info.output_height, backend.info.output_width) == (320, 320)
    with TensorRTBackend(model, cache_dir=tmp_path, logger=lambda line: None) as backend:
        assert backend.device_channel_size is None
