"""The ROS 2 layer, the only one that imports rclpy and the messages: the lifecycle node,
message conversion and publishing, the image player and the session helpers the demo and the
benchmark drive the installed node with."""
