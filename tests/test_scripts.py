"""scripts/*.sh: syntax, and which Python test.sh runs (no real install: a fake interpreter)."""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / 'scripts').glob('*.sh'))

# Records how it was called (argv) in $CALLS and succeeds, like `python -m pytest ...`.
_FAKE_PYTHON = '#!/usr/bin/env bash\necho "$0 $*" >> "$CALLS"\n'


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
  out = subprocess.run(['bash', '-n', str(script)], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  text = script.read_text()
  assert text.startswith('#!/usr/bin/env bash\n') and 'set -euo pipefail' in text


def _fake_repo(tmp_path):
  repo = tmp_path / 'repo'
  shutil.copytree(ROOT / 'scripts', repo / 'scripts')
  for name in ('setup.cfg', 'pyproject.toml'):
    shutil.copy(ROOT / name, repo / name)
  return repo


def _write_exe(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(repo, tmp_path, **env):
  calls = tmp_path / 'calls'
  calls.write_text('')
  bin_dir = tmp_path / 'bin'
  _write_exe(bin_dir / 'python', _FAKE_PYTHON)
  full = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHON')}
  full.update(PATH=f'{bin_dir}:{os.environ["PATH"]}', CALLS=str(calls), **env)
  out = subprocess.run(['bash', str(repo / 'scripts' / 'test.sh'), '-k', 'x'], env=full,
                       capture_output=True, text=True, timeout=60)
  return out, calls.read_text().splitlines()


def test_test_sh_uses_the_active_virtualenv_without_installing(tmp_path):
  # .ci/run activates its own venv: test.sh must run there and not build .venv.
  repo = _fake_repo(tmp_path)
  out, calls = _run(repo, tmp_path, VIRTUAL_ENV=str(tmp_path / 'ci-venv'))
  assert out.returncode == 0, out.stderr
  assert calls == [f'{tmp_path}/bin/python -m pytest tests -q -k x']
  assert not (repo / '.venv').exists()


def test_test_sh_uses_an_installed_dot_venv(tmp_path):
  repo = _fake_repo(tmp_path)
  _write_exe(repo / '.venv' / 'bin' / 'python', _FAKE_PYTHON)
  stamp = hashlib.sha256((repo / 'setup.cfg').read_bytes()
                         + (repo / 'pyproject.toml').read_bytes()).hexdigest()
  (repo / '.venv' / '.fgsm_jax-installed').write_text(stamp + '\n')
  out, calls = _run(repo, tmp_path)
  assert out.returncode == 0, out.stderr
  assert calls == ['.venv/bin/python -m pytest tests -q -k x']  # run from the repo root


def test_test_sh_installs_when_dot_venv_is_missing(tmp_path):
  # No .venv: setup_venv.sh runs first. With a too-old interpreter it stops with one line.
  repo = _fake_repo(tmp_path)
  old = tmp_path / 'py310'
  _write_exe(old, '#!/usr/bin/env bash\nif [ "$1" = "-c" ]; then\n'
                  '  case "$2" in *version_info*) exit 1;; *) echo 3.10.0;; esac\nfi\n')
  out, calls = _run(repo, tmp_path, PYTHON=str(old))
  assert out.returncode == 1 and calls == []
  assert out.stderr.strip().splitlines()[-1].startswith(f'error: {old} is Python 3.10.0')
