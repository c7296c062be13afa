"""Start the SGDN grasp detector with config/detector.yaml and bring it to active.

    ros2 launch sgdn_ros detect.launch.py image:=/camera/color/image_raw
    ros2 launch sgdn_ros detect.launch.py model_path:=/path/to/sgdn.onnx rviz:=true

With a RealSense (realsense2_camera 4.x; `ros2 launch realsense2_camera rs_launch.py
align_depth.enable:=true`), 3-D grasp poses in the colour camera's optical frame:

    ros2 launch sgdn_ros detect.launch.py use_depth:=true \
        image:=/camera/camera/color/image_raw \
        depth:=/camera/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/camera/color/camera_info

The node activates itself (parameter autostart, true in the YAML); set autostart:=false to leave
the transitions to a lifecycle manager.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("sgdn_ros")
    arguments = [
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "detector.yaml"),
                              description="Parameters YAML of the detector"),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="Camera image topic to subscribe to"),
        DeclareLaunchArgument("depth", default_value="depth/image_raw",
                              description="Depth image aligned to the colour image (use_depth)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info of the colour camera (use_depth)"),
        DeclareLaunchArgument("use_depth", default_value="false",
                              description="Pair depth + camera_info and publish 3-D grasp poses"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="SGDN ONNX model; empty: the built-in default"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate without a lifecycle manager"),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start RViz"),
    ]
    detector = LifecycleNode(
        package="sgdn_ros",
        executable="detector",
        name="sgdn_detector",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"model_path": LaunchConfiguration("model_path"),
             "autostart": LaunchConfiguration("autostart"),
             "use_depth": LaunchConfiguration("use_depth")},
        ],
        remappings=[("image_raw", LaunchConfiguration("image")),
                    ("image_raw/compressed", [LaunchConfiguration("image"), "/compressed"]),
                    ("depth/image_raw", LaunchConfiguration("depth")),
                    ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "config", "sgdn_ros.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, detector, rviz])
