"""Model files: the trained default shipped here (``*.onnx``, see README.md), the synthetic
test model, the metadata an SGDN ONNX file carries, and its FP16 copy. Needs ``onnx``, never
torch."""
