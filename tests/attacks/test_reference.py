"""Attacks against independent NumPy implementations on a linear softmax model, whose
cross-entropy input gradient is derived by hand (see test_fgsm.numpy_ce_gradient)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import (example_keys, fgm_l2, ifgsm, mifgsm, nifgsm, pgd, random_start,
                              tifgsm)
from conftest import Linear, linear_params, tiny_images
from test_fgsm import numpy_ce_gradient

PARAMS = linear_params()
W64, B64 = np.asarray(PARAMS['w'], np.float64), np.asarray(PARAMS['b'], np.float64)
X = np.asarray(tiny_images())
LABELS = np.array([1, 3, 0])


def grad(x, labels=LABELS):
  return numpy_ce_gradient(W64, B64, x, labels)


def l2(v):
  return np.sqrt((v ** 2).reshape(len(v), -1).sum(1)).reshape(-1, 1, 1, 1)


def np_pgd(x, start, eps, alpha, steps, norm, momentum=None, nesterov=False, sign=1.0):
  adv, m = start.astype(np.float64), np.zeros_like(x, np.float64)
  for _ in range(steps):
    point = adv + sign * alpha * momentum * m if nesterov else adv
    g = grad(point)
    if momentum is not None:
      m = momentum * m + g / np.abs(g).reshape(len(g), -1).mean(1).reshape(-1, 1, 1, 1)
      g = m
    if norm == 'linf':
      adv = np.clip(np.clip(adv + sign * alpha * np.sign(g), x - eps, x + eps), 0, 1)
    else:
      adv = adv + sign * alpha * g / l2(g)
      delta = adv - x
      adv = np.clip(x + delta * np.minimum(1, eps / l2(delta)), 0, 1)
  return adv


@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_pgd_matches_numpy(norm):
  eps = 0.03 if norm == 'linf' else 0.4
  keys = example_keys(jax.random.key(5), len(X))
  # The start: our random_start with the key stream pgd uses (fold_in 0), checked to lie in
  # the ball; the iterations after it are recomputed independently in NumPy.
  start_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 0)
  start = np.asarray(jax.jit(random_start, static_argnames='norm')(
      start_keys, jnp.asarray(X), eps, norm))
  if norm == 'linf':
    assert np.abs(start - X).max() <= eps + 1e-7
  else:
    assert l2(start - X).max() <= eps * (1 + 1e-5)
  assert start.min() >= 0 and start.max() <= 1 and not np.allclose(start, X)
  ours = pgd(Linear(), PARAMS, jnp.asarray(X), jnp.asarray(LABELS), eps, key=keys, steps=5,
             norm=norm)
  expected = np_pgd(X, start, eps, 2.5 * eps / 5, 5, norm)
  np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_ifgsm_mifgsm_nifgsm_match_numpy():
  eps, steps = 0.05, 4
  args = (Linear(), PARAMS, jnp.asarray(X), jnp.asarray(LABELS), eps)
  np.testing.assert_allclose(ifgsm(*args, steps=steps),
                             np_pgd(X, X, eps, eps / steps, steps, 'linf'), atol=2e-5)
  np.testing.assert_allclose(mifgsm(*args, steps=steps, decay=0.8),
                             np_pgd(X, X, eps, eps / steps, steps, 'linf', 0.8), atol=2e-5)
  np.testing.assert_allclose(mifgsm(*args, steps=steps, norm='l2'),
                             np_pgd(X, X, eps, eps / steps, steps, 'l2', 1.0), atol=2e-5)
  np.testing.assert_allclose(nifgsm(*args, steps=steps),
                             np_pgd(X, X, eps, eps / steps, steps, 'linf', 1.0, True),
                             atol=2e-5)


def test_fgm_l2_matches_numpy():
  g = grad(X)
  for eps, targeted in ((0.5, False), (0.2, True)):
    labels = LABELS if not targeted else (LABELS + 1) % 4
    g = grad(X, labels)
    expected = np.clip(X + (-1 if targeted else 1) * eps * g / l2(g), 0, 1)
    ours = fgm_l2(Linear(), PARAMS, jnp.asarray(X), jnp.asarray(labels), eps, targeted=targeted)
    np.testing.assert_allclose(ours, expected, atol=2e-6)


def test_one_step_tifgsm_matches_numpy_convolution():
  size, sigma, eps = 5, 1.0, 0.03
  t = np.arange(size) - size // 2
  k1 = np.exp(-t ** 2 / (2 * sigma ** 2))
  kernel = np.outer(k1, k1) / np.outer(k1, k1).sum()
  g = grad(X)
  padded = np.pad(g, ((0, 0), (2, 2), (2, 2), (0, 0)))   # zero padding, as the reference
  smooth = np.zeros_like(g)
  for i in range(size):
    for j in range(size):
      smooth += kernel[i, j] * padded[:, i:i + X.shape[1], j:j + X.shape[2]]
  expected = np.clip(X + eps * np.sign(smooth), 0, 1)
  ours = tifgsm(Linear(), PARAMS, jnp.asarray(X), jnp.asarray(LABELS), eps, steps=1,
                step_size=eps, kernel_size=size, kernel_sigma=sigma)
  np.testing.assert_allclose(ours, expected, atol=1e-6)
