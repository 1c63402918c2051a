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
"$PYTHON" -m pytest tests -q ${MARK[@]+"${MARK[@]}"} "$@"
