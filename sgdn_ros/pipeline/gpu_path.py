"""The processing path on the GPU, around a backend that works
in GPU memory (TensorRT, or torch on CUDA).

Per group of at most ``max_batch`` frames (the backend's ``info.max_batch``): the raw camera
bytes go up once, a kernel writes each frame's input planes into one contiguous batch buffer,
the backend runs once on the whole group in place, and the decoder decodes each frame at its
offset in the batched maps, copying back only the chosen grasps (a few KB per frame), all in
order on one CUDA stream. A frame's confidence map for the heatmap comes back only when asked.
The grasps equal the CPU detector's (same pixels and angle classes; confidence and width to
float32 rounding, see ``test/test_gpu_detector.py``).

The kernels write B, G, R planes only: a depth or RGB-D model's planes (``InputPlanes``) are
built on the CPU and the group's planes uploaded at once; inference and decoding stay on the
GPU.

With ``frame_graph`` (the default) a group of 8-bit colour frames runs as one CUDA graph
instead: upload, preprocessing, network and decoding recorded once per layout and replayed
(``sgdn_ros.pipeline.frame_graphs``); the same grasps, one launch and a 2 KB copy per frame.

Create, use and close it on one thread, the inference thread: it pushes the device's primary
context there (the one the backend uses too) and pops it in ``close``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from sgdn_ros.backends.base import InferenceBackend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.frames import RawImage, bgr_as_raw_image
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, crop_geometry
from sgdn_ros.gpu.buffers import HostPlanesUpload
from sgdn_ros.gpu.candidates import grasps_from_decoded
from sgdn_ros.gpu.cuda_context import CudaContext, GpuUnavailableError, import_pycuda_driver
from sgdn_ros.gpu.decode_kernels import GpuDecoder, decode_on_gpu
from sgdn_ros.gpu.preprocess_kernels import GpuPreprocessor
from sgdn_ros.pipeline.detector import (
    CameraImage,
    DepthImage,
    Detection,
    InputPlanes,
    batches,
)
from sgdn_ros.pipeline.frame_graphs import FrameGraphs, GraphedGroup


class GpuPath:
    """``ProcessingPath`` on the GPU; see the module docstring.

    Raises ``GpuUnavailableError`` when pycuda, the device or the kernels' compiler is missing.
    Frames the kernel does not convert (16-bit encodings, the resize policy) are preprocessed
    on the CPU and their planes uploaded; inference and decoding stay on the GPU.
    """

    name = "gpu"

    def __init__(self, backend: InferenceBackend, preprocess_config: PreprocessConfig,
                 frame_graph: bool = True) -> None:
        if backend.cuda_device is None:
            raise GpuUnavailableError(
                f"the {backend.name} backend takes and returns host arrays; GPU processing "
                "needs a backend that runs in GPU memory (tensorrt, torch on CUDA)")
        self.backend = backend
        self.input_planes = InputPlanes(backend.info, preprocess_config)
        self._thread = threading.get_ident()
        self._context: CudaContext | None = CudaContext(backend.cuda_device)
        self._gpu_preprocessor: GpuPreprocessor | None = None
        self._host_planes: HostPlanesUpload | None = None
        self._decoder: GpuDecoder | None = None
        self._graphs: FrameGraphs | None = None
        self._stream = None
        self._inferences = 0
        self._frame_bytes = 0
        try:
            self._context.push()
            self._start_processing()
            self.frame_graph_reason = self._start_graphs(frame_graph)
        except BaseException:
            self._release()
            raise

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.input_planes.config

    def _start_processing(self) -> None:
        driver = import_pycuda_driver()
        self._stream = driver.Stream()
        config, info = self.preprocess_config, self.backend.info
        try:
            if info.input_kind == "bgr":
                self._gpu_preprocessor = GpuPreprocessor(
                    self._stream, config.input_height, config.input_width, config.mean_bgr,
                    config.scale, info.max_batch)
            else:
                self._host_planes = HostPlanesUpload(driver, self._stream)
            self._decoder = GpuDecoder(self._stream, info.output_height, info.output_width,
                                       info.num_angle_classes, info.width_channels,
                                       channel_size=self.backend.device_channel_size)
        except driver.Error as error:  # includes pycuda's CompileError (no nvcc)
            raise GpuUnavailableError(
                f"the GPU kernels could not be built or loaded ({type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); "
                "install the CUDA toolkit (nvcc) or set gpu_processing to 'off'") from error

    def _start_graphs(self, wanted: bool) -> str:
        """Set up the frame graphs where they can run; says which way frames go, and why."""
        refusal = self.backend.graph_capture_refusal()
        if not wanted:
            refusal = "frame_graph is off"
        elif self._gpu_preprocessor is None:
            refusal = (f"the model takes {self.backend.info.input_kind} planes, built on the "
                       "CPU (the graph covers the colour kernel)")
        if refusal is not None:
            return f"step by step ({refusal})"
        self._graphs = FrameGraphs(self.backend, self._stream, self._gpu_preprocessor,
                                   self.preprocess_config)
        return ("one CUDA graph per frame (upload, preprocessing, network, decoding; 16-bit "
                "and resized frames step by step)")

    @property
    def frame_graph_disabled_reason(self) -> str | None:
        """Why recording failed at run time, after which every frame goes step by step."""
        return None if self._graphs is None else self._graphs.disabled_reason

    def detect_batch(self, images: Sequence[CameraImage | None],
                     depths: Sequence[DepthImage | None],
                     decode_config: DecodeConfig) -> list[Detection]:
        """One ``Detection`` per frame, one inference per group of at most ``max_batch``.

        ``stage_seconds``: "preprocess" and "infer" are the group's times split evenly over
        its frames (they run for the group at once), "decode" is the frame's own; so the sum
        over a batch is its wall time.

        A frame's confidence map lies in the backend's output buffers until its next
        inference: ask for it before then (with more than ``max_batch`` frames, a later group
        is such an inference); asked later it raises instead of returning another frame's map.
        """
        if self._decoder is None:
            raise RuntimeError("the GPU path is closed; create a new detector")
        frames = list(zip(images, depths))
        return [detection for group in batches(frames, self.backend.info.max_batch)
                for detection in self._detect_group(group, decode_config)]

    def _detect_group(self, group: Sequence[tuple[CameraImage | None, DepthImage | None]],
                      decode_config: DecodeConfig) -> list[Detection]:
        graphed = None if self._graphs is None else self._graphs.run(
            [image for image, _depth in group], decode_config)
        if graphed is not None:
            return self._graphed_detections(group, graphed, decode_config)
        started = time.perf_counter()
        planes_ptr, geometries = self._group_planes_on_gpu(group)
        self._stream.synchronize()
        preprocessed = time.perf_counter()
        maps = self.backend.infer_device(planes_ptr, self._stream.handle, batch=len(group))
        self._inferences += 1
        self._stream.synchronize()
        inferred = time.perf_counter()
        decodes = [None] * len(group)
        return self._detections(group, maps, geometries, decodes, decode_config, {
            "preprocess": (preprocessed - started) / len(group),
            "infer": (inferred - preprocessed) / len(group)})

    def _graphed_detections(self, group: Sequence[tuple[CameraImage | None, DepthImage | None]],
                            graphed: GraphedGroup, decode_config: DecodeConfig
                            ) -> list[Detection]:
        """"preprocess" is the frames' copy into the graph's host buffers, "infer" the replay
        (upload, preprocessing, network and the decoding kernels), "decode" the host's part."""
        self._inferences += 1
        self._frame_bytes = graphed.record_bytes
        return self._detections(group, graphed.maps, graphed.geometries, graphed.decoded,
                                decode_config, {
                                    "preprocess": graphed.load_seconds / len(group),
                                    "infer": graphed.replay_seconds / len(group)})

    def _detections(self, group: Sequence[tuple[CameraImage | None, DepthImage | None]],
                    maps: Sequence[int], geometries: Sequence[CropGeometry],
                    decodes: Sequence[object], decode_config: DecodeConfig,
                    shares: dict[str, float]) -> list[Detection]:
        """One Detection per frame; a frame without a graph decode (None) is decoded here,
        step by step, on the maps."""
        decoder, inference = self._decoder, self._inferences
        detections = []
        for frame, ((image, depth_m), geometry, decoded) in enumerate(
                zip(group, geometries, decodes)):
            decode_started = time.perf_counter()
            if decoded is None:
                grasps = decode_on_gpu(decoder, *maps, geometry, decode_config, frame)
                self._frame_bytes = decoder.bytes_copied_device_to_host()
            else:
                grasps = grasps_from_decoded(decoded, decoder.num_angle_classes, geometry,
                                             decode_config)
            detections.append(Detection(
                grasps=grasps, geometry=geometry, image=image,
                preprocess_config=self.preprocess_config,
                confidence_source=lambda frame=frame: self._confidence_map(
                    decoder, maps[0], frame, inference),
                stage_seconds={**shares, "decode": time.perf_counter() - decode_started},
                depth_m=depth_m))
        return detections

    def _confidence_map(self, decoder: GpuDecoder, able_ptr: int, frame: int,
                        inference: int) -> np.ndarray:
        if inference != self._inferences:
            raise RuntimeError(
                "this frame's confidence map was overwritten by a later inference; ask for it "
                "before the detector runs again (detect_batch runs one inference per "
                "max_batch frames)")
        return decoder.confidence_map(able_ptr, frame)

    def bytes_copied_device_to_host(self) -> int:
        """What the last frame's decoding copied from the GPU (heatmaps not included): its
        graph record, or what the step-by-step decoding copied."""
        return self._frame_bytes

    def _group_planes_on_gpu(self, group: Sequence[tuple[CameraImage | None, DepthImage | None]]
                             ) -> tuple[int, list[CropGeometry]]:
        """Write the group's planes into the GPU batch buffer, frame after frame; returns its
        address and the frames' crop geometries."""
        if self._gpu_preprocessor is None:
            prepared = [self.input_planes(image, depth_m) for image, depth_m in group]
            planes_ptr = self._host_planes.upload(
                np.concatenate([planes for planes, _geometry in prepared]))
            return planes_ptr, [geometry for _planes, geometry in prepared]
        geometries = [self._colour_planes_on_gpu(image, frame)
                      for frame, (image, _depth_m) in enumerate(group)]
        return self._gpu_preprocessor.planes_ptr, geometries

    def _colour_planes_on_gpu(self, image: CameraImage, frame: int) -> CropGeometry:
        """Write ``image``'s B, G, R planes into batch slot ``frame``; returns its geometry."""
        raw = image if isinstance(image, RawImage) else bgr_as_raw_image(image)
        geometry = crop_geometry(raw.height, raw.width, self.preprocess_config)
        if raw.layout.bytes_per_channel == 1 and geometry.scale == 1.0:
            self._gpu_preprocessor.upload_and_preprocess(raw, geometry, frame)
            return geometry
        host_planes, geometry = self.input_planes(raw, None)
        self._gpu_preprocessor.upload_planes(host_planes, frame)
        return geometry

    def close(self) -> None:
        """Free the GPU buffers and pop the context (on the creating thread); the detector
        closes the backend after this. Safe to call twice."""
        if self._context is not None and threading.get_ident() != self._thread:
            raise RuntimeError(
                "close the GPU detector on the thread that created it (its CUDA context is "
                "current there only); the InferenceWorker does this for the node")
        self._release()

    def _release(self) -> None:
        for processor in (self._graphs, self._gpu_preprocessor, self._host_planes,
                          self._decoder):
            if processor is not None:
                processor.close()
        # The stream must be destroyed here, with the context current on this thread; left to
        # the garbage collector on another thread it can abort the process.
        self._graphs = self._gpu_preprocessor = self._host_planes = self._decoder = None
        self._stream = None
        context, self._context = self._context, None
        if context is not None:
            context.release()
