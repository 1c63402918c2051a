"""Loading the face datasets as arrays, and batching them.

    images, labels = load_split('gt', 'train', manual_dir='.../gt_db', data_dir='/tmp/tfds')

builds the dataset with TFDS the first time (into data_dir/gt_faces/default/1.0.0/) and
reads it from there afterwards. TFDS keys a built dataset by data_dir, name, config name and
version only -- not by the manual folder it was built from -- so building from another
folder (a test's small generated one) needs its own data_dir (or config name).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Iterator

import numpy as np

# Short name -> (module, builder class) under fgsm_jax.data.
_BUILDERS = {'gt': ('fgsm_jax.data.gt_faces', 'GtFaces'),
             'orl': ('fgsm_jax.data.orl_faces', 'OrlFaces')}
DATASETS = tuple(_BUILDERS)
SPLITS = ('train', 'test')


def quiet_tensorflow() -> None:
  """Before TensorFlow's first import: no oneDNN notice, no info/warning log lines.

  ``TF_CPP_MIN_LOG_LEVEL=2`` alone leaves the "oneDNN custom operations are on" line (it is
  logged before TensorFlow reads the level); TensorFlow only reads and decodes photos here,
  so its oneDNN kernels are turned off (``TF_ENABLE_ONEDNN_OPTS=0``) unless the environment
  says otherwise. No effect once TensorFlow is imported.
  """
  if 'tensorflow' not in sys.modules:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')


def builder_class(dataset: str):
  """The TFDS builder class of 'gt' or 'orl' (imports tensorflow_datasets)."""
  if dataset not in _BUILDERS:
    raise ValueError(f'unknown dataset {dataset!r}; expected one of {", ".join(DATASETS)}')
  module, name = _BUILDERS[dataset]
  quiet_tensorflow()
  return getattr(importlib.import_module(module), name)


def get_builder(dataset: str, *, manual_dir: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, config=None):
  """The dataset's TFDS builder, built first if data_dir does not hold it yet.

  Args:
    dataset: 'gt' or 'orl'.
    manual_dir: folder holding the photos (see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS);
      None: data_dir/downloads/manual (GT then falls back to downloading).
    data_dir: where TFDS keeps built datasets; None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    config: a `FaceConfig` (seed, identities, ...) or None for the default one.

  Raises:
    ValueError: unknown dataset name. DatasetError: no usable data to build from.
  """
  quiet_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = builder_class(dataset)(
      data_dir=None if data_dir is None else os.fspath(data_dir), config=config)
  if not builder.is_prepared():
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir)))
  return builder


def load_split(dataset: str, split: str, *, manual_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None,
               config=None) -> tuple[np.ndarray, np.ndarray]:
  """One split of a face dataset, whole, as arrays (built first if needed, see get_builder).

  Args:
    dataset: 'gt' or 'orl'.
    split: 'train' or 'test' (any TFDS split string, e.g. 'train[:10]', also works).

  Returns:
    images: float32 N x 160 x 160 x 3 in [0, 1]; labels: int32 N, in [0, num_classes).
    Order is TFDS's stored order (fixed for a given build), not shuffled per call.
  """
  quiet_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = get_builder(dataset, manual_dir=manual_dir, data_dir=data_dir, config=config)
  data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  images = data['image'].astype(np.float32) / np.float32(255)
  return images, data['label'].astype(np.int32)


def class_names(dataset: str, *, manual_dir: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, config=None) -> list[str]:
  """Identity names in label order (label i is class_names(...)[i])."""
  builder = get_builder(dataset, manual_dir=manual_dir, data_dir=data_dir, config=config)
  return list(builder.info.features['label'].names)


def num_classes(dataset: str, *, manual_dir: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, config=None) -> int:
  """Number of labels (identities) of the dataset's label space."""
  return len(class_names(dataset, manual_dir=manual_dir, data_dir=data_dir, config=config))


