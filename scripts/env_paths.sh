# Where scripts/setup_env.sh puts the local environment; sourced by the other scripts.
# It lies outside the source tree, as a ROS workspace's build and install folders do: CMake
# refuses exported include paths inside the package's source directory (the venv's numpy).
sgdn_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sgdn_env_root=${SGDN_ROS_ENV_DIR:-"${XDG_CACHE_HOME:-$HOME/.cache}/sgdn_ros/$(basename "$sgdn_repo")-$(printf '%s' "$sgdn_repo" | sha256sum | cut -c1-8)"}
sgdn_venv="$sgdn_env_root/venv"
sgdn_workspace="$sgdn_env_root/ws"
