"""fgsm_jax.compile_cache: a second process with the same folder compiles nothing new."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from fgsm_jax import compile_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: the cache must be on before the process's first compile, and
# a second process is what a second run of a script is. Counts JAX's own cache events.
_CHILD = r'''
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring
from fgsm_jax import compile_cache
events = {'hits': 0, 'writes': 0}
def listen(event, **kwargs):
  if event == '/jax/compilation_cache/cache_hits':
    events['hits'] += 1
  if event == '/jax/compilation_cache/cache_misses':  # recorded when an entry is written
    events['writes'] += 1
monitoring.register_event_listener(listen)
compile_cache.enable(sys.argv[1], min_compile_seconds=0.0)
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0)
float(f(jnp.ones((7, 5))))
print(json.dumps(events))
'''


def _child(cache: pathlib.Path) -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, '-c', _CHILD, str(cache)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_every_program_from_the_cache(tmp_path):
  cache = tmp_path / 'jax'
  first = _child(cache)
  files = sorted(p.name for p in cache.iterdir())
  assert first['writes'] >= 1 and first['hits'] == 0 and files
  second = _child(cache)
  assert second == {'hits': first['writes'], 'writes': 0}
  assert sorted(p.name for p in cache.iterdir()) == files  # nothing new written


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv('FGSM_JAX_COMPILE_CACHE', raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  assert compile_cache.default_dir() == tmp_path / 'xdg' / 'fgsm_jax' / 'jax'
  monkeypatch.delenv('XDG_CACHE_HOME')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert compile_cache.default_dir() == tmp_path / 'home' / '.cache' / 'fgsm_jax' / 'jax'
  monkeypatch.setenv('FGSM_JAX_COMPILE_CACHE', str(tmp_path / 'own'))
  assert compile_cache.default_dir() == tmp_path / 'own'


def test_unusable_folder_is_a_one_line_error(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  with pytest.raises(compile_cache.CompileCacheError, match='afile'):
    compile_cache.enable(afile / 'jax')


def test_flags_choose_the_folder_or_turn_it_off(tmp_path, monkeypatch):
  import argparse
  p = argparse.ArgumentParser()
  compile_cache.add_arguments(p)
  calls = []
  monkeypatch.setattr(compile_cache, 'enable', lambda path=None: calls.append(path) or path)
  assert compile_cache.enable_from_args(p.parse_args(['--no-compile-cache'])) is None
  compile_cache.enable_from_args(p.parse_args(['--compile-cache', str(tmp_path)]))
  compile_cache.enable_from_args(p.parse_args([]))
  assert calls == [tmp_path, None]
  with pytest.raises(SystemExit):
    p.parse_args(['--no-compile-cache', '--compile-cache', str(tmp_path)])


@pytest.mark.parametrize('script', ['protect_photos.py', 'privacy_eval.py'])
def test_scripts_report_an_unusable_cache_folder_in_one_line(script, tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  args = (['photo.jpg', '--out-dir', str(tmp_path / 'o')] if script == 'protect_photos.py'
          else ['--dataset-dir', str(tmp_path), '--workdir', str(tmp_path / 'w')])
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT))
  run = lambda extra: subprocess.run(
      [sys.executable, str(ROOT / 'experiments' / script), *args, *extra], env=env,
      capture_output=True, text=True, timeout=300)
  both = run(['--compile-cache', str(tmp_path), '--no-compile-cache'])
  assert both.returncode == 2 and 'not allowed with' in both.stderr
  if script == 'protect_photos.py':  # privacy_eval finds the empty dataset folder first
    bad = run(['--compile-cache', str(afile / 'jax')])
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and str(afile / 'jax') in lines[0], bad.stderr
