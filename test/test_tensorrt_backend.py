"""TensorRT backend: what happens where it cannot run (auto falls back, an explicit request is
refused with the reason), told apart from a bad model; and, where it can run, agreement with
ONNX Runtime on the host path and the device path.

This CI machine has TensorRT-RTX but no pycuda and no GPU: the success tests skip here.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from sgdn_ros.backends import (
    AUTO_ORDER,
    BACKEND_CHOICES,
    BackendOptions,
    BackendUnavailable,
    ModelLoadError,
    create_backend,
)
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.backends.tensorrt.errors import EngineBuildError, TensorRTUnavailable
from sgdn_ros.backends.tensorrt.gpu_identity import NO_GPU, detect_gpu
from sgdn_ros.backends.tensorrt.module import load_tensorrt
from sgdn_ros.backends.tensorrt.runtime import TensorRTBackend, load_engine
from sgdn_ros.backends.tensorrt.settings import EngineSettings
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.training.scenes import render_tabletop_scene

try:
    load_tensorrt()
    TRT_MISSING = ""
except TensorRTUnavailable as error:
    TRT_MISSING = f"no usable TensorRT: {error}"
requires_tensorrt = pytest.mark.skipif(bool(TRT_MISSING), reason=TRT_MISSING)


@pytest.fixture(scope="module")
def model_k18(tmp_path_factory) -> pathlib.Path:
    return save_synthetic_sgdn_model(
        tmp_path_factory.mktemp("models") / "k18.onnx", num_angle_classes=18)


@pytest.fixture(scope="module")
def scene_planes() -> np.ndarray:
    image, _ = render_tabletop_scene(5, num_objects=3)
    return Preprocessor(PreprocessConfig())(image)[0]


@pytest.fixture(scope="module")
def tensorrt_unavailable(model_k18) -> str:
    """Why the tensorrt backend cannot run here; tests of the fallback skip where it can."""
    try:
        create_backend("tensorrt", model_k18).close()
    except BackendUnavailable as error:
        return str(error)
    pytest.skip("the tensorrt backend runs on this machine; this test checks its fallback")


@pytest.fixture
def tensorrt_k18(model_k18, tmp_path):
    """The backend on a GPU that runs TensorRT; skips elsewhere."""
    try:
        backend = TensorRTBackend(model_k18, cache_dir=tmp_path, logger=lambda line: None)
    except BackendUnavailable as error:
        pytest.skip(str(error))
    with backend:
        yield backend


def test_tensorrt_is_tried_first_and_is_a_backend_choice():
    assert AUTO_ORDER == ("tensorrt", "onnxruntime")
    assert BACKEND_CHOICES == ("auto", "tensorrt", "onnxruntime", "torch")


def test_auto_falls_back_to_onnxruntime_naming_why(model_k18, tensorrt_unavailable):
    with create_backend("auto", model_k18) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert backend.selection_reason.startswith("auto chose onnxruntime for this ONNX model "
                                                   "after skipping tensorrt (")
        assert tensorrt_unavailable in backend.selection_reason
        assert "precision fp16 ignored" not in backend.selection_reason


def test_explicit_tensorrt_is_refused_with_what_to_install(model_k18, tensorrt_unavailable):
    with pytest.raises(ModelLoadError) as raised:
        create_backend("tensorrt", model_k18)
    assert isinstance(raised.value, BackendUnavailable)
    assert "the tensorrt backend" in str(raised.value)
    assert "pip install pycuda" in str(raised.value) or "GPU" in str(raised.value)


def test_auto_fp16_falls_back_to_onnxruntime_ignoring_fp16_with_a_note(model_k18,
                                                                      tensorrt_unavailable):
    with create_backend("auto", model_k18, BackendOptions(precision="fp16")) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert backend.selection_reason.endswith(
            "precision fp16 ignored: onnxruntime runs the precision stored in the ONNX file "
            "(export an FP16 copy with `sgdn-ros export --fp16` for that)")
    with pytest.raises(ModelLoadError, match="sgdn-ros export --fp16"):
        create_backend("onnxruntime", model_k18, BackendOptions(precision="fp16"))


@pytest.mark.parametrize("kind", ["tensorrt", "auto"])
@pytest.mark.parametrize("option", ["cuda_graph", "compile"])
def test_cuda_graph_and_compile_are_refused_for_tensorrt(model_k18, kind, option):
    with pytest.raises(ModelLoadError, match="tensorrt has no CUDA-graph or compile option") \
            as raised:
        create_backend(kind, model_k18, BackendOptions(**{option: True}))
    assert not isinstance(raised.value, BackendUnavailable)


@pytest.mark.parametrize("kind", ["tensorrt", "auto"])
def test_a_missing_model_is_reported_not_skipped(tmp_path, kind):
    with pytest.raises(ModelLoadError, match="model file not found") as raised:
        create_backend(kind, tmp_path / "missing.onnx")
    assert not isinstance(raised.value, BackendUnavailable)


@requires_tensorrt
@pytest.mark.skipif(detect_gpu() != NO_GPU, reason="checks a machine without a GPU")
def test_an_engine_this_machine_cannot_run_means_unavailable(model_k18, tmp_path):
    lines: list[str] = []
    with pytest.raises(BackendUnavailable, match="cannot run here.*does not deserialize"):
        load_engine(model_k18, EngineSettings(), tmp_path, logger=lines.append)
    assert any("built" in line for line in lines)


@requires_tensorrt
def test_a_garbage_model_is_a_build_error_not_unavailability(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(3).bytes(4096))
    with pytest.raises(EngineBuildError) as raised:
        load_engine(garbage, EngineSettings(), tmp_path / "cache", logger=lambda line: None)
    assert not isinstance(raised.value, BackendUnavailable)


def test_agrees_with_onnxruntime_on_the_host_path(tensorrt_k18, model_k18, scene_planes):
    assert tensorrt_k18.name.startswith("tensorrt-") and tensorrt_k18.name.endswith("-fp32")
    with OnnxRuntimeBackend(model_k18, prefer_gpu=False) as reference:
        assert tensorrt_k18.info == reference.info
        expected = reference.infer(scene_planes)
    first = tensorrt_k18.infer(scene_planes)
    second = tensorrt_k18.infer(scene_planes)
    assert first.able is not second.able  # fresh arrays, the pinned buffers are reused
    for role in ("able", "angle", "width"):
        got, want = getattr(first, role), getattr(expected, role)
        assert got.dtype == np.float32 and got.shape == want.shape
        tolerance = 1e-2 * max(1.0, float(np.abs(want).max()))  # TF32 may be on for FP32
        np.testing.assert_allclose(got, want, atol=tolerance, err_msg=role)
        np.testing.assert_array_equal(got, getattr(second, role))


def test_device_path_gives_the_host_paths_maps(tensorrt_k18, scene_planes):
    import pycuda.driver as cuda

    expected = tensorrt_k18.infer(scene_planes)
    planes_on_gpu = cuda.to_device(np.ascontiguousarray(scene_planes))
    stream = cuda.Stream()
    try:
        pointers = tensorrt_k18.infer_device(int(planes_on_gpu), stream.handle)
        stream.synchronize()
        for pointer, want in zip(pointers, (expected.able, expected.angle, expected.width)):
            got = np.empty_like(want)
            cuda.memcpy_dtoh(got, pointer)
            np.testing.assert_array_equal(got, want)
    finally:
        planes_on_gpu.free()
    np.testing.assert_array_equal(tensorrt_k18.infer(scene_planes).able, expected.able)


def test_engine_options_are_accepted_and_the_refusal_stays_clean(model_k18, tmp_path,
                                                                 tensorrt_unavailable):
    cache = tmp_path / "engines"
    options = BackendOptions(engine_cache_dir=str(cache), force_rebuild=True, workspace_mb=256,
                             cuda_device=0)
    with pytest.raises(BackendUnavailable) as raised:
        create_backend("tensorrt", model_k18, options)
    assert str(raised.value).startswith("the tensorrt backend")
    if "pycuda does not import" in tensorrt_unavailable:
        # Refused before any engine work: same reason as with the defaults, no cache written.
        assert str(raised.value) == tensorrt_unavailable
        assert not cache.exists()
    with create_backend("auto", model_k18, options) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert "after skipping tensorrt (" in backend.selection_reason


@pytest.mark.parametrize("kind", ["tensorrt", "auto"])
def test_a_zero_workspace_is_refused_before_looking_for_a_gpu(model_k18, kind):
    """EngineSettings checks the workspace before pycuda is imported, so the option is
    reported on every machine, and auto does not skip over it to onnxruntime."""
    with pytest.raises(ValueError, match=r"^workspace_mb must be a positive integer, got 0$") \
            as raised:
        create_backend(kind, model_k18, BackendOptions(workspace_mb=0))
    assert not isinstance(raised.value, ModelLoadError)
