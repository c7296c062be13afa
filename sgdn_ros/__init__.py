"""SGDN pixel-level grasp detection for ROS 2.

The pipeline modules (conversion, preprocessing, backends, decoding, drawing) are plain
Python and NumPy and import no ROS package; only ``sgdn_ros.ros.node`` and the ROS parts of the
command line need rclpy and the generated messages (``sgdn_ros.msg``).
"""

__version__ = "0.1.0"