def skipped(dataset: str, *, manual_dir: str | os.PathLike | None = None,
            data_dir: str | os.PathLike | None = None, config=None) -> dict:
  """What the build dropped: {split: {'photos', 'written', 'unreadable': [..], 'no_face': [..]}}."""
  builder = get_builder(dataset, manual_dir=manual_dir, data_dir=data_dir, config=config)
  return dict(builder.info.metadata.get('skipped', {}))


def leading_size(batch: Any) -> int:
  """The batch size of a pytree of arrays: the leading axis every leaf shares."""
  import jax  # pylint: disable=import-outside-toplevel
  sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f'expected every array of the batch to have the same leading (batch) '
                     f'size, got sizes {sorted(sizes)}')
  return sizes.pop()


def pad_batch(batch: Any, multiple: int, *, mask_key: str | None = None) -> tuple[Any, int]:
  """Pads every leaf's leading axis to a multiple of ``multiple`` by repeating the last example.

  Works on NumPy and JAX arrays alike (the padding is a gather, so device arrays stay on
  their device). Fixed batch sizes let one compiled program serve every batch; the padding
  is sliced off results (attacks) or masked out (training, evaluation).

  Args:
    batch: a pytree of arrays sharing their leading (batch) size n >= 1.
    multiple: pad to the next multiple of this (>= 1); ``batch_size`` pads a last batch
      to a full one, a device count makes a batch split evenly.
    mask_key: with ``batch`` a dict, also give it ``batch[mask_key]``: 1.0 for real examples
      (or the given mask's values), 0.0 for padding -- ``train.train_step``'s 'mask'.

  Returns:
    (padded batch, n).
  """
  if multiple < 1:
    raise ValueError(f'multiple must be >= 1, got {multiple}')
  n = leading_size(batch)
  if n == 0:
    raise ValueError('cannot pad an empty batch')
  if mask_key is not None:
    if not isinstance(batch, dict):
      raise ValueError('mask_key needs a dict batch')
    batch = dict(batch)
    if mask_key not in batch:
      batch[mask_key] = np.ones(n, np.float32)
  pad = -n % multiple
  if pad == 0:
    return batch, n
  rows = np.concatenate([np.arange(n), np.full(pad, n - 1)])
  import jax  # pylint: disable=import-outside-toplevel
  padded = jax.tree.map(lambda leaf: leaf[rows], batch)
  if mask_key is not None:
    padded[mask_key] = padded[mask_key] * (np.arange(n + pad) < n).astype(np.float32)
  return padded, n


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int, *,
            rng: np.random.Generator | None = None, drop_remainder: bool = False,
            pad: bool = False, index: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """One pass over (images, labels) in batches: the package's one batcher.

  Args:
    images: N x H x W x C. labels: N.
    batch_size: examples per batch (>= 1).
    rng: shuffles the order when given (one permutation per call); None keeps the order.
    drop_remainder: leave out the last batch if it is smaller than batch_size.
    pad: every batch exactly batch_size, with 'mask' (1.0 real, 0.0 padding): the last
      one is padded by repeating its last example (`pad_batch`), so one compiled program
      serves all batches (training, evaluation, attack sweeps).
    index: also yield 'index', int32 positions of the batch's examples in ``images``
      (e.g. to draw one PRNG key per example, independent of the batching).

  Yields:
    {'image': B x H x W x C, 'label': B, 'mask'?: B, 'index'?: B}; B = batch_size except
    possibly the last (without ``pad``).
  """
  if images.ndim != 4:
    raise ValueError(f'expected images N x H x W x C, got shape {images.shape}')
  if labels.shape != images.shape[:1]:
    raise ValueError(f'expected labels of shape ({images.shape[0]},), got {labels.shape}')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  n = images.shape[0]
  order = np.arange(n) if rng is None else rng.permutation(n)
  stop = n - n % batch_size if drop_remainder else n
  for start in range(0, stop, batch_size):
    idx = order[start:start + batch_size]
    batch = {'image': images[idx], 'label': labels[idx]}
    if index:
      batch['index'] = idx.astype(np.int32)
    if pad:
      batch, _ = pad_batch(batch, batch_size, mask_key='mask')
    yield batch
