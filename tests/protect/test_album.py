"""An album: one person's change carried from photo to photo (`photo.carry_perturbation`,
`protect_photo(carry=...)`, `fgsm-jax-protect --album`)."""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from fgsm_jax.data import images
from fgsm_jax.protect import photo, presets


def _similar(points, angle_deg, scale, shift):
  c, s = math.cos(math.radians(angle_deg)) * scale, math.sin(math.radians(angle_deg)) * scale
  return np.asarray(points) @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


LANDMARKS = np.array([[120.0, 80.0], [100.0, 82.0], [60.0, 78.0], [80.0, 80.0], [90.0, 120.0]])


def test_similarity_recovers_rotation_scale_and_shift():
  dst = _similar(LANDMARKS, 12.0, 1.3, (7.0, -4.0))
  m = photo.similarity(LANDMARKS, dst)
  np.testing.assert_allclose(LANDMARKS @ m[:, :2].T + m[:, 2], dst, atol=1e-9)
  np.testing.assert_allclose(np.linalg.det(m[:, :2]), 1.3 ** 2, rtol=1e-9)  # no shear
  with pytest.raises(ValueError, match='N x 2'):
    photo.similarity(LANDMARKS, LANDMARKS[:4])


def test_a_carried_change_follows_the_face():
  rng = np.random.default_rng(0)
  delta = np.zeros((200, 240, 3), np.float32)
  delta[60:140, 50:150] = rng.uniform(-0.05, 0.05, (80, 100, 3))
  carried = photo.Carried(delta, LANDMARKS)
  # The same face in the same place: the change as it was.
  same = photo.carry_perturbation(carried, LANDMARKS, (200, 240))
  np.testing.assert_allclose(same[1:-1, 1:-1], delta[1:-1, 1:-1], atol=1e-6)
  # The face 9 px right and 5 px down in a larger photo: the change moves with it.
  moved = photo.carry_perturbation(carried, LANDMARKS + (9.0, 5.0), (220, 260))
  np.testing.assert_allclose(moved[65:145, 59:159], delta[60:140, 50:150], atol=1e-6)
  assert not moved[:60].any() and not moved[:, :55].any()
  # Bilinear: never more than the change it was carried from.
  turned = photo.carry_perturbation(carried, _similar(LANDMARKS, 20.0, 0.8, (30.0, 10.0)),
                                    (200, 240))
  assert np.abs(turned).max() <= np.abs(delta).max() + 1e-7 and np.abs(turned).max() > 0


@pytest.mark.slow
def test_a_carried_change_that_protects_is_checked_not_attacked_again(gt_dir):
  # The change `default` made to one photo, carried onto the same photo: it is checked
  # before any step, fools both recognizers, and the face gets no round (the pixels are
  # the carried ones); carried onto another photo of the person it is where the rounds
  # start.
  # No eps ladder: the carried change keeps the budget it was made in; target 1: a face
  # is done once it is past every threshold (what `protected` says).
  preset = dataclasses.replace(presets.PRESETS['default'], steps=6, rounds=2, eps_ladder=(),
                               target=1.0)
  recognizers = photo.load_recognizers(('dlib', 'mobileface'))
  rgb = images.load_rgb(gt_dir / 's41' / '08.jpg')
  first, results = photo.protect_photo(rgb, preset, jax.random.key(0), recognizers=recognizers)
  assert all(r.protected for r in results)
  carried = photo.carried_change(rgb, first, results)
  assert carried is not None and np.array_equal(carried.landmarks5, results[0].landmarks5)
  again, results = photo.protect_photo(rgb, preset, jax.random.key(1), recognizers=recognizers,
                                       carry=carried)
  assert all(r.protected for r in results) and results[0].rounds == 0
  np.testing.assert_array_equal(again, first)  # within its own budget: nothing clipped
  other = images.load_rgb(gt_dir / 's41' / '09.jpg')
  out, results = photo.protect_photo(other, preset, jax.random.key(0), recognizers=recognizers,
                                     carry=carried)
  diff = np.abs(out.astype(int) - other.astype(int))
  assert diff.max() <= np.ceil(preset.max_eps) and diff.any()
  assert results[0].rounds <= preset.rounds
