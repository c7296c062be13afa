#!/usr/bin/env bash
# Adds `ros2 launch`, `ros2 lifecycle`, ... to the environment scripts/setup_env.sh built, from the
# launch kit beside the repository (../shared/wheels/ros-launch-kilted/: launch, launch_ros and
# ros2cli built from their public sources; PyPI has none of them). Without the kit: one line
# saying so, and the launch tests skip with that reason. Called by scripts/setup_env.sh.
# The kit's install.sh runs again only when the kit or the venv changed (a stamp in the venv
# holds the kit's checksums), so a second setup costs nothing here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env_paths.sh"
kit="$sgdn_repo/../shared/wheels/ros-launch-kilted"
if [[ ! -f "$kit/install.sh" ]]; then
  echo "install_launch_kit: no launch kit at $kit: ros2 launch is not installed (the launch tests skip)"
  exit 0
fi
stamp="$sgdn_venv/.sgdn-launch-kit.sha256"
wanted=$(cat "$kit/SHA256SUMS" "$sgdn_venv/.sgdn-requirements.sha256" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" \
      && -d "$sgdn_workspace/install/composition_interfaces" ]]; then
  exit 0
fi
echo "install_launch_kit: installing ros2 launch and ros2cli from $kit"
bash "$kit/install.sh" "$sgdn_repo"
echo "$wanted" > "$stamp"
