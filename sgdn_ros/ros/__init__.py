"""The ROS 2 layer, the only one that imports rclpy and the messages: the lifecycle node
(``node``) with the ROS side of the parameter table (``parameters``) and its publishers
(``outputs``), message conversion (``messages``), the image player, and the sessions the demo,
the benchmark, ``sgdn-ros play`` and the tests drive the installed node with (``session``)."""
