"""The attacks on the real models (not toy ones): the original CNN at its real 160 x 160 input
(fused custom-VJP blocks, CPU batch chunks) and dlib's ResNet with its trained weights on
dlib-aligned chips of GT photos. Jitted = eager, and every adversarial image stays within
its L-inf budget and in [0, 1] while the loss rises."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax import faces
from fgsm_jax.attacks import cross_entropy, dodging, fgsm, mifgsm, pgd
from fgsm_jax.models import ApplyFn, fast_original_cnn
from fgsm_jax.models.dlib_resnet import fast_dlib_resnet, load_dlib_resnet

# Slow, left out of scripts/test.sh --quick: attacks compiled on the real CNN and dlib's ResNet.
pytestmark = pytest.mark.slow

EPS = 4 / 255
KEY = jax.random.key(3)
# Short attacks (2 steps): eager execution runs every operation separately.
ATTACKS = {
    'fgsm': lambda f, p, x, y, loss: fgsm(f, p, x, y, EPS, loss_fn=loss),
    'pgd': lambda f, p, x, y, loss: pgd(f, p, x, y, EPS, key=KEY, steps=2, loss_fn=loss),
    'mifgsm': lambda f, p, x, y, loss: mifgsm(f, p, x, y, EPS, steps=2, loss_fn=loss),
}


@functools.cache
def cnn_case():
  # 5 images: more than the CNN's CPU chunk of 4, so the padded chunk loop runs too.
  module = fast_original_cnn(50)
  params = module.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0, 1, (5, 160, 160, 3)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 50, 5), jnp.int32)
  return ApplyFn(module), params, images, labels, cross_entropy


@functools.cache
def dlib_case(gt_dir):
  # Two GT faces; each chip is pushed away from the other's descriptor (at its own, the
  # dodging loss and its gradient are 0).
  chips = []
  for person in ('s03', 's11'):
    rgb = np.asarray(Image.open(gt_dir / person / '02.jpg').convert('RGB'))
    (face,) = faces.find_faces(rgb)
    chips.append(faces.extract_chip(jnp.asarray(rgb / 255.0, jnp.float32), face.chip))
  apply_fn, params = ApplyFn(fast_dlib_resnet()), load_dlib_resnet()
  chips = jnp.clip(jnp.stack(chips), 0.0, 1.0)
  refs = apply_fn(params, chips)[::-1]
  return apply_fn, params, chips, refs, dodging


@functools.cache
def _jitted(which, name, gt_dir):
  apply_fn, params, x, y, loss = cnn_case() if which == 'cnn' else dlib_case(gt_dir)
  return np.asarray(ATTACKS[name](apply_fn, params, x, y, loss))


@pytest.mark.parametrize('name', sorted(ATTACKS))
@pytest.mark.parametrize('which', ['cnn', 'dlib'])
def test_jitted_equals_eager_on_the_real_models(which, name, gt_dir):
  apply_fn, params, x, y, loss = cnn_case() if which == 'cnn' else dlib_case(gt_dir)
  jitted = _jitted(which, name, gt_dir)
  with jax.disable_jit():
    eager = np.asarray(ATTACKS[name](apply_fn, params, x, y, loss))
  # A sign step is exact or off by a whole step where a gradient is ~0 and its sign flips
  # between the two compilations. Measured: no pixel differs by more than 6e-8 (PGD's float
  # rounding) in any case here; allowed: 1 pixel in 10,000 may differ, by at most 2 eps.
  differ = np.abs(jitted - eager) > 1e-6
  assert differ.mean() <= 1e-4, (which, name, differ.mean())
  assert np.abs(jitted - eager).max() <= 2 * EPS + 1e-6


@pytest.mark.parametrize('name', sorted(ATTACKS))
@pytest.mark.parametrize('which', ['cnn', 'dlib'])
def test_budget_range_and_loss_on_the_real_models(which, name, gt_dir):
  apply_fn, params, x, y, loss = cnn_case() if which == 'cnn' else dlib_case(gt_dir)
  adv = _jitted(which, name, gt_dir)
  x = np.asarray(x)
  assert adv.shape == x.shape and adv.dtype == np.float32
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  change = np.abs(adv - x).reshape(len(x), -1).max(1)
  assert np.all(change <= EPS + 1e-6), change
  assert np.all(change >= EPS / 2), change   # the budget is used
  before = np.asarray(loss(apply_fn(params, jnp.asarray(x)), y))
  after = np.asarray(loss(apply_fn(params, jnp.asarray(adv)), y))
  assert np.all(after > before), (before, after)
