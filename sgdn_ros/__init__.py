"""SGDN pixel-level grasp detection for ROS 2.

Layers, bottom to top (README "Architecture"; `.importlinter` checks them): ``core`` (frames,
preprocessing, geometry, decoding: plain NumPy), ``gpu`` and ``models``, ``network`` (torch),
``backends``, ``pipeline`` (the detector), ``ros`` and ``training``, ``tools``. Only
``sgdn_ros.ros`` imports rclpy and the generated messages (``sgdn_ros.msg``).
"""

__version__ = "0.1.0"
