"""One change for all of a person's photos (`fgsm_jax.protect.universal`)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import faces as faces_lib
from fgsm_jax.data import images
from fgsm_jax.protect import photo, presets, recognizer, universal

LANDMARKS = np.array([[120.0, 80.0], [100.0, 82.0], [60.0, 78.0], [80.0, 80.0], [90.0, 120.0]])


def _state(landmarks, top, left, size=(64, 64)):
  face = recognizer.FaceRecord(box=(0, 0, 10, 10), landmarks5=np.asarray(landmarks))
  region = faces_lib.Region(top=top, left=left, inner=(0.0, 0.0, 1.0, 1.0), feather=1.0,
                            size=size)
  return photo.FaceState(clean=face, region=region, start={}, aligned={}, refs=())


def test_window_coords_follow_the_face_between_windows():
  src = _state(LANDMARKS, 40, 30)
  rows, cols = np.mgrid[0:64, 0:64]
  same = universal.window_coords(src, src, 64)
  np.testing.assert_allclose(same[..., 0], rows, atol=1e-4)
  np.testing.assert_allclose(same[..., 1], cols, atol=1e-4)
  # The face 9 px right and 5 px down, its window 16 px lower: window pixel (r, c) shows
  # the photo at (r + 56, c + 30), which was (r + 51, c + 21), window (r + 11, c - 9) of src.
  dst = _state(LANDMARKS + (9.0, 5.0), 56, 30)
  moved = universal.window_coords(src, dst, 64)
  np.testing.assert_allclose(moved[..., 0], rows + 11, atol=1e-4)
  np.testing.assert_allclose(moved[..., 1], cols - 9, atol=1e-4)


def test_the_carrys_sampling_is_bilinear_zero_outside_and_linear():
  delta = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 10, 3)), jnp.float32)
  rows, cols = np.mgrid[0:8, 0:10].astype(np.float32)
  grid = jnp.stack([rows, cols], -1)
  out = photo.sample(delta, grid)
  np.testing.assert_allclose(jax.jit(photo.sample)(delta, grid), out, atol=1e-6)
  np.testing.assert_allclose(out[:-1, :-1], delta[:-1, :-1], atol=1e-6)  # the last row and
  # column lack a 2 x 2 neighbourhood: 0, as outside
  half = photo.sample(delta, grid[:-1, :-1] + 0.5)
  np.testing.assert_allclose(half, (delta[:-1, :-1] + delta[1:, :-1] + delta[:-1, 1:]
                                    + delta[1:, 1:]) / 4, atol=1e-6)
  assert not np.asarray(photo.sample(delta, grid - 20.0)).any()
  # Linear in delta: its gradient is the transpose of the sampling (weights sum to 1 each).
  g = jax.grad(lambda d: jnp.sum(photo.sample(d, grid[:-1, :-1] + 0.25)))(delta)
  assert float(jnp.sum(g)) == pytest.approx(7 * 9 * 3, rel=1e-5)


@pytest.mark.slow
def test_one_change_moves_every_photo_it_was_made_over(gt_dir):
  preset = dataclasses.replace(presets.PRESETS['fast'], steps=4, rounds=1)
  recognizers = photo.load_recognizers(('dlib',))
  models = recognizer.load_real_dlib()
  rgbs = [images.load_rgb(gt_dir / 's33' / f'{n}.jpg') for n in ('06', '09')]
  faces = [recognizer.describe(r, models, recognizers=('dlib',))[0] for r in rgbs]
  change = universal.universal_change(rgbs, faces, preset, jax.random.key(0),
                                      recognizers=recognizers)
  assert change.delta.shape == rgbs[0].shape and np.array_equal(change.landmarks5,
                                                                faces[0].landmarks5)
  assert np.abs(change.delta).max() <= preset.max_eps / 255 + 1e-6 and change.delta.any()
  # Both photos it was made over start from it (checked, no step): each moved away from
  # its clean self by dlib, not only the first.
  for rgb, face in zip(rgbs, faces):
    check_only = dataclasses.replace(preset, steps=0, extra_steps=0)
    _, results = photo.protect_photo(rgb, check_only, jax.random.key(0),
                                     recognizers=recognizers, models=models, carry=change,
                                     clean=[face])
    assert results[0].distances['dlib'] > 0.2, results[0].distances
