#!/usr/bin/env bash
# The tests on a fresh machine, on each ROS 2 distribution this project builds. Two legs, each
# with its own environment (scripts/setup_env.sh) and pytest against the package colcon
# installed there:
#   1. SGDN_ROS_DISTRO (default jazzy): ruff, lint-imports and the whole suite;
#   2. each distribution in SGDN_ROS_ALSO_TEST_ON (default: the others, i.e. kilted): the
#      ROS-facing tests (`pytest -m ros`; test/conftest.py says which those are).
# Extra arguments go to pytest in both legs (e.g. scripts/test.sh -x -q test/test_decoding.py);
# SGDN_ROS_ALSO_TEST_ON= (empty) runs the first leg only.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/scripts/env_paths.sh"
main_distro=$sgdn_distro
others=${SGDN_ROS_ALSO_TEST_ON-$(for d in $sgdn_distros; do [[ $d == "$main_distro" ]] || echo "$d"; done)}
summaries=()

# run_leg DISTRO WHAT PYTEST-ARGS...: set DISTRO up, run pytest there, keep its closing line.
run_leg() {
  local distro=$1 what=$2 log status
  shift 2
  echo "test.sh: ROS 2 ${distro^}: $what"
  SGDN_ROS_DISTRO=$distro bash "$repo/scripts/setup_env.sh"
  log=$(mktemp)
  status=0
  (
    # (`|| exit`: this runs where bash ignores `set -e`, left of `||`.)
    export SGDN_ROS_DISTRO=$distro
    source "$repo/scripts/env.sh" || exit
    cd "$repo"
    if [[ $distro == "$main_distro" ]]; then
      ruff check sgdn_ros test launch || exit
      # The layers (.importlinter), checked on the source tree.
      lint-imports || exit
    fi
    # `pytest` (not `python -m pytest`) keeps the source folder off sys.path, so the tests import
    # the installed package, messages included, as a workspace user would.
    tests=0
    pytest "$@" || tests=$?
    # The tests' in-process participants hold their Fast DDS segments until pytest has ended
    # (test/conftest.py removes only those of ended processes): remove them now.
    python -c 'from sgdn_ros.ros.dds_isolation import remove_stale_shared_memory as remove; remove()'
    exit "$tests"
  ) 2>&1 | tee "$log" || status=$?
  summaries+=("ROS 2 ${distro^}, $what: $(grep -E ' in [0-9.]+s' "$log" | tail -n 1 | tr -d '=' | xargs)")
  rm -f "$log"
  return "$status"
}

run_leg "$main_distro" "the whole suite" "$@"
for distro in $others; do
  status=0
  run_leg "$distro" "the ROS-facing tests" -m ros "$@" || status=$?
  # pytest's 5: none of the tests the arguments selected is ROS-facing; without arguments that
  # would mean the marker found nothing, which is a failure.
  if [[ $status -eq 5 && $# -gt 0 ]]; then
    echo "test.sh: none of the selected tests is ROS-facing: nothing to run on ${distro^}"
  elif [[ $status -ne 0 ]]; then
    exit "$status"
  fi
done
printf 'test.sh: %s\n' "${summaries[@]}"
