"""Start the SGDN grasp detector with config/detector.yaml and bring it to active.

    ros2 launch sgdn_ros detect.launch.py image:=/camera/color/image_raw
    ros2 launch sgdn_ros detect.launch.py model_path:=/path/to/sgdn.onnx rviz:=true

With a RealSense (realsense2_camera 4.x; `ros2 launch realsense2_camera rs_launch.py
align_depth.enable:=true`), 3-D grasp poses in the colour camera's optical frame:

    ros2 launch sgdn_ros detect.launch.py use_depth:=true \
        image:=/camera/camera/color/image_raw \
        depth:=/camera/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/camera/color/camera_info

Several cameras through one model (parameter cameras): camera `left` is read from
`left/image_raw` and answered on `left/grasp`, `left/grasps`, ... (remap each camera's topics
with `--ros-args -r`, or run the cameras' drivers under those namespaces):

    ros2 launch sgdn_ros detect.launch.py cameras:='[left, right]'

The node activates itself (parameter autostart, true in the YAML); set autostart:=false to leave
the transitions to a lifecycle manager.
"""

import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

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
        DeclareLaunchArgument("cameras", default_value="[]",
                              description="Camera namespaces, e.g. '[left, right]'; []: one "
                                          "camera on the node's own topics"),
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
            # A path such as 2024 would otherwise be typed as an integer and refused.
            {"model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
             "cameras": ParameterValue(LaunchConfiguration("cameras"), value_type=list[str]),
             "autostart": LaunchConfiguration("autostart"),
             "use_depth": LaunchConfiguration("use_depth")},
        ],
        remappings=[("image_raw", LaunchConfiguration("image")),
                    ("image_raw/compressed", [LaunchConfiguration("image"), "/compressed"]),
                    ("depth/image_raw", LaunchConfiguration("depth")),
                    ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
    )
    return LaunchDescription([*arguments, detector, OpaqueFunction(function=_rviz)])


def _rviz(context) -> list:
    """RViz with the package's view, when asked for and installed; without rviz2 a note, not
    a failed launch (which would leave the detector running on its own)."""
    if LaunchConfiguration("rviz").perform(context).lower() not in ("true", "1", "yes"):
        return []
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="rviz:=true, but rviz2 is not installed here: starting without it "
                            "(install ros-<distro>-rviz2 to see the grasps)")]
    config = os.path.join(get_package_share_directory("sgdn_ros"), "config", "sgdn_ros.rviz")
    return [Node(package="rviz2", executable="rviz2", arguments=["-d", config])]
