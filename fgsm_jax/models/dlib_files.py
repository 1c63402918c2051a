"""Where dlib's packaged model files are (PyPI ``face-recognition-models``).

The package is located with ``importlib.util.find_spec`` and never imported: its
``__init__`` needs ``pkg_resources``, which recent setuptools no longer ships.
"""
from __future__ import annotations

import importlib.util
import pathlib
from typing import NamedTuple

_PACKAGE = 'face_recognition_models'


class DlibModelPaths(NamedTuple):
  """Paths of the dlib model files used by this project."""
  resnet: pathlib.Path  # dlib_face_recognition_resnet_model_v1.dat: 150x150 chip -> 128-D.
  shape_predictor_5: pathlib.Path  # shape_predictor_5_face_landmarks.dat: 5 landmarks.


def dlib_models_dir() -> pathlib.Path:
  """The ``models/`` folder of the installed face-recognition-models package.

  Raises:
    FileNotFoundError: the package is not installed (one-line message).
  """
  spec = importlib.util.find_spec(_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f'package {_PACKAGE!r} not installed (pip install face-recognition-models==0.3.0)')
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / 'models'


def dlib_model_paths() -> DlibModelPaths:
  """Paths of the packaged recognition ResNet and 5-point shape predictor.

  The paths are returned whether or not the files exist; loaders check them and
  name the missing file.
  """
  d = dlib_models_dir()
  return DlibModelPaths(
      resnet=d / 'dlib_face_recognition_resnet_model_v1.dat',
      shape_predictor_5=d / 'shape_predictor_5_face_landmarks.dat',
  )
