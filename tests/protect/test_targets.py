"""Target identities (fgsm_jax.protect.targets): their descriptors and the farthest one."""
from __future__ import annotations

import numpy as np
import pytest

from fgsm_jax.protect import recognizer, registry, targets


def _face(**descriptors) -> recognizer.FaceRecord:
  return recognizer.FaceRecord(box=(0, 0, 10, 10), landmarks5=np.zeros((5, 2)),
                               descriptors={n: np.asarray(v, np.float32)
                                            for n, v in descriptors.items()})


def _unit(v) -> np.ndarray:
  v = np.asarray(v, np.float32)
  return v / np.linalg.norm(v)


def _dlib(x: float) -> np.ndarray:
  return np.full(registry.SPECS['dlib'].dim, x, np.float32)


def _mf(*head: float) -> np.ndarray:
  v = np.zeros(registry.SPECS['mobileface'].dim, np.float32)
  v[:len(head)] = head
  return _unit(v)


def test_identity_descriptors_average_and_keep_cosine_ones_on_the_sphere():
  faces = [_face(dlib=_dlib(0.0), mobileface=_mf(1, 0)), _face(dlib=_dlib(0.2), mobileface=_mf(0, 1))]
  out = targets.identity_descriptors(faces, ('dlib', 'mobileface'))
  np.testing.assert_allclose(out['dlib'], _dlib(0.1), atol=1e-6)  # L2: the plain mean
  np.testing.assert_allclose(out['mobileface'], _mf(1, 1), atol=1e-6)  # cosine: renormalised
  assert out['dlib'].dtype == np.float32 and out['mobileface'].dtype == np.float32


def test_identity_descriptors_refuse_no_face_or_a_missing_descriptor():
  with pytest.raises(ValueError, match='at least one face'):
    targets.identity_descriptors([], ('dlib',))
  with pytest.raises(ValueError, match='lacks its mobileface descriptor'):
    targets.identity_descriptors([_face(dlib=_dlib(0.0))], ('dlib', 'mobileface'))


def test_farthest_maximises_the_least_convinced_recognizer():
  me = _face(dlib=_dlib(0.0), mobileface=_mf(1, 0))
  step = 0.6 / np.sqrt(registry.SPECS['dlib'].dim)  # one dlib threshold per unit
  candidates = {
      # far for dlib (3 thresholds), but MobileFace sees the same face: least 0
      'a': {'dlib': _dlib(3 * step), 'mobileface': _mf(1, 0)},
      # moderately far for both
      'b': {'dlib': _dlib(1.5 * step), 'mobileface': _mf(0, 1)},
  }
  assert targets.separation(me, candidates['a'], ('dlib',)) == pytest.approx(3.0, rel=1e-4)
  assert targets.farthest(me, candidates, ('dlib', 'mobileface')) == 'b'
  # Judged by the attacked recognizers only: with dlib alone, 'a' is the farther.
  assert targets.farthest(me, candidates, ('dlib',)) == 'a'
  with pytest.raises(ValueError, match='no candidate'):
    targets.farthest(me, {}, ('dlib',))
