"""The rounds' checks: completing a check gives what one full check gives, and asking the
cheapest judge first changes no decision and no pixel."""
from __future__ import annotations

import dlib
import jax
import numpy as np
import pytest

from fgsm_jax.data import images
from fgsm_jax.protect import attack, photo, recognizer
from fgsm_jax.protect.presets import Preset

BOTH = ('dlib', 'mobileface')
# Three short rounds against both recognizers; a target no face reaches in them, so every
# round's check must decide to go on (the case the cheap first check is for).
ROUNDS = Preset(name='rounds', summary='test', eps=6.0, steps=2, rounds=3, extra_steps=2,
                target=5.0, attack=attack.AttackConfig(step=0.4, eot_samples=1,
                                                       jitter_px=0.0, jitter_deg=0.0,
                                                       jitter_scale=0.0))


@pytest.fixture(scope='module')
def rgb(gt_dir):
  return images.load_rgb(gt_dir / 's09' / '05.jpg')


def test_completing_a_check_equals_one_full_check(rgb):
  full = recognizer.describe(rgb, recognizers=BOTH)
  part = recognizer.describe(rgb, recognizers=('mobileface',))
  assert part and all(f.descriptor_of('dlib') is None
                      and f.descriptor_of('mobileface') is not None for f in part)
  done = recognizer.describe(rgb, recognizers=BOTH, known=part)
  assert len(done) == len(full)
  for a, b in zip(full, done):
    assert a.box == b.box
    for name in BOTH:
      np.testing.assert_array_equal(a.descriptor_of(name), b.descriptor_of(name))


def test_dlib_descriptor_from_box_and_landmarks_is_dlibs_own(rgb):
  models = recognizer.load_real_dlib()
  (rect,) = recognizer.detect(rgb, models)
  own = np.asarray(models.recognizer.compute_face_descriptor(rgb, models.predictor(rgb, rect)))
  (face,) = recognizer.describe(rgb, models)
  np.testing.assert_array_equal(face.descriptor_of('dlib'), own.astype(np.float32))


@pytest.mark.slow
def test_cheapest_judge_first_changes_nothing(rgb):
  recs = photo.load_recognizers(BOTH)
  models = recognizer.load_real_dlib()
  asked = []

  def lazy(img, names, known):
    asked.append((tuple(names), known is not None))
    return recognizer.describe(img, models, recognizers=names, known=known)

  def complete(img, names, known):  # every descriptor at every round, as before
    return recognizer.describe(img, models, recognizers=BOTH)

  out = {}
  for label, check in (('lazy', lazy), ('complete', complete)):
    out[label] = photo.protect_photo(rgb, ROUNDS, jax.random.key(3), recognizers=recs,
                                     models=models, check=check)
  np.testing.assert_array_equal(out['lazy'][0], out['complete'][0])
  assert out['lazy'][1] == out['complete'][1]
  assert [f.rounds for f in out['lazy'][1]] == [3]
  # Rounds 1-2: MobileFace alone decided; after the last round every judge, from scratch.
  assert asked == [(('mobileface',), False)] * 2 + [(BOTH, False)]
