"""fgsm_jax.compile_cache: a second process with the same folder compiles nothing new."""
from __future__ import annotations

import functools
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# persistent_jit: a jitted function with a static argument, tracing counted; argv: cache
# folder, the powers to call it with.
_EXPORT_CHILD = r'''
import functools, json, sys, warnings
import jax, jax.numpy as jnp, numpy as np
from fgsm_jax import compile_cache
compile_cache.enable(sys.argv[1])
traces = []

@functools.partial(jax.jit, static_argnames=('power', 'post'))
def f(x, scale, power, *, post=None):
  traces.append(power)
  y = x ** power * scale['a']
  return (y if post is None else post(y)).sum(), x * 2

g = compile_cache.persistent_jit(f, ('power', 'post'))
x, scale = jnp.arange(6.0).reshape(2, 3), {'a': jnp.float32(1.5)}
post = (lambda v: v + 1) if sys.argv[3] == 'closure' else None
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter('always')
  got = [g(x, scale, int(p), post=post) for p in sys.argv[2].split(',')]
n = len(traces)
want = [f.__wrapped__(x, scale, int(p), post=post) for p in sys.argv[2].split(',')]
print(json.dumps(dict(traces=n, warned=[str(w.message) for w in caught],
                      same=all(np.array_equal(a, b) for o, r in zip(got, want)
                               for a, b in zip(o, r)))))
'''


def _export_child(cache: pathlib.Path, powers: str, post: str = 'none') -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, '-c', _EXPORT_CHILD, str(cache), powers, post],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_process_loads_the_traced_program_instead_of_tracing(tmp_path):
  cache = tmp_path / 'jax'
  first = _export_child(cache, '2,2,3')
  # One trace per static value (the repeat is held in the process), each exported.
  assert first == {'traces': 2, 'warned': [], 'same': True}
  files = sorted((cache / compile_cache.EXPORTED_SUBDIR).iterdir())
  assert len(files) == 2
  second = _export_child(cache, '3,2')
  assert second == {'traces': 0, 'warned': [], 'same': True}
  # A damaged file is traced again and replaced.
  files[0].write_bytes(b'not a program')
  third = _export_child(cache, '2,3')
  assert third == {'traces': 1, 'warned': [], 'same': True}
  assert _export_child(cache, '2,3')['traces'] == 0


@pytest.mark.slow
def test_a_closure_has_no_stable_key_so_it_is_traced_and_warned(tmp_path):
  res = _export_child(tmp_path / 'jax', '2', 'closure')
  assert res['traces'] == 1 and res['same']
  assert len(res['warned']) == 1 and 'traced in every process' in res['warned'][0]
  assert not (tmp_path / 'jax' / compile_cache.EXPORTED_SUBDIR).exists()


def test_program_key_follows_what_the_trace_depends_on(monkeypatch):
  import jax
  import jax.numpy as jnp

  def key(static, x, digest='a'):
    monkeypatch.setattr(compile_cache, '_source_digest', lambda: digest)
    leaves, treedef = jax.tree.flatten(((x,), {}))
    return compile_cache._program_key('f', static, treedef, leaves)

  x = jnp.zeros((2, 3))
  base = key({'power': 2}, x)
  assert key({'power': 2}, jnp.ones((2, 3))) == base  # values do not matter
  for other in (key({'power': 3}, x), key({'power': 2}, jnp.zeros((3, 2))),
                key({'power': 2}, jnp.zeros((2, 3), jnp.int32)), key({'power': 2}, x, 'b'),
                key({'power': 2.0}, x)):
    assert other != base


def _two_args(config, x):
  return x


def test_partials_are_keyed_by_what_they_bind():
  # A functools.partial's own name is "functools." whatever it binds: two partials of one
  # function (two networks' configs) must not share the programs compiled for either.
  key = compile_cache._static_key
  a, b = functools.partial(_two_args, 'mobilefacenet'), functools.partial(_two_args, 'mfn512')
  assert key(a) != key(b)
  assert key(a) == key(functools.partial(_two_args, 'mobilefacenet'))
  assert key(functools.partial(_two_args, x=1)) != key(functools.partial(_two_args, x=2))
