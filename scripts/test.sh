#!/usr/bin/env bash
# The test command (README): the whole suite on the CPU. With a virtualenv active (as .ci/run
# does) it runs in that one; otherwise in the project's .venv, made and installed first
# when missing (scripts/setup_venv.sh), so it works before or without run_experiment.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PYTHON=python
else
  bash scripts/setup_venv.sh
  PYTHON=.venv/bin/python
fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
"$PYTHON" -m pytest tests -q "$@"
