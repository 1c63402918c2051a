"""Protection with other photos of the same person (`photo.protect_photo(person=...)`)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.models.dlib_resnet import dlib_resnet_apply
from fgsm_jax.protect import attack, photo, recognizer, registry, warp


def _face(dlib_desc, mf_desc=None) -> recognizer.FaceRecord:
  descriptors = {'dlib': np.asarray(dlib_desc, np.float32)}
  if mf_desc is not None:
    descriptors['mobileface'] = np.asarray(mf_desc, np.float32)
  return recognizer.FaceRecord(box=(0, 0, 10, 10), landmarks5=np.zeros((5, 2)),
                               descriptors=descriptors)


def test_references_put_the_clean_descriptor_first_and_pad_by_repeating_it():
  me = _face([1.0, 0.0])
  assert photo._references(me, [], 'dlib').shape == (2,)  # alone: as before
  others = [_face([0.0, float(k)]) for k in range(1, 4)]
  refs = photo._references(me, others, 'dlib')
  assert refs.shape == (photo.PERSON_REFS, 2)
  np.testing.assert_array_equal(refs[0], [1.0, 0.0])
  np.testing.assert_array_equal(refs[1:4], [[0, 1], [0, 2], [0, 3]])
  np.testing.assert_array_equal(refs[4:], np.tile([1.0, 0.0], (photo.PERSON_REFS - 4, 1)))
  many = [_face([0.0, float(k)]) for k in range(40)]
  assert photo._references(me, many, 'dlib').shape == (photo.PERSON_REFS, 2)


def test_same_person_and_the_identity_distance():
  me = _face([0.0, 0.0])
  near, far = _face([0.5, 0.0]), _face([3.0, 0.0])  # dlib's threshold is 0.6
  assert photo._same_person(me, [far, near]) and not photo._same_person(me, [far])
  found = _face([1.2, 0.0])
  # Nearest of the clean face (1.2 away) and the person's photos (0.7 and 1.8 away).
  assert photo._identity_ratio(me, [near, far], found, 'dlib') == pytest.approx(0.7 / 0.6)
  assert photo._identity_ratio(me, [], found, 'dlib') == pytest.approx(1.2 / 0.6)


def _attack(fw, refs):
  member = (attack.Surrogate(registry.SPECS['dlib'], n_down=fw['n_down']),)
  return attack.protect_window(member, (fw['params'],), fw['window'], fw['window'],
                               fw['budget'], (fw['geom'],), (refs,), jax.random.key(0), 4,
                               config=attack.AttackConfig(step=0.3, eot_samples=1))


@pytest.mark.slow
def test_repeated_rows_change_nothing_and_another_photo_changes_the_steps(face_window):
  fw = face_window
  alone, d_alone = _attack(fw, fw['ref'])
  padded, d_padded = _attack(fw, jnp.stack([fw['ref']] * 4))
  # Padding (the clean descriptor repeated) is exactly the attack without references.
  np.testing.assert_array_equal(np.asarray(alone), np.asarray(padded))
  np.testing.assert_allclose(np.asarray(d_alone), np.asarray(d_padded), rtol=1e-6)
  # Another reference that becomes the nearest on the way (where the plain attack ends up)
  # turns the steps away from it; the distance reported is still the one from the first row.
  end = warp.window_chip(alone, fw['geom'], fw['n_down'])[None]
  waypoint = dlib_resnet_apply(fw['params'], end)[0]
  other, d_other = _attack(fw, jnp.stack([fw['ref'], waypoint]))
  assert np.any(np.asarray(other) != np.asarray(alone))
  chip = warp.window_chip(other, fw['geom'], fw['n_down'])[None]
  want = attack._distance('l2', dlib_resnet_apply(fw['params'], chip), fw['ref'])[0]
  np.testing.assert_allclose(float(d_other[0]), float(want), rtol=1e-4)
