"""The shared update engine (iterative.update_loop): the options protection relies on.

Per-pixel budgets, gradient-scaled (soft) steps, 8-bit output, means over a scope, a
traced step count and a given start: each checked against what it promises.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import iterative
from fgsm_jax.attacks.losses import cross_entropy

from tests.attacks.conftest import tiny_images


def _levels(n=2, seed=0):
  """Images on 8-bit levels (as a decoded photo is)."""
  return jnp.round(tiny_images(n, seed=seed) * 255.0) / 255.0


def _pixelwise_gradient(x, keys):
  # d/dx sum(sin(7x) + x^2): each pixel's gradient depends on that pixel alone, so padding
  # an image cannot change the gradient of its own pixels.
  del keys
  return 7.0 * jnp.cos(7.0 * x) + 2.0 * x


def test_a_per_pixel_budget_is_respected_and_zero_means_untouched(linear, batch):
  model, params = linear
  images, labels = batch
  rng = np.random.default_rng(0)
  eps = jnp.asarray(rng.uniform(0, 8 / 255, images.shape[:3] + (1,)), jnp.float32)
  eps = eps.at[:, :4].set(0.0)  # top half: no budget
  adv = iterative.run(model, params, images, labels, eps, steps=5, decay=1.0)
  change = np.abs(np.asarray(adv - images))
  assert np.all(change[:, :4] == 0.0)
  assert np.all(change <= np.asarray(eps) + 1e-6)
  # and the budget is used where there is one (pixels not clipped at 0 or 1)
  inside = (np.asarray(images)[:, 4:] > 0.05) & (np.asarray(images)[:, 4:] < 0.95)
  used = change[:, 4:] >= np.broadcast_to(np.asarray(eps)[:, 4:], change[:, 4:].shape) - 1e-6
  assert used[inside].mean() > 0.9


def test_quantize_rounds_the_result_to_8_bit_levels():
  images = _levels()
  config = iterative.Config(quantize=True)
  adv = iterative.update_loop(_pixelwise_gradient, images, 4.4 / 255, 1.3 / 255, 3,
                              config=config)
  levels = np.asarray(adv) * 255.0
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
  raw = iterative.update_loop(_pixelwise_gradient, images, 4.4 / 255, 1.3 / 255, 3,
                              config=iterative.Config())
  raw_levels = np.asarray(raw) * 255.0
  assert np.abs(raw_levels - np.round(raw_levels)).max() > 0.2  # the rounding did something
  np.testing.assert_allclose(levels, np.round(raw_levels), atol=1e-3)


def test_soft_steps_are_the_gradient_over_soft_times_its_mean(linear, batch):
  model, params = linear
  images, labels = batch
  eps, alpha, soft = 8 / 255, 2 / 255, 2.0
  adv = iterative.run(model, params, images, labels, eps, steps=1, step_size=alpha, soft=soft)
  g = jax.vmap(jax.grad(lambda x, y: cross_entropy(model(params, x[None]), y[None])[0]))(
      images, labels)
  mean = jnp.mean(jnp.abs(g), axis=(1, 2, 3), keepdims=True)
  expected = jnp.clip(images + alpha * jnp.clip(g / (soft * mean), -1, 1), 0, 1)
  np.testing.assert_allclose(np.asarray(adv), np.asarray(expected), atol=1e-6)
  signed = iterative.run(model, params, images, labels, eps, steps=1, step_size=alpha)
  assert np.abs(np.asarray(adv - signed)).max() > 1e-3  # not the sign step
  with pytest.raises(ValueError, match='L-inf'):
    iterative.run(model, params, images, labels, 1.0, steps=1, norm='l2', soft=soft)


def test_means_over_a_scope_ignore_padding():
  # Protection pads a window to a compile bucket (budget 0 there) and passes the window's
  # own area as the scope: momentum and soft steps must then give the unpadded result.
  images = _levels(1)
  h, w = images.shape[1:3]
  config = iterative.Config(decay=1.0, soft=2.0, quantize=True)
  eps = jnp.full(images.shape[:3] + (1,), 6 / 255)
  plain = iterative.update_loop(_pixelwise_gradient, images, eps, 0.3 * eps, 4, config=config)

  pad = ((0, 0), (0, 5), (0, 3), (0, 0))
  padded = jnp.pad(images, pad, mode='edge') + jnp.pad(jnp.zeros_like(images), pad,
                                                        constant_values=102 / 255)
  padded = jnp.clip(padded, 0, 1)  # padding whose gradient is unlike the image's
  eps_p = jnp.pad(eps, pad)
  scope = jnp.pad(jnp.ones(images.shape[:3] + (1,)), pad)
  scoped = iterative.update_loop(_pixelwise_gradient, padded, eps_p, 0.3 * eps_p, 4,
                                 config=config, scope=scope)
  np.testing.assert_allclose(np.asarray(scoped)[:, :h, :w], np.asarray(plain), atol=1e-6)
  np.testing.assert_allclose(np.asarray(scoped)[:, h:], np.asarray(padded)[:, h:], atol=1e-6)
  unscoped = iterative.update_loop(_pixelwise_gradient, padded, eps_p, 0.3 * eps_p, 4,
                                   config=config)
  assert np.abs(np.asarray(unscoped)[:, :h, :w] - np.asarray(plain)).max() > 0.5 / 255


def test_a_traced_step_count_and_a_start_outside_the_ball():
  images = _levels(2)
  config = iterative.Config(decay=1.0)
  run = jax.jit(lambda x, s, start: iterative.update_loop(
      _pixelwise_gradient, x, 4 / 255, 1 / 255, s, config=config, start=start))
  far = jnp.clip(images + 0.5, 0, 1)
  three = run(images, jnp.asarray(3, jnp.int32), far)
  assert run._cache_size() == 1
  zero = run(images, jnp.asarray(0, jnp.int32), far)
  assert run._cache_size() == 1  # another step count, the same program
  # zero steps: the start projected onto the ball; three: within it, and moved on from there.
  np.testing.assert_allclose(np.asarray(zero), np.asarray(jnp.clip(far, 0, images + 4 / 255)),
                             atol=1e-7)
  assert np.abs(np.asarray(three - images)).max() <= 4 / 255 + 1e-6
  eager = iterative.update_loop(_pixelwise_gradient, images, 4 / 255, 1 / 255, 3,
                                config=config, start=far)
  np.testing.assert_allclose(np.asarray(three), np.asarray(eager), atol=1e-6)
