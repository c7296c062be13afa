"""The author's way of running SGDN, for the GPU benchmark's baseline row, in a process of its
own: ``python3 -m sgdn_ros.tools.authors_way WEIGHTS THRESHOLD REPEATS`` is the child that
``authors_way_in_a_child`` starts, on the weights the benchmark saved and the same frame."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, decode_grasps_full
from sgdn_ros.core.frames import bgr_as_raw_image, raw_image_to_bgr
from sgdn_ros.core.preprocessing import PreprocessConfig
from sgdn_ros.core.reference_stages import reference_planes
from sgdn_ros.gpu.errors import GpuProcessingError
from sgdn_ros.tools.timing import median_wall_ms

FRAME_HEIGHT, FRAME_WIDTH = 480, 640


def benchmark_scene() -> np.ndarray:
    """The benchmark's one frame (640x480 bgr8, three objects), the same in every process."""
    from sgdn_ros.training.scenes import render_tabletop_scene

    return render_tabletop_scene(0, FRAME_HEIGHT, FRAME_WIDTH, num_objects=3)[0]


class AuthorsWay:
    """The published way of running SGDN: eager FP32, every map copied to the host, the
    preprocessing and the whole-map decoding on the CPU (the stages kept as the reference)."""

    def __init__(self, backend) -> None:
        info = backend.info
        self.backend = backend
        self.decode_config = DecodeConfig()
        self.map_bytes = 4 * info.output_height * info.output_width * (
            1 + info.num_angle_classes + info.width_channels)

    def detect(self, frame) -> list:
        planes, geometry = reference_planes(raw_image_to_bgr(frame), PreprocessConfig())
        outputs = self.backend.infer(planes)
        return decode_grasps_full(outputs.able, outputs.angle, outputs.width, geometry,
                                  self.decode_config)

    def close(self) -> None:
        self.backend.close()


def authors_way_in_a_child(model, config, threshold: float, repeats: int
                            ) -> tuple[float, list[SimpleNamespace], int]:
    """The author's way on the same weights and frame, in a process of its own: its FP32 maps
    copied to pageable memory and whole-map decoding left the host side of later frames in
    the same process slower (the compiled path's ResNet-101 frame 1.62 -> 1.76 ms, probed on
    the H200), which a node, running one detector, never pays. Median milliseconds, the
    grasps, bytes copied back per frame."""
    import torch

    with tempfile.TemporaryDirectory() as folder:
        weights = pathlib.Path(folder) / "weights.pt"
        torch.save({"config": dataclasses.asdict(config), "state": model.state_dict()}, weights)
        finished = subprocess.run(
            [sys.executable, "-m", "sgdn_ros.tools.authors_way", str(weights),
             repr(threshold), str(repeats)],
            capture_output=True, text=True, check=False, timeout=1200)
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        raise GpuProcessingError(f"the author's way failed in its process: "
                                 f"{finished.stderr.strip()[-500:]}")
    result = json.loads(lines[-1])
    grasps = [SimpleNamespace(crop_row=row, crop_col=col, angle_class=angle_class,
                              confidence=confidence)
              for row, col, angle_class, confidence in result["grasps"]]
    return result["ms"], grasps, result["map_bytes"]


def _authors_way_main(weights: str, threshold: str, repeats: str) -> int:
    """The child's side of ``authors_way_in_a_child``: one JSON line."""
    import torch

    from sgdn_ros.backends.torch_backend import TorchBackend
    from sgdn_ros.network.network import SGDNConfig, build_sgdn

    saved = torch.load(weights, map_location="cpu", weights_only=True)
    config = SGDNConfig(**saved["config"])
    model = build_sgdn(config)
    model.load_state_dict(saved["state"])
    author = AuthorsWay(TorchBackend.from_module(model, config, device="cuda",
                                                 precision="fp32"))
    author.decode_config = DecodeConfig(confidence_threshold=float(threshold))
    frame = bgr_as_raw_image(benchmark_scene())
    try:
        milliseconds = median_wall_ms(lambda: author.detect(frame), int(repeats))
        grasps = [(g.crop_row, g.crop_col, g.angle_class, g.confidence)
                  for g in author.detect(frame)]
    finally:
        author.close()
    print(json.dumps({"ms": milliseconds, "grasps": grasps, "map_bytes": author.map_bytes}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python3 -m sgdn_ros.tools.authors_way WEIGHTS THRESHOLD REPEATS")
    raise SystemExit(_authors_way_main(*sys.argv[1:]))
