"""Property tests (hypothesis) over shapes, budgets, step counts and modes, on tiny inputs.

Examples are derandomised (the same ones every run, so CI is stable) and few: each new shape
or step count compiles the attack anew.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fgsm_jax.attacks import ATTACK_NORMS, ATTACKS, fgsm, ifgsm
from conftest import Linear, linear_params, tiny_images
from test_attacks import OVERRIDES
from test_fgsm import numpy_ce_gradient

SHAPES = st.tuples(st.integers(1, 3), st.sampled_from([4, 6]), st.sampled_from([1, 3]))


# Every attack of the registry, each with its own few drawn examples (sampling the name
# among 8 examples left some attacks untried).
@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(ATTACKS))
@settings(max_examples=3, deadline=None, derandomize=True, database=None)
@given(shape=SHAPES, eps=st.floats(0.0, 0.1, allow_subnormal=False), steps=st.integers(1, 3),
       targeted=st.booleans(), seed=st.integers(0, 1000))
def test_any_attack_stays_in_budget_and_range(name, shape, eps, steps, targeted, seed):
  n, side, channels = shape
  params = linear_params(side, side, channels, k=3, seed=seed)
  images = tiny_images(n, side, side, channels, seed=seed)
  labels = jnp.asarray(np.random.default_rng(seed).integers(0, 3, n), jnp.int32)
  kwargs = {k: v for k, v in OVERRIDES[name].items() if k != 'min_scale'}
  if 'steps' in kwargs:
    kwargs['steps'] = steps
  budget = eps * np.sqrt(side * side * channels) if ATTACK_NORMS[name] == 'l2' else eps
  adv = np.asarray(ATTACKS[name](Linear(), params, images, labels, budget,
                                 key=jax.random.key(seed), targeted=targeted, **kwargs))
  assert adv.shape == images.shape and adv.dtype == np.float32
  assert np.all(np.isfinite(adv)) and adv.min() >= 0.0 and adv.max() <= 1.0
  delta = (adv - np.asarray(images)).reshape(n, -1)
  if ATTACK_NORMS[name] == 'linf':
    assert np.abs(delta).max() <= eps + 1e-6
  else:
    assert np.sqrt((delta ** 2).sum(1)).max() <= budget * (1 + 1e-5) + 1e-6


@settings(max_examples=4, deadline=None, derandomize=True, database=None)
@given(shape=SHAPES, eps=st.floats(0.001, 0.1), steps=st.integers(1, 4),
       targeted=st.booleans(), seed=st.integers(0, 1000))
def test_fgsm_and_ifgsm_match_numpy_on_any_shape(shape, eps, steps, targeted, seed):
  n, side, channels = shape
  params = linear_params(side, side, channels, k=3, seed=seed)
  w, b = np.asarray(params['w'], np.float64), np.asarray(params['b'], np.float64)
  x = np.asarray(tiny_images(n, side, side, channels, seed=seed))
  labels = np.random.default_rng(seed).integers(0, 3, n)
  sign = -1.0 if targeted else 1.0
  ours = fgsm(Linear(), params, jnp.asarray(x), jnp.asarray(labels), eps, targeted=targeted)
  g = numpy_ce_gradient(w, b, x, labels)
  np.testing.assert_allclose(ours, np.clip(x + sign * eps * np.sign(g), 0, 1), atol=1e-6)
  adv, alpha = x.astype(np.float64), eps / steps
  for _ in range(steps):
    g = numpy_ce_gradient(w, b, adv, labels)
    adv = np.clip(np.clip(adv + sign * alpha * np.sign(g), x - eps, x + eps), 0, 1)
  ours = ifgsm(Linear(), params, jnp.asarray(x), jnp.asarray(labels), eps, steps=steps,
               targeted=targeted)
  np.testing.assert_allclose(ours, adv, atol=1e-5)
