"""TorchInductor for the torch backend: compiled at load, cached on disk, eager where it fails.

Measured on an H200 (ResNet-101 SGDN, K = 120, FP16, batch 1): inductor's kernels without its
own CUDA graphs ("default" mode), replayed from our CUDA graph, 1.38 ms per forward pass;
``mode="reduce-overhead"`` (inductor's CUDA graph trees) 1.64 ms; ``max-autotune-no-cudagraphs``
1.59 ms after 326 s of autotuning; the eager network in our graph 2.85 ms. The light model:
0.32 ms, 0.73 ms and 0.66 ms. So the backend compiles in "default" mode and keeps one owner of
CUDA graphs: its ``cuda_graph`` option and the GPU path's frame graph record the compiled
kernels like any other stream work, and no graph of inductor's exists to clash with them.

The first compile of ResNet-101 took 22 s there, a restart with the same cache 4.4 s: the
compiled graph (FX graph cache) and the Triton kernels are kept under
``<engine cache folder>/torch_inductor`` (``TORCHINDUCTOR_CACHE_DIR``, unless the environment
already names one: it is process-wide).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from sgdn_ros.backends.tensorrt.engine_cache import default_cache_dir
from sgdn_ros.network.network import SGDN

INDUCTOR_FOLDER = "torch_inductor"


def compile_cache_dir(engine_cache_dir: str | os.PathLike[str] | None) -> pathlib.Path:
    """Where the compiled network is cached: beside the TensorRT plans."""
    root = pathlib.Path(engine_cache_dir) if engine_cache_dir else default_cache_dir()
    return root / INDUCTOR_FOLDER


def compile_refusal(device: torch.device) -> str | None:
    """Why compiling cannot run here, or None."""
    if device.type != "cuda":
        return (f"the network runs on {device}; torch_compile is for CUDA GPUs here (on the CPU "
                "inductor needs a C++ toolchain and gives little at batch 1)")
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (TorchInductor generates its GPU kernels with it)"
    return None


class HeadLogits(nn.Module):
    """What the torch backend runs, eager or compiled: the network's logits as contiguous
    float32, the able map at the input's size and, for a bilinear network, the angle and width
    maps at their heads' size (``SGDN.forward_heads``: the GPU decoders sample them at the
    chosen pixels; ``infer`` upsamples them). Nearest-upsampling networks give every map at
    full size (the decoders sample bilinearly only).

    The cast happens inside the compiled region, where inductor fuses it into the map's last
    kernel: cast after it, every map took one more transposing copy out of channels-last (0.17
    ms a frame at K = 120 on the H200, profiled).
    """

    def __init__(self, network: SGDN) -> None:
        super().__init__()
        self.network = network
        self.heads_only = network.config.upsample == "bilinear"

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.network.forward_heads(inputs) if self.heads_only else self.network(inputs)
        return tuple(logits.to(torch.float32, memory_format=torch.contiguous_format)
                     for logits in maps)


def compile_network(model: HeadLogits, examples: Sequence[torch.Tensor],
                    cache_dir: pathlib.Path) -> tuple[Callable[[torch.Tensor], tuple], str]:
    """``model`` compiled for each example input's shape (one per batch size, so no frame
    waits for a compile), and a note for the log: the time it took, or why the eager network
    runs instead."""
    refusal = compile_refusal(examples[0].device)
    if refusal is not None:
        return model, f"; torch_compile fell back to the eager network: {refusal}"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
    torch._inductor.config.fx_graph_cache = True
    dynamo_config = torch._dynamo.config
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, len(examples))
    started = time.perf_counter()
    try:
        compiled = torch.compile(model, mode="default", dynamic=False)
        with torch.no_grad():
            for example in examples:
                compiled(example)
        torch.cuda.synchronize(examples[0].device)
    except Exception as error:  # noqa: BLE001 - any compiler failure leaves the eager network
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return model, (f"; torch_compile fell back to the eager network: compiling failed "
                       f"({type(error).__name__}: {first_line})")
    return compiled, (f"; compiled with TorchInductor in {time.perf_counter() - started:.1f} s "
                      f"(cache {os.environ['TORCHINDUCTOR_CACHE_DIR']})")
