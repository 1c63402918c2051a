"""Shared fixtures: where the real face datasets are, and how a missing one is treated.

Tests find the datasets through ``FGSM_JAX_DATASETS`` (a folder holding ``gt_db/`` and
``orl_faces/``), else ``../shared/datasets`` beside the checkout. Where neither holds the
dataset a test needs, the test is skipped with the reason -- except under CI (``CI=true``),
where a missing dataset is a failure: CI must exercise the real photos.

Likewise under CI every other skip (a missing optional package such as torch, dlib or
tensorflow, a platform condition) is turned into a failure, unless its reason contains one
of ``CI_ALLOWED_SKIPS``: the skips that are part of how a test runs, not something missing.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


# Skip reasons CI accepts (substrings). The sharding tests run in a child process with 8 CPU
# devices (tests/test_sharding.py): the parent skips them, the child skips the parent's own.
CI_ALLOWED_SKIPS = (
    'this is the child run',
    'needs 8 devices: run by test_sharding_on_8_cpu_devices',
    'needs a GPU',
)


# The photo scripts turn on JAX's persistent compilation cache (fgsm_jax.compile_cache). Under
# the tests it lives in a folder of this session, shared by the scripts the tests start (so the
# second one loads what the first compiled) and removed at the end: never the user's cache,
# never another run's (two runs writing one folder at once), never stale entries.
_SESSION_COMPILE_CACHE = tempfile.mkdtemp(prefix='fgsm_jax_test_compile_cache_')
os.environ['FGSM_JAX_COMPILE_CACHE'] = _SESSION_COMPILE_CACHE


def pytest_unconfigure(config):
  shutil.rmtree(_SESSION_COMPILE_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _compile_cache_stays_in_its_test():
  """A test that turns the persistent cache on in this process (a script's ``main`` run in
  process) turns it off again when it ends. Left on, every later compile of the session
  would be serialized to disk; a full run under CI crashed in exactly that (a segfault in
  ``executable.serialize`` under test_train.py, BENCHMARKS.md section 10)."""
  import jax
  before = jax.config.jax_compilation_cache_dir
  yield
  if jax.config.jax_compilation_cache_dir != before:
    jax.config.update('jax_compilation_cache_dir', before)
    from jax._src import compilation_cache  # pylint: disable=import-outside-toplevel
    compilation_cache.reset_cache()


def in_ci() -> bool:
  return os.environ.get('CI', '').lower() == 'true'


def _fail_unallowed_skip(report) -> None:
  """Under CI=true, a skip whose reason is not in CI_ALLOWED_SKIPS becomes a failure."""
  if not in_ci() or not report.skipped or hasattr(report, 'wasxfail'):
    return
  longrepr = report.longrepr
  reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
  if any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
    return
  report.outcome = 'failed'
  report.longrepr = (f'skipped under CI=true, where it must run ({reason}); '
                     'tests/conftest.py CI_ALLOWED_SKIPS lists the skips CI accepts')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  outcome = yield
  _fail_unallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
  # A module-level pytest.importorskip skips the whole file at collection.
  outcome = yield
  _fail_unallowed_skip(outcome.get_result())


def datasets_root() -> pathlib.Path:
  env = os.environ.get('FGSM_JAX_DATASETS')
  if env:
    return pathlib.Path(env)
  return REPO.parent / 'shared' / 'datasets'


def _dataset(name: str) -> pathlib.Path:
  path = datasets_root() / name
  if path.is_dir() and any(path.iterdir()):
    return path
  reason = f'dataset {name!r} not found at {path} (set FGSM_JAX_DATASETS)'
  if in_ci():
    pytest.fail(reason + '; CI requires it')
  pytest.skip(reason)


@pytest.fixture(scope='session')
def gt_dir() -> pathlib.Path:
  """The Georgia Tech faces: one folder per person (s01..s50), 15 JPEGs each."""
  return _dataset('gt_db')


@pytest.fixture(scope='session')
def orl_dir() -> pathlib.Path:
  """The ORL faces: one folder per person (s1..s40), 10 PGMs each."""
  return _dataset('orl_faces')


def _link_dataset(src: pathlib.Path, root: pathlib.Path, people, names) -> pathlib.Path:
  """A folder-per-identity set under ``root``: links to the photos ``names`` of each of
  ``src``'s ``people`` (the shared data is read, never copied into the project)."""
  for who in people:
    (root / who).mkdir(parents=True)
    for name in names:
      (root / who / name).symlink_to(src / who / name)
  return root


@pytest.fixture(scope='session')
def link_dataset():
  """`_link_dataset`: (src, root, people, photo names) -> root."""
  return _link_dataset
