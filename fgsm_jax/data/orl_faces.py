"""TFDS builder of the AT&T (ORL) Database of Faces as 160 x 160 RGB images.

40 people (s1..s40) x 10 grey PGMs, 92 wide x 112 high, already tightly cropped: no
detection; each image is resized to 160 x 160 (bilinear, so faces are widened by 1.22x
relative to their height, as a box-to-square resize does) and grey is replicated to RGB.
Per person a seeded permutation puts 7 photos in train and 3 in test. Unreadable files are
dropped from their split (one-line warning; list in `builder.info.metadata['skipped']`).

There is no reliable public download, so the data must be in the manual folder.
Importing this module registers the dataset name 'orl_faces' with TFDS and does nothing else.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from fgsm_jax.data import images
from fgsm_jax.data.face_builder import (IMAGE_SIZE, FaceConfig, Photo, PlainBuildMessage,
                                        data_root, features, generate, split_photos)

IDENTITIES = tuple(f's{i}' for i in range(1, 41))
N_TRAIN, N_TEST = 7, 3

_CITATION = """\
@inproceedings{samaria1994orl,
  author = {Ferdinando S. Samaria and Andy C. Harter},
  title = {Parameterisation of a stochastic model for human face identification},
  booktitle = {IEEE Workshop on Applications of Computer Vision},
  year = {1994},
}
"""


class OrlFaces(PlainBuildMessage, tfds.core.GeneratorBasedBuilder):
  """ORL faces: 40 people, 7 train / 3 test photos each, 160 x 160 x 3."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Resized to 160 x 160 RGB, seeded 7/3 split per person.'}
  BUILDER_CONFIGS = [FaceConfig(name='default', description='seed 0, s1..s40')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the AT&T (ORL) Database of Faces in the manual folder, as the folder itself or
  inside it:

    <manual_dir>/s1/1.pgm .. <manual_dir>/s40/10.pgm     or
    <manual_dir>/orl_faces/s1/1.pgm .. <manual_dir>/orl_faces/s40/10.pgm

  and pass download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=('AT&T (Olivetti Research Laboratory) Database of Faces: 40 people x '
                     '10 grey photos, resized to 160 x 160 RGB.'),
        features=features(self.builder_config.identities or IDENTITIES),
        supervised_keys=('image', 'label'),
        homepage='https://cam-orl.co.uk/facedatabase.html',
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      manual = Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS's way of saying: no manual folder, or it is empty.
      raise images.DatasetError(
          f'orl_faces: manual folder {getattr(dl_manager, "_manual_dir", None)} missing or '
          'empty; put orl_faces/ (s1..s40/*.pgm) there or pass manual_dir=...') from None
    root = data_root(manual, 'orl_faces')
    config = self.builder_config
    train, test = split_photos(root, config.identities or IDENTITIES, config.seed, N_TRAIN,
                               N_TEST)
    return {'train': self._generate_examples('train', train),
            'test': self._generate_examples('test', test)}

  def _generate_examples(self, split: str, photos: list[Photo]):

    def to_face(rgb: np.ndarray, photo: Photo) -> np.ndarray:
      del photo
      face = Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
      return np.asarray(face, dtype=np.uint8)

    return generate('orl_faces', split, photos, to_face, self.info.metadata)
