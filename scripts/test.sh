#!/usr/bin/env bash
# The test command (README): the whole suite on the CPU, what CI runs. With a virtualenv
# active (as .ci/run does) it runs in that one, and names in one line each any reference it
# lacks (torch peers, TF.js) whose tests will skip; otherwise in the project's .venv, made and
# installed first when missing, with those references (scripts/setup_venv.sh
# --with-references), so it works before or without run_experiment.sh.
#   --quick: only the tests not marked slow (-m "not slow": no subprocesses, no big compiles,
#   no end-to-end runs), for the edit-test loop. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
MARK=()
if [ "${1:-}" = "--quick" ]; then
  MARK=(-m "not slow")
  shift
fi
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PYTHON=python
  bash scripts/install_references.sh "$PYTHON" --check
else
  bash scripts/setup_venv.sh --with-references
  PYTHON=.venv/bin/python
fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"

# One pytest process per folder of tests/, and one for the files at its top: run as a single
# process of ~900 tests, XLA's CPU compiler segfaulted late in the run, in a different test
# each time (twice under CI, once here), while the same tests passed in shorter processes.
# A path among the arguments runs that alone, in one process. Exit status: 1 when any part
# fails (every part still runs); a part with no test selected (pytest's 5) is no failure.
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then
    "$PYTHON" -m pytest -q ${MARK[@]+"${MARK[@]}"} "$@"
    exit
  fi
done
shopt -s nullglob
PARTS=()
for dir in tests/*/; do
  case "$dir" in */__pycache__/) continue ;; esac
  PARTS+=("${dir%/}")
done
TOP=(tests/test_*.py)
if [ ${#TOP[@]} -gt 0 ]; then PARTS+=("${TOP[*]}"); fi
[ ${#PARTS[@]} -gt 0 ] || PARTS=(tests)
FAILED=()
for part in "${PARTS[@]}"; do
  echo "== $part"
  # shellcheck disable=SC2086  # a part of top-level files is several paths
  if "$PYTHON" -m pytest $part -q ${MARK[@]+"${MARK[@]}"} "$@"; then
    :
  else
    code=$?
    [ "$code" -eq 5 ] || FAILED+=("$part (exit $code)")
  fi
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "test.sh: failed: ${FAILED[*]}" >&2
  exit 1
fi
echo "test.sh: all ${#PARTS[@]} parts passed"
