"""FGSM (fgsm_jax.attacks.fgsm): budget, range, loss, batching, jit, and the hand-derived
gradient sign on a linear softmax model."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import ATTACKS, cross_entropy, fgsm
from conftest import Linear, TinyCNN, cnn_params, linear_params, tiny_images

EPS = 0.03


def numpy_ce_gradient(w, b, x, labels):
  """d/dx of softmax CE for logits = flatten(x) @ w + b, by hand: w (softmax - onehot)."""
  flat = x.reshape(len(x), -1).astype(np.float64)
  logits = flat @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  p[np.arange(len(x)), labels] -= 1.0
  return (p @ w.T).reshape(x.shape)


@pytest.mark.parametrize('model', ['linear', 'cnn'])
@pytest.mark.parametrize('targeted', [False, True])
def test_budget_range_and_loss(model, targeted):
  apply_fn, params = (Linear(), linear_params()) if model == 'linear' else (TinyCNN(),
                                                                           cnn_params())
  x = tiny_images()
  labels = jnp.array([0, 1, 2]) if not targeted else jnp.array([1, 2, 3])
  adv = fgsm(apply_fn, params, x, labels, EPS, targeted=targeted)
  assert float(jnp.max(jnp.abs(adv - x))) <= EPS + 1e-7
  assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
  before = cross_entropy(apply_fn(params, x), labels)
  after = cross_entropy(apply_fn(params, adv), labels)
  if targeted:
    assert bool(jnp.all(after < before))
  else:
    assert bool(jnp.all(after > before))


@pytest.mark.parametrize('targeted', [False, True])
def test_linear_model_equals_the_hand_derived_gradient_sign(targeted):
  params = linear_params()
  x = tiny_images()
  labels = np.array([3, 0, 2])
  adv = np.asarray(fgsm(Linear(), params, x, jnp.asarray(labels), EPS, targeted=targeted))
  g = numpy_ce_gradient(np.asarray(params['w'], np.float64), np.asarray(params['b']),
                        np.asarray(x), labels)
  expected = np.clip(np.asarray(x) + (-1 if targeted else 1) * EPS * np.sign(g), 0, 1)
  assert np.all(np.abs(g) > 1e-6)   # no ties in the sign on this model
  np.testing.assert_allclose(adv, expected, atol=1e-6)


def test_vmapped_equals_per_example_loop_and_summed_gradient():
  apply_fn, params = TinyCNN(), cnn_params()
  x = tiny_images(n=4, seed=3)
  labels = jnp.array([0, 1, 2, 3])
  batched = fgsm(apply_fn, params, x, labels, EPS)
  loop = jnp.concatenate([fgsm(apply_fn, params, x[i:i + 1], labels[i:i + 1], EPS)
                          for i in range(4)])
  summed = fgsm(apply_fn, params, x, labels, EPS, per_example=False)
  np.testing.assert_allclose(batched, loop, atol=1e-6)
  np.testing.assert_allclose(batched, summed, atol=1e-6)


def test_jitted_equals_unjitted():
  apply_fn, params = Linear(), linear_params()
  x = tiny_images()
  labels = jnp.array([0, 1, 2])
  jitted = fgsm(apply_fn, params, x, labels, EPS)
  with jax.disable_jit():
    eager = fgsm(apply_fn, params, x, labels, EPS)
  np.testing.assert_allclose(jitted, eager, atol=1e-6)


def test_per_example_eps_and_zero_eps():
  params = linear_params()
  x = tiny_images()
  eps = jnp.array([0.0, 0.01, 0.05])
  adv = fgsm(Linear(), params, x, jnp.array([0, 1, 2]), eps)
  dist = np.abs(np.asarray(adv - x)).reshape(3, -1).max(1)
  np.testing.assert_allclose(dist, [0.0, 0.01, 0.05], atol=1e-6)


def test_rejects_non_image_input():
  with pytest.raises(ValueError, match='N x H x W x C'):
    fgsm(Linear(), linear_params(), jnp.zeros((8, 8, 3)), jnp.zeros((1,), jnp.int32), EPS)
  with pytest.raises(ValueError, match='floating'):
    fgsm(Linear(), linear_params(), jnp.zeros((1, 8, 8, 3), jnp.uint8),
         jnp.zeros((1,), jnp.int32), EPS)


NAN_CALLS = {   # every way a caller reaches fgsm with one NaN pixel in image 1 of 3
    'direct': lambda x, **kw: fgsm(Linear(), linear_params(), x, jnp.array([0, 1, 2]), EPS,
                                   **kw),
    'numpy images': lambda x, **kw: fgsm(Linear(), linear_params(), np.asarray(x),
                                         np.array([0, 1, 2]), EPS, **kw),
    'per-image eps': lambda x, **kw: fgsm(Linear(), linear_params(), x, jnp.array([0, 1, 2]),
                                          jnp.array([EPS, EPS, 0.0]), **kw),
    'per-pixel eps': lambda x, **kw: fgsm(Linear(), linear_params(), x, jnp.array([0, 1, 2]),
                                          jnp.full(x.shape, EPS), **kw),
    'the ATTACKS table': lambda x, **kw: ATTACKS['fgsm'](Linear(), linear_params(), x,
                                                          jnp.array([0, 1, 2]), EPS, **kw),
}


@pytest.mark.parametrize('options', [{}, {'targeted': True}, {'per_example': False}],
                         ids=['untargeted', 'targeted', 'summed'])
@pytest.mark.parametrize('how', sorted(NAN_CALLS))
def test_refuses_nan_pixels(how, options):
  # A NaN pixel would otherwise come back NaN in the "adversarial" image, unreported.
  x = tiny_images().at[1, 4, 5, 2].set(jnp.nan)
  with pytest.raises(ValueError, match='NaN pixels') as info:
    NAN_CALLS[how](x, **options)
  assert '\n' not in str(info.value)
  with jax.disable_jit(), pytest.raises(ValueError, match='NaN pixels'):
    NAN_CALLS[how](x, **options)
