"""The pure-Python side of sgdn_ros for pip (no ROS needed): `pip install .` gives the pipeline
and the `sgdn-ros` command (detect, txt, make-test-model, make-scenes). In a ROS 2 workspace
colcon builds the package with CMakeLists.txt instead (package.xml: build_type ament_cmake),
which also generates the messages and installs the `detector` node."""

from setuptools import find_packages, setup

setup(
    name="sgdn_ros",
    version="0.1.0",
    description="SGDN pixel-level grasp detection: pipeline and command line (ROS 2 node via colcon)",
    license="Apache-2.0",
    packages=find_packages(include=["sgdn_ros", "sgdn_ros.*"]),
    package_data={"sgdn_ros": ["models/*.onnx"]},
    python_requires=">=3.10",
    install_requires=["numpy>=1.21", "opencv-python-headless>=4.5", "onnx>=1.12",
                      "onnxruntime>=1.12"],
    entry_points={"console_scripts": ["sgdn-ros = sgdn_ros.tools.cli:main"]},
)
