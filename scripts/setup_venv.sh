#!/usr/bin/env bash
# Makes the project's virtualenv (.venv) and installs fgsm_jax into it (editable, with the
# test extras), unless it is already installed from this setup.cfg / pyproject.toml: the
# README's commands (scripts/run_experiment.sh, scripts/test.sh) each call it, so either
# works first on a fresh clone. Pip's output goes to .venv/install.log and is shown only
# when the install fails. PYTHON picks the interpreter (default python3.11, else python3).
#   --with-references (scripts/test.sh): also the tests' references CI installs, the torch
#   peers and the TF.js runtime (scripts/install_references.sh, which pins them), tried once
#   per version of that script; what could not be installed is named in one line a run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
WITH_REFERENCES=0
[ "${1:-}" = "--with-references" ] && WITH_REFERENCES=1
hash_of() { cat "$@" | { sha256sum 2>/dev/null || shasum -a 256; } | cut -d' ' -f1; }
# What was installed: a hash of the package's metadata (sha256sum, or shasum on macOS).
stamp="$(hash_of setup.cfg pyproject.toml)"
if ! [ -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.fgsm_jax-installed" 2>/dev/null)" != "$stamp" ]; then
  PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
  if [ -z "$PYTHON" ]; then
    echo "error: no python3 found (Python >= 3.11 is needed; set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'), fgsm_jax needs >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  echo "installing fgsm_jax and its dependencies into $VENV (a few minutes the first time)" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip \
         && "$VENV/bin/python" -m pip install -e ".[test]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: installing into $VENV failed (full log: $log)" >&2
    exit 1
  fi
  echo "$stamp" > "$VENV/.fgsm_jax-installed"
fi
if [ "$WITH_REFERENCES" = 1 ]; then
  tried="$(hash_of scripts/install_references.sh)"
  if [ "$(cat "$VENV/.references-tried" 2>/dev/null)" != "$tried" ]; then
    bash scripts/install_references.sh "$VENV/bin/python" --if-missing
    echo "$tried" > "$VENV/.references-tried"
  else
    bash scripts/install_references.sh "$VENV/bin/python" --check
  fi
fi
