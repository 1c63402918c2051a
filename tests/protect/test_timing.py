"""fgsm_jax.protect.timing's stand-in photo (the timed attack itself runs in
experiments/protect_timing.py): a seeded uint8 texture with detail for the attack to use."""
from __future__ import annotations

import numpy as np

from fgsm_jax.protect import timing


def test_synthetic_photo_is_a_seeded_uint8_texture():
  a = timing.synthetic_photo((50, 70), seed=3)
  assert a.shape == (50, 70, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, timing.synthetic_photo((50, 70), seed=3))
  assert not np.array_equal(a, timing.synthetic_photo((50, 70), seed=4))
  assert a.std() > 10 and 0 < a.min() and a.max() < 255   # varied, not clipped flat
