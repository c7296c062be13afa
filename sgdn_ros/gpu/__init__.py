"""GPU pre- and post-processing for the TensorRT backend, with pycuda.

pycuda is optional and imported lazily: importing these modules works without it, and using them
raises ``GpuUnavailableError`` with what to install. Everything runs on the CUDA primary context
(the one TensorRT uses), made current on the inference thread by ``CudaContext``.
"""
