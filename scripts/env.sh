# Source this (bash) after scripts/setup_env.sh: puts the venv and the colcon install space on
# the path, as sourcing a ROS workspace's install/setup.bash would, and keeps DDS on loopback.
source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh"
if [[ ! -f "$sgdn_workspace/install/setup.sh" ]]; then
  echo "env.sh: no build in $sgdn_env_root; run scripts/setup_env.sh first" >&2
  return 1
fi
export VIRTUAL_ENV="$sgdn_venv"
export PATH="$sgdn_venv/bin:$PATH"
export AMENT_PREFIX_PATH="$sgdn_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# colcon's setup scripts read unset variables: relax `set -u` while they run.
case $- in *u*) sgdn_nounset=1; set +u ;; *) sgdn_nounset= ;; esac
COLCON_CURRENT_PREFIX="$sgdn_workspace/install" source "$sgdn_workspace/install/setup.sh"
[[ -n $sgdn_nounset ]] && set -u
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
