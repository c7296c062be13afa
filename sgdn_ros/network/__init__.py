"""SGDN in PyTorch: the network, checkpoint loading and ONNX export (needs ``torch``).

Import the submodules (``sgdn_ros.network.network``, ``.checkpoint``, ``.export``) where needed;
this package imports nothing itself, so that listing it never pulls in torch.
"""
