"""What the face dataset builders (gt_faces, orl_faces) share: config, split, skip report.

Each builder reads a one-folder-per-identity layout, decides a seeded train/test split per
person from the file list alone (before any image is decoded, so a file that turns out to
be unusable does not shift the others between splits), and writes 160 x 160 x 3 uint8 face
images. Unusable photos are dropped with a one-line warning naming the file; the counts
and names are logged as a summary and stored in the built dataset's metadata
(`builder.info.metadata['skipped']`, saved in metadata.json beside the data).
"""
from __future__ import annotations

import dataclasses
import logging
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from fgsm_jax.data import detect, images

log = logging.getLogger('fgsm_jax.data')

IMAGE_SIZE = detect.CROP_SIZE


class PlainBuildMessage:
  """Builder mixin: one plain line when a build starts, instead of TFDS's.

  TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown size, ...)"
  (``DatasetBuilder._log_download_bytes``, tensorflow-datasets 4.9), which says nothing
  true of a build from local photos.
  """

  def _log_download_bytes(self) -> None:
    print(f'building {self.name} {self.version} (dlib face crops of the photos) in '
          f'{self.data_dir} ...', flush=True)


@dataclasses.dataclass(eq=False)
class FaceConfig(tfds.core.BuilderConfig):
  """Builder config of the face datasets.

  Attributes:
    seed: seeds the per-person permutation that assigns photos to train/test.
    identities: the label names, in label order (None: the full dataset's, s01..s50 for
      GT, s1..s40 for ORL). Every identity folder found must be listed here; listed ones
      may be absent (their labels then have no examples). Pass the folders you build
      from to get a smaller label space, e.g. ('s01', 's02').
    face_finder: GT only: rgb uint8 H x W x 3 -> (left, top, right, bottom) or None
      (None: dlib HOG, `detect.largest_face`). Injectable so tests can build from
      synthetic images HOG finds no face in.
    margin: GT only: margin of the face crop, see `detect.crop_face`.

  A config with other values than the default one must have its own `name`: TFDS
  caches a built dataset under data_dir/<dataset>/<config name>/<version>.
  """
  seed: int = 0
  identities: tuple[str, ...] | None = None
  face_finder: detect.FaceFinder | None = None
  margin: float = detect.DEFAULT_MARGIN

  def __post_init__(self):
    if self.seed < 0:
      raise ValueError(f'seed must be >= 0, got {self.seed}')
    if self.identities is not None:
      self.identities = tuple(self.identities)
      if not self.identities or len(set(self.identities)) != len(self.identities):
        raise ValueError(f'identities must be non-empty and unique, got {self.identities}')


@dataclasses.dataclass(frozen=True)
class Photo:
  identity: str
  path: Path
  key: str  # 'identity/file name', also the example's 'photo' feature.


def data_root(folder: Path, subfolder: str) -> Path:
  """`folder/subfolder` if that is a folder (an unzipped archive), else `folder`."""
  inner = Path(folder) / subfolder
  return inner if inner.is_dir() else Path(folder)


def split_photos(root: Path, names: Sequence[str], seed: int, n_train: int,
                 n_test: int) -> tuple[list[Photo], list[Photo]]:
  """Assigns each person's photos to train/test by a seeded permutation.

  Per identity: photos in natural order, permuted by a generator seeded with (seed,
  crc32(identity)) -- so a person's split does not depend on which other people are
  present -- then the first n_train go to train and the rest to test (a count other than
  n_train + n_test is logged).

  Raises:
    DatasetError: no identity folders with images under `root`, or a folder whose name is
      not in `names`.
  """
  folders = images.identity_folders(root)
  known = set(names)
  unknown = [name for name, _ in folders if name not in known]
  if unknown:
    raise images.DatasetError(
        f'{root}: identity folder(s) {", ".join(unknown[:5])} not among the '
        f'{len(names)} label names ({names[0]}..{names[-1]}); pass '
        'FaceConfig(identities=...) naming them')
  train, test = [], []
  for identity, paths in folders:
    if len(paths) != n_train + n_test:
      log.warning('%s: %d photos, expected %d (%d train, %d test); the first %d of the '
                  'permutation go to train, the rest to test', root / identity, len(paths),
                  n_train + n_test, n_train, n_test, n_train)
    rng = np.random.default_rng([seed, zlib.crc32(identity.encode())])
    order = rng.permutation(len(paths))
    photos = [Photo(identity, paths[i], f'{identity}/{paths[i].name}') for i in order]
    train.extend(photos[:n_train])
    test.extend(photos[n_train:])
  return train, test


def features(names: Sequence[str]) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      'image': tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
      'label': tfds.features.ClassLabel(names=list(names)),
      'photo': tfds.features.Text(),
  })


def generate(dataset: str, split: str, photos: Sequence[Photo], to_face,
             metadata: tfds.core.MetadataDict) -> Iterator[tuple[str, dict]]:
  """Yields (key, example) per usable photo; records what was skipped.

  Args:
    to_face: (rgb uint8 H x W x 3, Photo) -> uint8 160 x 160 x 3 face, or None when no
      face is found.
    metadata: receives metadata['skipped'][split] = {'photos', 'written', 'unreadable':
      [keys], 'no_face': [keys]} once the split is done.
  """
  unreadable, no_face = [], []
  for photo in photos:
    try:
      rgb = images.load_rgb(photo.path)
    except images.ImageError as e:
      log.warning('%s; dropped from %s/%s', e, dataset, split)
      unreadable.append(photo.key)
      continue
    face = to_face(rgb, photo)
    if face is None:
      log.warning('%s: no face found; dropped from %s/%s', photo.path, dataset, split)
      no_face.append(photo.key)
      continue
    yield photo.key, {'image': face, 'label': photo.identity, 'photo': photo.key}
  written = len(photos) - len(unreadable) - len(no_face)
  skipped = dict(metadata.get('skipped', {}))
  skipped[split] = {'photos': len(photos), 'written': written, 'unreadable': unreadable,
                    'no_face': no_face}
  metadata['skipped'] = skipped
  level = logging.WARNING if written < len(photos) else logging.INFO
  log.log(level, '%s/%s: %d of %d photos written, %d unreadable, %d without a face found',
          dataset, split, written, len(photos), len(unreadable), len(no_face))
