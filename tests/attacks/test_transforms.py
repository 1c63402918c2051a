"""Random transformations (DI, EOT): shapes, ranges, keys, what they compute, and gradients;
the JPEG approximation against PIL's real JPEG; EOT-PGD with the default distribution."""
from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax.attacks import cross_entropy, eot_pgd, example_keys
from fgsm_jax.attacks import transforms as T
from conftest import Linear, linear_params, tiny_images

RANDOM = [T.ResizePad(min_scale=0.5, prob=1.0), T.DownUpResize(min_scale=0.5),
          T.GaussianBlur(), T.JpegApprox(min_quality=20, max_quality=60), T.default_eot()]


def smooth_image(h=24, w=32, seed=0):
  """A synthetic photo-like image: colour ramps, a disc and mild noise."""
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  disc = ((yy - 0.4) ** 2 + (xx - 0.5) ** 2 < 0.05).astype(np.float64)
  rng = np.random.default_rng(seed)
  img = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy * disc + 0.2 * xx, 0.7 - 0.4 * yy], -1)
  img += rng.normal(0, 0.02, img.shape)
  return (np.clip(img, 0, 1) * 255).round().astype(np.float32) / 255


@pytest.mark.slow
@pytest.mark.parametrize('transform', RANDOM, ids=lambda t: type(t).__name__)
def test_shape_range_and_keys(transform):
  x = jnp.asarray(smooth_image())
  f = jax.jit(transform)
  a, b = f(jax.random.key(0), x), f(jax.random.key(0), x)
  others = [f(jax.random.key(s), x) for s in range(1, 6)]
  assert a.shape == x.shape and a.dtype == jnp.float32
  assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  np.testing.assert_array_equal(a, b)
  assert any(not np.allclose(a, o) for o in others)   # the key changes the draw
  assert not np.allclose(a, x) or any(not np.allclose(o, x) for o in others)


def test_batch_draws_per_example_keys():
  x = jnp.stack([jnp.asarray(smooth_image(seed=s)) for s in range(3)])
  keys = example_keys(jax.random.key(1), 3)
  batched = jax.jit(T.apply_batch, static_argnums=0)(T.default_eot(), keys, x)
  single = jax.jit(T.default_eot())
  for i in range(3):
    np.testing.assert_allclose(batched[i], single(keys[i], x[i]), atol=1e-5)


def test_resize_matrix_matches_jax_image_resize():
  x = jnp.asarray(smooth_image())[..., 0]
  matrix = jax.jit(T._linear_resize_matrix, static_argnums=1)
  rows = matrix(jnp.arange(24), 24, 24, 17 / 24)[:17]
  cols = matrix(jnp.arange(32), 32, 32, 23 / 32)[:23]
  expected = jax.image.resize(x, (17, 23), 'linear', antialias=True)
  np.testing.assert_allclose(rows @ x @ cols.T, expected, atol=1e-5)


def test_resize_pad_places_a_shrunken_image_on_a_zero_canvas():
  ones = jnp.ones((20, 20, 3))
  f = jax.jit(T.ResizePad(min_scale=0.6, prob=1.0))
  for seed in range(4):
    out = np.asarray(f(jax.random.key(seed), ones))
    inside = out[..., 0] > 0.5
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    side = len(rows)
    assert 12 <= side <= 20 and len(cols) == side   # a square of side in [ceil(0.6 * 20), 20]
    np.testing.assert_allclose(out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1.0, atol=1e-6)
    assert np.all(out[~inside] == 0.0)


def test_identity_settings():
  x = jnp.asarray(smooth_image())
  k = jax.random.key(0)

  def call(transform, image):
    return jax.jit(transform)(k, image)

  np.testing.assert_allclose(call(T.DownUpResize(min_scale=1.0), x), x, atol=1e-6)
  np.testing.assert_allclose(call(T.ResizePad(min_scale=1.0, prob=1.0), x), x, atol=1e-6)
  np.testing.assert_array_equal(call(T.ResizePad(prob=0.0), x), x)
  grey = jnp.full((16, 16, 3), 0.4)
  np.testing.assert_allclose(call(T.GaussianBlur(), grey), grey, atol=1e-6)  # reflect pad
  blurred = call(T.GaussianBlur(min_sigma=1.0, max_sigma=1.0), x)
  assert float(jnp.var(blurred)) < float(jnp.var(x))


@pytest.mark.parametrize('quality', [30, 50, 75, 90])
def test_jpeg_approx_is_close_to_pil_jpeg(quality):
  x = smooth_image(48, 64)
  buf = io.BytesIO()
  Image.fromarray((x * 255).round().astype(np.uint8)).save(buf, 'JPEG', quality=quality,
                                                           subsampling=0)
  real = np.asarray(Image.open(buf), np.float32) / 255
  ours = np.asarray(jax.jit(T.jpeg_approx)(jnp.asarray(x), quality))   # one compile
  # JPEG itself moves pixels by several grey levels; we track it to about one level.
  change = np.abs(real - x).mean() * 255
  error = np.abs(ours - real).mean() * 255
  assert error < 1.5 and error < 0.5 * change, (error, change)


def test_jpeg_straight_through_and_cubic_gradients():
  x = jnp.asarray(smooth_image(16, 16))
  g_ste = jax.jit(jax.grad(lambda z: jnp.sum(T.jpeg_approx(z, 50, 'ste'))))(x)
  g_cubic = jax.jit(jax.grad(lambda z: jnp.sum(T.jpeg_approx(z, 50, 'cubic'))))(x)
  # STE: the pipeline is linear and invertible apart from rounding and the final clip, so
  # the gradient of the sum is 1 where no pixel saturates.
  np.testing.assert_allclose(g_ste, 1.0, atol=1e-4)
  assert np.all(np.isfinite(g_cubic)) and not np.allclose(g_cubic, g_ste)
  # One channel, sides not multiples of 8:
  grey = jax.jit(T.jpeg_approx)(jnp.full((9, 13, 1), 0.5), 75)
  np.testing.assert_allclose(grey, 0.5, atol=1 / 255)
  with pytest.raises(ValueError, match='1 or 3 channels'):
    T.jpeg_approx(jnp.zeros((8, 8, 2)), 75)


def test_quality_tables_follow_libjpeg_scaling():
  tables = np.asarray(T.quality_tables(50))
  assert tables[0, 0, 0] == 16 and tables[1, 0, 0] == 17    # quality 50: the base tables
  assert np.all(np.asarray(T.quality_tables(100)) == 1)
  assert np.asarray(T.quality_tables(10))[0, 0, 0] == 80     # 5000 / 10 % of 16


@pytest.mark.slow
def test_eot_pgd_with_the_default_distribution_raises_the_expected_loss():
  apply_fn, params = Linear(), linear_params()
  x, labels = tiny_images(), jnp.array([0, 1, 2])
  eps = 0.03
  adv = eot_pgd(apply_fn, params, x, labels, eps, key=jax.random.key(0), steps=3, samples=2)
  assert float(jnp.max(jnp.abs(adv - x))) <= eps + 1e-6
  assert float(adv.min()) >= 0 and float(adv.max()) <= 1

  @jax.jit
  def expected_loss(images, key):
    def one(k):
      t = T.apply_batch(T.default_eot(), example_keys(k, len(images)), images)
      return cross_entropy(apply_fn(params, t), labels)
    return jnp.mean(jax.vmap(one)(jax.random.split(key, 16)), axis=0)

  key = jax.random.key(99)   # fresh draws, not the attack's
  assert bool(jnp.all(expected_loss(adv, key) > expected_loss(x, key)))
