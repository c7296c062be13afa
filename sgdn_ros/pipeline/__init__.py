"""One frame, or a batch of frames, from camera bytes to grasps: the detector that runs the
stages in order on the CPU or the GPU path (chosen by composition in ``factory``), the
inference thread, the counters, the parameter table the node and the README share, the typed
settings built from it (``settings``) and the loading of a detector from them (``loading``).

No ROS here: the node in ``sgdn_ros.ros`` only wires topics and lifecycle to this layer.
"""
