#!/usr/bin/env bash
# The demo on a fresh machine: set up (first run: a few minutes), then run the detector end to
# end on sample tabletop scenes. Output: demo_output/ (annotated images, heatmaps, the node's log).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
source "$repo/scripts/env.sh"
cd "$repo"
sgdn-ros demo --out "${1:-demo_output}"
