#!/usr/bin/env bash
# The tests on a fresh machine: set up, then pytest against the package colcon installed.
# Extra arguments go to pytest (e.g. scripts/test.sh -k decoding).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
source "$repo/scripts/env.sh"
cd "$repo"
ruff check sgdn_ros test launch
# The layers (.importlinter), checked on the source tree.
lint-imports
# `pytest` (not `python -m pytest`) keeps the source folder off sys.path, so the tests import the
# installed package, messages included, as a workspace user would.
exec pytest "$@"
