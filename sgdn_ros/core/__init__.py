"""The frame's path through plain Python and NumPy: raw camera bytes -> frame (``frames``) ->
network input (``preprocessing``, with the crop mapping in ``geometry``) -> grasps
(``decoding``) -> debug pictures (``drawing``).

Imports no ROS, torch, pycuda or inference runtime, so every stage is testable anywhere.
"""
