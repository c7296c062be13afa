"""TensorRT (8.5 to 11, or TensorRT for RTX): finding the module and its features, building
and caching engines, and the runtime backend that executes them through pycuda."""
