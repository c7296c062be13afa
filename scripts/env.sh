# Source this (bash) after scripts/setup_env.sh, with the same SGDN_ROS_DISTRO (default jazzy):
# puts that distribution's venv and colcon install space on the path, as sourcing a ROS
# workspace's install/setup.bash would (ROS_DISTRO included), and keeps DDS on loopback.
source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh" || return 1
if [[ ! -f "$sgdn_workspace/install/setup.sh" ]]; then
  echo "env.sh: no ROS 2 ${sgdn_distro^} build in $sgdn_env_root; run" \
       "SGDN_ROS_DISTRO=$sgdn_distro bash scripts/setup_env.sh first" >&2
  return 1
fi
export ROS_DISTRO=$sgdn_distro
export VIRTUAL_ENV="$sgdn_venv"
export PATH="$sgdn_venv/bin:$PATH"
export AMENT_PREFIX_PATH="$sgdn_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup scripts read unset variables: relax `set -u` while they run.
case $- in *u*) sgdn_nounset=1; set +u ;; *) sgdn_nounset= ;; esac
COLCON_CURRENT_PREFIX="$sgdn_workspace/install" source "$sgdn_workspace/install/setup.sh"
[[ -n $sgdn_nounset ]] && set -u
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
