"""GPU pre- and post-processing with pycuda, for backends that work in GPU memory (TensorRT,
torch on CUDA): the CUDA context per thread, the kernels, the GPU detector, the GPU benchmarks.

pycuda is optional and imported lazily: importing these modules works without it, and using them
raises ``GpuUnavailableError`` with what to install. Everything runs on the CUDA primary context
(the one TensorRT and the CUDA runtime use), made current on the inference thread by
``CudaContext``.
"""
