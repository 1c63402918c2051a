"""TFDS builder of the Georgia Tech face database as 160 x 160 face crops.

50 people (s01..s50) x 15 colour photos 640 x 480. Per person a seeded permutation puts
10 photos in train and 5 in test; each photo's largest face (dlib HOG, see
`fgsm_jax.data.detect`) is cropped with a margin and resized to 160 x 160. A photo whose
face is not found, or that cannot be read, is dropped from its split (one-line warning
naming it; the list is in `builder.info.metadata['skipped']`).

Importing this module registers the dataset name 'gt_faces' with TFDS and does nothing else.
"""
from __future__ import annotations

import logging
import socket
import urllib.parse
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from fgsm_jax.data import detect, images
from fgsm_jax.data.face_builder import (FaceConfig, Photo, PlainBuildMessage, data_root,
                                        features, generate, split_photos)

URL = 'http://www.anefian.com/research/gt_db.zip'
IDENTITIES = tuple(f's{i:02d}' for i in range(1, 51))
N_TRAIN, N_TEST = 10, 5

_CITATION = """\
@misc{nefian1999gtdb,
  author = {Ara V. Nefian},
  title = {Georgia Tech face database},
  year = {1999},
  howpublished = {\\url{http://www.anefian.com/research/face_reco.htm}},
}
"""


class GtFaces(PlainBuildMessage, tfds.core.GeneratorBasedBuilder):
  """Georgia Tech faces: 50 people, 10 train / 5 test photos each, 160 x 160 face crops."""

  VERSION = tfds.core.Version('1.0.0')
  DOWNLOAD_URL = URL
  RELEASE_NOTES = {'1.0.0': 'dlib HOG face crops, margin 0.2, seeded 10/5 split per person.'}
  BUILDER_CONFIGS = [FaceConfig(name='default', description='seed 0, s01..s50')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the Georgia Tech face database in the manual folder, either as the folder itself or
  unzipped inside it (gt_db.zip from http://www.anefian.com/research/face_reco.htm):

    <manual_dir>/s01/01.jpg .. <manual_dir>/s50/15.jpg     or
    <manual_dir>/gt_db/s01/01.jpg .. <manual_dir>/gt_db/s50/15.jpg

  and pass download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>). Without
  a manual folder the builder downloads gt_db.zip from that page.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=('Georgia Tech face database (Nefian 1999): 50 people x 15 photos, '
                     'faces found by dlib HOG, cropped with a margin to 160 x 160.'),
        features=features(self.builder_config.identities or IDENTITIES),
        supervised_keys=('image', 'label'),
        homepage='http://www.anefian.com/research/face_reco.htm',
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = data_root(self._source_dir(dl_manager), 'gt_db')
    config = self.builder_config
    train, test = split_photos(root, config.identities or IDENTITIES, config.seed, N_TRAIN,
                               N_TEST)
    return {'train': self._generate_examples('train', train),
            'test': self._generate_examples('test', test)}

  def _source_dir(self, dl_manager: tfds.download.DownloadManager) -> Path:
    try:
      return Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS's way of saying: no manual folder, or it is empty.
      manual = getattr(dl_manager, '_manual_dir', None)
    url = self.DOWNLOAD_URL
    logging.getLogger('fgsm_jax.data').warning(
        'gt_faces: manual folder %s missing or empty; downloading %s', manual, url)
    try:
      # Fail fast when the host is unreachable: TFDS's downloader retries for minutes.
      parts = urllib.parse.urlsplit(url)
      with socket.create_connection(
          (parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80)), timeout=15):
        pass
      return Path(dl_manager.download_and_extract(url))
    except Exception as e:  # pylint: disable=broad-except
      # Offline, or the site moved; the download's own error is many lines long.
      reason = ' '.join(str(e).split()) or type(e).__name__
      reason = reason if len(reason) <= 160 else reason[:157] + '...'
      raise images.DatasetError(
          f'gt_faces: no data in manual folder {manual} and downloading {url} failed '
          f'({reason}); put gt_db/ (s01..s50/*.jpg) there or pass manual_dir=...') from None

  def _generate_examples(self, split: str, photos: list[Photo]):
    config = self.builder_config
    find = config.face_finder or detect.largest_face

    def to_face(rgb: np.ndarray, photo: Photo) -> np.ndarray | None:
      del photo
      box = find(rgb)
      return None if box is None else detect.crop_face(rgb, box, margin=config.margin)

    return generate('gt_faces', split, photos, to_face, self.info.metadata)
