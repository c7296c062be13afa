"""The one error every model loader raises, whichever layer loads (ONNX file, checkpoint,
engine), so callers catch one type."""


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable, or does not have SGDN's inputs and outputs."""
