#!/usr/bin/env bash
# The demo on a fresh machine: set up (first run: a few minutes), then run the detector end to
# end on sample tabletop scenes. Output: demo_output/ (annotated images, heatmaps, the node's log).
# On ROS 2 Jazzy by default; SGDN_ROS_DISTRO=kilted runs it on Kilted (its own environment).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
source "$repo/scripts/env.sh"
cd "$repo"
sgdn-ros demo --sim --out "${1:-demo_output}"
