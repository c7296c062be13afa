"""GPU pre- and post-processing with pycuda, for backends that work in GPU memory (TensorRT,
torch on CUDA): ``cuda_context`` (the CUDA context per thread), ``preprocess_kernels`` (raw
bytes to input planes), ``decode_kernels`` (output maps to grasps), and what they share:
``buffers``, ``launch``, ``errors``. Each handles a batch of frames, one after the other in
one contiguous buffer.

pycuda is optional and imported lazily: importing these modules works without it, and using them
raises ``GpuUnavailableError`` with what to install. Everything runs on the CUDA primary context
(the one TensorRT and the CUDA runtime use), made current on the inference thread by
``CudaContext``. This layer imports only ``sgdn_ros.core``.
"""
