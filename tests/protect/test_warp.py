"""The traced-geometry chip warp against fgsm_jax.faces' (itself checked against dlib)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax import faces
from fgsm_jax.protect import photo, warp


@pytest.fixture(scope='module')
def gt_photo(gt_dir):
  rgb = np.asarray(Image.open(gt_dir / 's03' / '05.jpg').convert('RGB'))
  found = faces.find_faces(rgb)
  assert found, 'dlib found no face in s03/05'
  return rgb, found[0]


def _window_and_chip(rgb, face):
  region = photo._window(face.box, face.chip, None, rgb.shape[:2], 0.3, 0.2)
  t, l = region.top, region.left
  window = rgb[t:t + region.size[0], l:l + region.size[1]] / 255.0
  geom = warp.geometry(face.chip, t, l, region.size)
  return region, jnp.asarray(window, jnp.float32), geom


@pytest.mark.slow
@pytest.mark.parametrize('scale', [1.0, 2.5])
def test_window_chip_equals_the_whole_photo_chip(gt_photo, scale):
  rgb, face = gt_photo
  if scale != 1.0:  # a large face: dlib samples from a pyramid level (n_down = 1)
    rgb = np.asarray(Image.fromarray(rgb).resize(
        (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), Image.BILINEAR))
    lm = np.round(face.landmarks * scale)
    face = faces.Face(box=tuple(round(v * scale) for v in face.box), landmarks=lm,
                      chip=faces.chip_transform(lm, rgb.shape[:2]))
    assert face.chip.n_down == 1
  region, window, geom = _window_and_chip(rgb, face)
  assert region.size[0] < rgb.shape[0]  # a window, not the photo
  ours = np.asarray(warp.window_chip(window, geom, face.chip.n_down)) * 255
  ref = np.asarray(faces.extract_chip(rgb / 255.0, face.chip)) * 255
  err = np.abs(ours - ref)
  assert err.max() <= 1.0 + 1e-3  # float round-off may flip a truncation
  assert np.mean(err > 0.5) < 1e-3


def test_zero_jitter_is_the_identity_and_jitter_moves_the_chip():
  affine = jnp.asarray([1.1, 0.05, 30.0, -0.05, 1.1, 40.0])
  same = warp.jitter_affine(affine, jax.random.key(0), 0.0, 0.0, 0.0)
  np.testing.assert_allclose(same, affine, atol=1e-5)
  moved = warp.jitter_affine(affine, jax.random.key(0), 2.0, 2.0, 0.02)
  assert float(jnp.max(jnp.abs(moved - affine))) > 0.01


def test_geometry_refuses_a_window_that_misses_the_chip(gt_photo):
  rgb, face = gt_photo
  l, t, r, b = face.box
  with pytest.raises(ValueError, match='larger window'):
    warp.geometry(face.chip, t + 20, l + 20, (64, 64))


def test_chip_gradient_reaches_the_window(gt_photo):
  rgb, face = gt_photo
  _, window, geom = _window_and_chip(rgb, face)
  g = jax.grad(lambda w: jnp.sum(warp.window_chip(w, geom, 0)[60:90, 60:90]))(window)
  assert float(jnp.sum(jnp.abs(g))) > 0
  assert float(jnp.sum(jnp.abs(g[:10]))) == 0  # rows far above the chip get none
