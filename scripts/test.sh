#!/usr/bin/env bash
# The test command (README): the whole suite on the CPU, with the project's virtualenv
# (.venv, made by scripts/run_experiment.sh) unless one is already active.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=python
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$PYTHON" -m pytest tests -q "$@"
