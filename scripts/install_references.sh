#!/usr/bin/env bash
# The tests' references that `pip install .[test]` does not give, pinned here and only here
# (.ci/run and scripts/setup_venv.sh call this script):
#   - the benchmark's torch peers: setup.cfg's `peers` extra (torch) and torchattacks, without
#     the torchvision it declares, which its FGSM/PGD never import (tests/benchmarks);
#   - the official TF.js runtime (pure-JavaScript CPU backend), the reference of the MobileFace
#     port's exactness test (tests/models/test_mobileface.py reads TFJS_VERSION from here),
#     installed with npm into .cache/node.
#
#   bash scripts/install_references.sh PYTHON            installs; any failure is an error (CI)
#   bash scripts/install_references.sh PYTHON --if-missing   installs what is missing; where
#       that fails, one line says what will skip and how to get it, and it goes on (test.sh)
#   bash scripts/install_references.sh PYTHON --check    installs nothing; one line for each
#       reference that is missing
set -euo pipefail
cd "$(dirname "$0")/.."
TORCHATTACKS_VERSION=3.5.1
TFJS_VERSION=4.22.0

PY="${1:?usage: install_references.sh PYTHON [--if-missing | --check]}"
MODE="${2:-}"
NODE_MODULES="${FGSM_JAX_NODE_MODULES:-.cache/node/node_modules}"
HOW="bash scripts/install_references.sh $PY"

have_torch() {
  "$PY" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("torch") and u.find_spec("torchattacks")))'
}
have_tfjs() {
  command -v node >/dev/null 2>&1 && grep -q "\"version\": \"$TFJS_VERSION\"" \
    "$NODE_MODULES/@tensorflow/tfjs/package.json" 2>/dev/null
}
install_torch() {
  "$PY" -m pip install --quiet -e ".[peers]" \
    && "$PY" -m pip install --quiet --no-deps "torchattacks==$TORCHATTACKS_VERSION"
}
install_tfjs() {
  npm install --prefix .cache/node --no-audit --no-fund --ignore-scripts --silent \
    "@tensorflow/tfjs@$TFJS_VERSION"
}
TORCH_SKIPS="the torch peer tests (tests/benchmarks) skip"
TFJS_SKIPS="MobileFace's TF.js exactness test (tests/models/test_mobileface.py) skips"

case "$MODE" in
  "")
    install_torch
    install_tfjs
    ;;
  --if-missing)
    log="$(mktemp)"
    if ! have_torch; then
      echo "installing the torch peers (setup.cfg [peers], torchattacks $TORCHATTACKS_VERSION) for the benchmark tests" >&2
      install_torch >"$log" 2>&1 \
        || echo "note: torch peers not installed (pip failed: $(tail -n 1 "$log")); $TORCH_SKIPS; retry: $HOW" >&2
    fi
    if ! have_tfjs; then
      if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
        install_tfjs >"$log" 2>&1 \
          || echo "note: @tensorflow/tfjs $TFJS_VERSION not installed (npm failed: $(tail -n 1 "$log")); $TFJS_SKIPS; retry: $HOW" >&2
      else
        echo "note: node/npm not found, so $TFJS_SKIPS; install nodejs and npm (e.g. apt-get install nodejs npm), then: $HOW" >&2
      fi
    fi
    rm -f "$log"
    ;;
  --check)
    have_torch || echo "note: torch/torchattacks not installed in $PY, so $TORCH_SKIPS; to get them: $HOW" >&2
    have_tfjs || echo "note: node or @tensorflow/tfjs $TFJS_VERSION (in $NODE_MODULES) missing, so $TFJS_SKIPS; to get it: $HOW" >&2
    ;;
  *)
    echo "error: unknown option $MODE (expected --if-missing or --check)" >&2
    exit 2
    ;;
esac
