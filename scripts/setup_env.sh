#!/usr/bin/env bash
# Builds the local environment the demo and the tests run in, on a machine without ROS 2, for the
# ROS 2 distribution SGDN_ROS_DISTRO names (jazzy, the default, or kilted):
#   venv/          Python venv with that distribution's wheels from PyPI
#                  (scripts/requirements-<distro>.txt) and the pipeline's packages
#   ws/install/    this package built by colcon against that distribution's rosidl generators, as
#                  a ROS workspace builds it (messages + Python)
# both under the folder scripts/env_paths.sh names (~/.cache/sgdn_ros/<checkout>-<hash>/<distro>/,
# or $SGDN_ROS_ENV_DIR/<distro>). Safe to run again: packages are reinstalled only when the
# requirements files change, and colcon rebuilds incrementally. Source scripts/env.sh afterwards
# (with the same SGDN_ROS_DISTRO) to use the result.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh"
repo=$sgdn_repo
distro=$sgdn_distro
venv=$sgdn_venv
work=$sgdn_workspace
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
  echo "setup_env: need Python 3.10 to 3.12 (ROS 2 Humble to Kilted); $python is $("$python" -V 2>&1)." >&2
  echo "setup_env: set PYTHON=/path/to/python3.x and run again." >&2
  exit 1
fi

requirements=$sgdn_requirements
# The venv is rebuilt when the distribution's file or a file it includes (-r) changes.
included=$(sed -n 's/^-r[[:space:]]*//p' "$requirements")
stamp="$venv/.sgdn-requirements.sha256"
wanted=$(cd "$(dirname "$requirements")" && cat "$requirements" $included | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  echo "setup_env: creating $venv (ROS 2 ${distro^} wheels, ONNX Runtime, OpenCV; a few minutes the first time)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # (This machine's pip configuration may name local mirrors that do not exist; hide that noise.)
  quiet_pip() { "$venv/bin/python" -m pip --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  quiet_pip install --upgrade pip
  quiet_pip install -r "$requirements"
  # The wheels' CMake exports name the include folders of the machine that built them; point them
  # at this interpreter's so that message generation can configure.
  py_include=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
  py_tag=$("$venv/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  py_ver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  grep -rlZ "/opt/python/" "$venv/share" --include='*.cmake' | xargs -0 -r sed -i \
    -e "s#/opt/python/${py_tag}-${py_tag}/include/python${py_ver}#${py_include}#g" \
    -e "s#/opt/python/${py_tag}-${py_tag}/lib/python${py_ver}/site-packages/numpy/_core/include#${np_include}#g"
  echo "$wanted" > "$stamp"
fi

echo "setup_env: building sgdn_ros with colcon against ROS 2 ${distro^} into $work/install"
mkdir -p "$work"
(
  cd "$work"
  export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
  "$venv/bin/python" -m colcon --log-base "$work/log" build \
    --paths "$repo" --build-base "$work/build" --install-base "$work/install" \
    --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
    > "$work/colcon-build.log" 2>&1 \
    || { tail -n 60 "$work/colcon-build.log" >&2; echo "setup_env: colcon build failed (full log: $work/colcon-build.log)" >&2; exit 1; }
)
# ros2 launch and the ros2 CLI (the launch kit in ../shared/wheels/ros-launch-kilted/), after
# the package (the kit checks `ros2 pkg prefix sgdn_ros`). The kit is built from Kilted-era
# sources and fits both distributions: on Jazzy (rclpy 7) it installed and ran ros2 launch,
# lifecycle, param, topic, node and interface, and the launched detector answered an image.
bash "$repo/scripts/install_launch_kit.sh"
echo "setup_env: ROS 2 ${distro^} ready in $sgdn_env_root (source scripts/env.sh to use it)"
