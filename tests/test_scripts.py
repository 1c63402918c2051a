"""scripts/*.sh: syntax, and which Python test.sh runs (no real install: a fake interpreter)."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
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


# The references' checks (scripts/install_references.sh): `python -c ...find_spec...` and
# the TF.js package.json; node and npm are fakes too, so no test installs anything.
TFJS_VERSION = re.search(r'^TFJS_VERSION=(\S+)$',
                         (ROOT / 'scripts' / 'install_references.sh').read_text(),
                         re.MULTILINE).group(1)


def _fake_tfjs(tmp_path, version=TFJS_VERSION):
  modules = tmp_path / f'node_modules-{version}'
  pkg = modules / '@tensorflow' / 'tfjs' / 'package.json'
  pkg.parent.mkdir(parents=True, exist_ok=True)
  pkg.write_text(json.dumps({'name': '@tensorflow/tfjs', 'version': version}, indent=2))
  return modules


def _run(repo, tmp_path, *args, python=_FAKE_PYTHON, npm='exit 0', **env):
  calls = tmp_path / 'calls'
  calls.write_text('')
  bin_dir = tmp_path / 'bin'
  _write_exe(bin_dir / 'python', python)
  _write_exe(bin_dir / 'node', '#!/usr/bin/env bash\n')
  _write_exe(bin_dir / 'npm', f'#!/usr/bin/env bash\necho "npm $*" >> "$CALLS"\n{npm}\n')
  if (repo / '.venv' / 'bin').is_dir():
    _write_exe(repo / '.venv' / 'bin' / 'python', python)
  env.setdefault('FGSM_JAX_NODE_MODULES', str(_fake_tfjs(tmp_path)))
  full = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHON')}
  full.update(PATH=f'{bin_dir}:{os.environ["PATH"]}', CALLS=str(calls), **env)
  out = subprocess.run(['bash', str(repo / 'scripts' / 'test.sh'), *args, '-k', 'x'],
                       env=full, capture_output=True, text=True, timeout=60)
  return out, calls.read_text().splitlines()


def _installed_venv(repo):
  (repo / '.venv' / 'bin').mkdir(parents=True)
  stamp = hashlib.sha256((repo / 'setup.cfg').read_bytes()
                         + (repo / 'pyproject.toml').read_bytes()).hexdigest()
  (repo / '.venv' / '.fgsm_jax-installed').write_text(stamp + '\n')


def test_test_sh_uses_the_active_virtualenv_without_installing(tmp_path):
  # .ci/run activates its own venv: test.sh must run there and not build .venv.
  repo = _fake_repo(tmp_path)
  out, calls = _run(repo, tmp_path, VIRTUAL_ENV=str(tmp_path / 'ci-venv'))
  assert out.returncode == 0, out.stderr
  assert calls[-1] == f'{tmp_path}/bin/python -m pytest tests -q -k x'
  assert not [c for c in calls if ' pip ' in c or c.startswith('npm')]   # checks only
  assert out.stderr == ''   # every reference there: nothing to say
  assert not (repo / '.venv').exists()


def test_test_sh_uses_an_installed_dot_venv(tmp_path):
  repo = _fake_repo(tmp_path)
  _installed_venv(repo)
  out, calls = _run(repo, tmp_path)
  assert out.returncode == 0, out.stderr
  assert calls[-1] == '.venv/bin/python -m pytest tests -q -k x'  # run from the repo root
  assert not [c for c in calls if ' pip ' in c or c.startswith('npm')]


def test_test_sh_quick_leaves_out_the_slow_tests(tmp_path):
  repo = _fake_repo(tmp_path)
  _installed_venv(repo)
  out, calls = _run(repo, tmp_path, '--quick')
  assert out.returncode == 0, out.stderr
  assert calls[-1] == '.venv/bin/python -m pytest tests -q -m not slow -k x'


def test_test_sh_runs_a_pytest_process_per_folder_and_goes_on_after_a_failure(tmp_path):
  # One process of the whole suite segfaulted late in XLA's compiler: test.sh runs one per
  # folder of tests/ and one for its top-level files; a failing part fails the run but the
  # others still run, and a part with nothing selected (pytest's exit 5) is no failure.
  repo = _fake_repo(tmp_path)
  _installed_venv(repo)
  for folder in ('attacks', 'protect', '__pycache__'):
    (repo / 'tests' / folder).mkdir(parents=True)
  for name in ('test_a.py', 'test_b.py', 'conftest.py'):
    (repo / 'tests' / name).write_text('')
  python = ('#!/usr/bin/env bash\necho "$0 $*" >> "$CALLS"\n'
            'case "$3" in tests/attacks) exit 1;; tests/protect) exit 5;; esac\n')
  out, calls = _run(repo, tmp_path, python=python)
  assert out.returncode == 1
  assert calls[-3:] == ['.venv/bin/python -m pytest tests/attacks -q -k x',
                        '.venv/bin/python -m pytest tests/protect -q -k x',
                        '.venv/bin/python -m pytest tests/test_a.py tests/test_b.py -q -k x']
  assert out.stderr.strip().splitlines()[-1] == 'test.sh: failed: tests/attacks (exit 1)'
  # A path among the arguments: that alone, one process.
  out, calls = _run(repo, tmp_path, '--quick', 'tests/test_a.py::test_one')
  assert out.returncode == 0, out.stderr
  assert calls[-1] == '.venv/bin/python -m pytest -q -m not slow tests/test_a.py::test_one -k x'


def test_missing_references_are_tried_once_then_named_in_one_line_each(tmp_path):
  # torch missing (find_spec fails) and pip failing; the TF.js package absent, npm failing.
  # The tests still run; each run names what will skip and how to get it, one line each.
  repo = _fake_repo(tmp_path)
  _installed_venv(repo)
  python = ('#!/usr/bin/env bash\necho "$0 $*" >> "$CALLS"\n'
            '[ "$1" = "-c" ] && exit 1\n'
            'if [ "$1 $2" = "-m pip" ]; then echo "ERROR: no index here" >&2; exit 1; fi\n')
  env = dict(python=python, npm='echo "npm ERR! offline" >&2; exit 1',
             FGSM_JAX_NODE_MODULES=str(tmp_path / 'none'))
  out, calls = _run(repo, tmp_path, **env)
  assert out.returncode == 0, out.stderr
  assert calls[-1] == '.venv/bin/python -m pytest tests -q -k x'
  assert [c for c in calls if ' pip ' in c] and [c for c in calls if c.startswith('npm')]
  notes = [line for line in out.stderr.splitlines() if line.startswith('note:')]
  assert len(notes) == 2, out.stderr
  assert 'ERROR: no index here' in notes[0] and 'tests/benchmarks' in notes[0]
  assert 'npm ERR! offline' in notes[1] and 'test_mobileface.py' in notes[1]
  assert all('bash scripts/install_references.sh .venv/bin/python' in n for n in notes)

  out, calls = _run(repo, tmp_path, **env)   # tried once: now only said
  assert out.returncode == 0, out.stderr
  assert not [c for c in calls if ' pip ' in c or c.startswith('npm')]
  notes = out.stderr.strip().splitlines()
  assert len(notes) == 2 and all(n.startswith('note:') for n in notes), out.stderr
  assert 'torch' in notes[0] and f'@tensorflow/tfjs {TFJS_VERSION}' in notes[1]


def test_a_wrong_tfjs_version_counts_as_missing(tmp_path):
  repo = _fake_repo(tmp_path)
  out, _ = _run(repo, tmp_path, VIRTUAL_ENV=str(tmp_path / 'ci-venv'),
                FGSM_JAX_NODE_MODULES=str(_fake_tfjs(tmp_path, '4.0.0')))
  assert out.returncode == 0 and out.stderr.startswith('note:'), out.stderr
  assert TFJS_VERSION in out.stderr


def test_test_sh_installs_when_dot_venv_is_missing(tmp_path):
  # No .venv: setup_venv.sh runs first. With a too-old interpreter it stops with one line.
  repo = _fake_repo(tmp_path)
  old = tmp_path / 'py310'
  _write_exe(old, '#!/usr/bin/env bash\nif [ "$1" = "-c" ]; then\n'
                  '  case "$2" in *version_info*) exit 1;; *) echo 3.10.0;; esac\nfi\n')
  out, calls = _run(repo, tmp_path, PYTHON=str(old))
  assert out.returncode == 1 and calls == []
  assert out.stderr.strip().splitlines()[-1].startswith(f'error: {old} is Python 3.10.0')
