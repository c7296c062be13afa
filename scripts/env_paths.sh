# Where scripts/setup_env.sh puts the local environment of the chosen ROS 2 distribution
# (SGDN_ROS_DISTRO: jazzy, the default, or kilted); sourced by the other scripts.
# It lies outside the source tree, as a ROS workspace's build and install folders do: CMake
# refuses exported include paths inside the package's source directory (the venv's numpy).
# Each distribution has its own venv and colcon workspace, so both can be built side by side.
sgdn_distros="jazzy kilted"
sgdn_distro=${SGDN_ROS_DISTRO:-jazzy}
if [[ " $sgdn_distros " != *" $sgdn_distro "* ]]; then
  echo "SGDN_ROS_DISTRO=$sgdn_distro is not one this project builds: use one of $sgdn_distros" >&2
  return 1
fi
sgdn_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sgdn_requirements="$sgdn_repo/scripts/requirements-$sgdn_distro.txt"
sgdn_env_root="${SGDN_ROS_ENV_DIR:-"${XDG_CACHE_HOME:-$HOME/.cache}/sgdn_ros/$(basename "$sgdn_repo")-$(printf '%s' "$sgdn_repo" | sha256sum | cut -c1-8)"}/$sgdn_distro"
sgdn_venv="$sgdn_env_root/venv"
sgdn_workspace="$sgdn_env_root/ws"
