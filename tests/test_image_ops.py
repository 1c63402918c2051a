"""fgsm_jax.image_ops: each differentiable image operation against the reference it equals
(PIL, fgsm_jax.quality), and its gradient where the attack relies on one."""
from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax import image_ops, quality


def _pil_jpeg(rgb: np.ndarray, jpeg_quality: int, subsampling: int | None = None) -> np.ndarray:
  buf = io.BytesIO()
  kwargs = {} if subsampling is None else {'subsampling': subsampling}
  Image.fromarray(rgb).save(buf, 'JPEG', quality=jpeg_quality, **kwargs)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB'))


@pytest.mark.slow
def test_resize_half_back_matches_pil():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
  ours = np.asarray(image_ops.resize_half_back(jnp.asarray(img, jnp.float32)))
  pil = quality.resize_half_roundtrip(img).astype(np.float32)
  # Exact away from the borders (PIL renormalises its kernel there, we repeat edge pixels).
  np.testing.assert_array_equal(ours[3:-3, 3:-3], pil[3:-3, 3:-3])


@pytest.mark.parametrize('kind', ['noise', 'blocks'])
def test_chroma_420_matches_pils_jpeg_chroma_subsampling(kind):
  # Strong colour detail, so subsampling changes a lot; quality 100 keeps the DCT's own
  # rounding small, so what is left is the 4:2:0 down- and upsampling.
  rng = np.random.default_rng(0)
  if kind == 'noise':
    img = rng.integers(0, 256, (64, 96, 3)).astype(np.uint8)
  else:
    img = np.kron(rng.integers(0, 256, (16, 24, 3)), np.ones((4, 4, 1))).astype(np.uint8)
  pil = _pil_jpeg(img, 100, subsampling=2).astype(np.float32)   # 2: 4:2:0
  ours = np.clip(np.asarray(image_ops.chroma_420(jnp.asarray(img, jnp.float32))), 0, 255)
  err = np.abs(ours - pil)
  # Measured: mean 0.60 / 0.50, max 3.7 / 3.0 grey levels (noise / blocks), where the photo
  # unchanged is 46.8 / 14.8 off on average; bounds ~1.6x the measured error.
  assert err.mean() < 1.0 and err.max() < 6.0, (err.mean(), err.max())
  assert np.abs(img - pil).mean() > 10 * err.mean()   # the test image does need 4:2:0


@pytest.mark.slow
def test_window_ssim_sum_is_quality_ssim_map_summed():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (40, 52, 3)).astype(np.float64)
  b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).round()
  got = image_ops.window_ssim_sum(jnp.asarray(b / 255, jnp.float32),
                                  jnp.asarray(a / 255, jnp.float32))
  np.testing.assert_allclose(float(got), quality.ssim_map(a, b).sum(), rtol=1e-5)
  x0 = jnp.asarray(a / 255, jnp.float32)
  np.testing.assert_allclose(float(image_ops.window_ssim_sum(x0, x0)), 30 * 42 * 3, rtol=1e-5)
  # Equal windows are SSIM's maximum: no pull at all there.
  np.testing.assert_allclose(np.asarray(jax.grad(image_ops.window_ssim_sum)(x0, x0)), 0, atol=1e-3)


@pytest.mark.slow
def test_the_ssim_gradient_by_hand_is_jax_grad_of_the_ssim_sum():
  rng = np.random.default_rng(1)
  x0 = jnp.asarray(rng.random((70, 90, 3)), jnp.float32)
  x = jnp.clip(x0 + jnp.asarray(rng.normal(0, 0.03, x0.shape), jnp.float32), 0, 1)
  clean = image_ops.ssim_clean_stats(x0)
  want = jax.grad(image_ops.ssim_sum)(x, clean)
  np.testing.assert_allclose(np.asarray(image_ops.ssim_sum_grad(x, clean)), np.asarray(want),
                             atol=1e-4 * float(jnp.abs(want).max()))
  # The same under jit (as inside the attack's loop) as eagerly.
  np.testing.assert_allclose(np.asarray(jax.jit(image_ops.ssim_sum_grad)(x, clean)),
                             np.asarray(image_ops.ssim_sum_grad(x, clean)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(jax.jit(image_ops.window_ssim_sum)(x, x0)),
                             float(image_ops.window_ssim_sum(x, x0)), rtol=1e-6)


def test_blur_keeps_flat_images_and_spreads_a_point_as_a_gaussian():
  flat = jnp.full((1, 21, 21, 3), 0.4, jnp.float32)
  np.testing.assert_allclose(np.asarray(image_ops.blur(flat)), 0.4, atol=1e-6)
  point = jnp.zeros((1, 21, 21, 3), jnp.float32).at[0, 10, 10].set(1.0)
  out = np.asarray(image_ops.blur(point, sigma=1.5))[0, ..., 0]
  assert out.sum() == pytest.approx(1.0, abs=1e-5)      # mass kept away from the edges
  k = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
  k /= k.sum()
  np.testing.assert_allclose(out[5:16, 5:16], np.outer(k, k), atol=1e-6)


def test_degrade_keeps_none_and_refuses_unknown_kinds():
  x = jnp.asarray(np.random.default_rng(0).random((16, 16, 3)), jnp.float32)
  np.testing.assert_array_equal(np.asarray(image_ops.degrade(x, 'none')), np.asarray(x))
  with pytest.raises(ValueError):
    image_ops.degrade(x, 'gif')
