"""fgsm_jax.data.pipeline: load_split, class names, batches; the package's light import."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fgsm_jax import data
from fgsm_jax.data import FaceConfig, batches, class_names, load_split, num_classes, skipped

REPO = __import__('pathlib').Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def orl_like(tmp_path_factory):
  """A generated ORL-like manual folder (3 people x 10 grey PGMs, one corrupt) and a data_dir."""
  root = tmp_path_factory.mktemp('orl_like')
  rng = np.random.default_rng(0)
  for person in ('s1', 's2', 's3'):
    (root / person).mkdir()
    for i in range(1, 11):
      grey = rng.integers(0, 256, (112, 92), dtype=np.uint8)
      Image.fromarray(grey).save(root / person / f'{i}.pgm')
  (root / 's3' / '5.pgm').write_bytes(b'P5\n92 112\n255\n' + b'\x00' * 100)  # Truncated.
  (root / 'README').write_text('generated')
  return root, tmp_path_factory.mktemp('tfds')


def test_load_split_arrays(orl_like):
  manual_dir, data_dir = orl_like
  x, y = load_split('orl', 'train', manual_dir=manual_dir, data_dir=data_dir)
  xt, yt = load_split('orl', 'test', manual_dir=manual_dir, data_dir=data_dir)
  assert x.dtype == np.float32 and y.dtype == np.int32
  assert x.shape[1:] == (160, 160, 3) and y.shape == x.shape[:1]
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9  # Scaled from uint8, not /1.
  assert len(y) + len(yt) == 29  # 30 photos, one truncated.
  assert (np.bincount(y) + np.bincount(yt)).tolist() == [10, 10, 9]
  assert sorted(np.bincount(y).tolist() + np.bincount(yt).tolist()) in (
      [2, 3, 3, 7, 7, 7], [3, 3, 3, 6, 7, 7])  # 7 train / 3 test per person.
  assert set(y.tolist()) == {0, 1, 2}
  # Values are the stored uint8 / 255 exactly.
  np.testing.assert_array_equal(np.round(x * 255), np.round(x * 255).astype(np.uint8))
  report = skipped('orl', manual_dir=manual_dir, data_dir=data_dir)
  assert report['train']['unreadable'] + report['test']['unreadable'] == ['s3/5.pgm']
  # Read back from data_dir alone (already built, manual_dir no longer needed).
  x2, y2 = load_split('orl', 'train', data_dir=data_dir)
  np.testing.assert_array_equal(x2, x)
  np.testing.assert_array_equal(y2, y)


def test_class_names_and_count(orl_like):
  manual_dir, data_dir = orl_like
  assert num_classes('orl', manual_dir=manual_dir, data_dir=data_dir) == 40
  assert class_names('orl', data_dir=data_dir)[:3] == ['s1', 's2', 's3']
  config = FaceConfig(name='three', identities=('s1', 's2', 's3'))
  assert class_names('orl', manual_dir=manual_dir, data_dir=data_dir,
                     config=config) == ['s1', 's2', 's3']


def test_unknown_dataset_lists_the_valid_ones():
  assert data.DATASETS == ('gt', 'orl')
  with pytest.raises(ValueError, match="unknown dataset 'lfw'; expected one of gt, orl"):
    load_split('lfw', 'train')


def _toy(n=10):
  images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32)
  return images, np.arange(n, dtype=np.int32)


def test_batches_in_order_cover_everything():
  images, labels = _toy(10)
  out = list(batches(images, labels, 4, rng=None))
  assert [len(b['label']) for b in out] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b['label'] for b in out]), labels)
  for b in out:
    np.testing.assert_array_equal(b['image'][:, 0, 0, 0], b['label'].astype(np.float32))
  assert [len(b['label']) for b in batches(images, labels, 4, rng=None,
                                           drop_remainder=True)] == [4, 4]
  assert [len(b['label']) for b in batches(images, labels, 5, rng=None,
                                           drop_remainder=True)] == [5, 5]


def test_padded_batches_are_full_masked_and_indexed():
  images, labels = _toy(10)
  out = list(batches(images, labels, 4, pad=True, index=True))
  assert [len(b['label']) for b in out] == [4, 4, 4]
  # The last batch repeats its last example; the mask marks it as padding.
  np.testing.assert_array_equal(out[2]['label'], [8, 9, 9, 9])
  np.testing.assert_array_equal(out[2]['mask'], [1, 1, 0, 0])
  np.testing.assert_array_equal(out[0]['mask'], [1, 1, 1, 1])
  np.testing.assert_array_equal(np.concatenate([b['index'] for b in out]),
                                [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9])
  shuffled = list(batches(images, labels, 4, rng=np.random.default_rng(0), index=True))
  for b in shuffled:  # the index names each example's row
    np.testing.assert_array_equal(labels[b['index']], b['label'])


def test_batches_shuffled_by_rng():
  images, labels = _toy(50)
  first = np.concatenate([b['label'] for b in batches(images, labels, 8,
                                                     rng=np.random.default_rng(3))])
  again = np.concatenate([b['label'] for b in batches(images, labels, 8,
                                                     rng=np.random.default_rng(3))])
  other = np.concatenate([b['label'] for b in batches(images, labels, 8,
                                                     rng=np.random.default_rng(4))])
  np.testing.assert_array_equal(first, again)
  assert sorted(first.tolist()) == labels.tolist()
  assert not np.array_equal(first, labels) and not np.array_equal(first, other)
  for b in batches(images, labels, 8, rng=np.random.default_rng(3)):  # Pairs stay together.
    np.testing.assert_array_equal(b['image'][:, 1, 1, 2], b['label'].astype(np.float32))


def test_batches_reject_bad_shapes():
  images, labels = _toy(6)
  with pytest.raises(ValueError, match='N x H x W x C'):
    next(batches(images[0], labels, 2, rng=None))
  with pytest.raises(ValueError, match=r'labels of shape \(6,\)'):
    next(batches(images, labels[:5], 2, rng=None))
  with pytest.raises(ValueError, match='batch_size'):
    next(batches(images, labels, 0, rng=None))


@pytest.mark.slow
def test_import_is_light():
  code = ('import sys, fgsm_jax.data; '
          'heavy = [m for m in ("tensorflow", "tensorflow_datasets", "dlib") if m in sys.modules]; '
          'assert not heavy, heavy')
  subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO)


@pytest.mark.slow
def test_tensorflow_imported_by_the_data_pipeline_prints_nothing(tmp_path):
  # "oneDNN custom operations are on ..." and absl's notice came out on stderr despite
  # TF_CPP_MIN_LOG_LEVEL=2; a fresh process that builds a builder must print nothing.
  env = {k: v for k, v in os.environ.items()
         if k not in ('TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLE_ONEDNN_OPTS')}
  code = ('from fgsm_jax.data import pipeline; pipeline.builder_class("gt"); '
          'import tensorflow as tf; tf.constant(1.0) + 1.0')
  out = subprocess.run([sys.executable, '-c', code], env=dict(env, PYTHONPATH=str(REPO)),
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert 'oneDNN' not in out.stderr and out.stderr.strip() == '', out.stderr
