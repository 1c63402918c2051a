"""Every attack rejects bad inputs with one clear ValueError (fgsm_jax.attacks.validate), checks
values only where they are concrete, and checks nothing under ``validation(False)``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import ATTACKS, Config, fgsm, iterative_attack, pgd, validation
from conftest import Linear, linear_params, tiny_images

MODEL = Linear()
PARAMS = linear_params()
IMAGES = tiny_images()
LABELS = jnp.array([0, 1, 2], jnp.int32)
KEY = jax.random.key(0)
EPS = 0.03

# (case, change to the call, the message it must give)
BAD = {
    'negative eps': (dict(eps=-EPS), 'eps must be >= 0'),
    'one negative eps of three': (dict(eps=jnp.array([EPS, -EPS, EPS])), 'eps must be >= 0'),
    'NaN eps': (dict(eps=float('nan')), 'eps is NaN'),
    '0-255 floats': (dict(images=IMAGES * 255), r'expected images in \[0, 1\]'),
    'slightly negative pixels': (dict(images=IMAGES - 0.01), r'expected images in \[0, 1\]'),
    'uint8 images': (dict(images=(IMAGES * 255).astype(jnp.uint8)), 'floating images'),
    'NaN pixel': (dict(images=IMAGES.at[1, 2, 3, 0].set(jnp.nan)), 'NaN pixels'),
    '4 labels for 3 images': (dict(labels=jnp.array([0, 1, 2, 3])), 'labels for 3 images'),
    '2 eps for 3 images': (dict(eps=jnp.array([EPS, EPS])), r'eps a scalar or \(3,\)'),
}


def call(name, images=IMAGES, labels=LABELS, eps=EPS):
  return ATTACKS[name](MODEL, PARAMS, images, labels, eps, key=KEY, steps=1) if name not in (
      'fgsm', 'fgm_l2') else ATTACKS[name](MODEL, PARAMS, images, labels, eps, key=KEY)


@pytest.mark.parametrize('case', sorted(BAD))
@pytest.mark.parametrize('name', sorted(ATTACKS))
def test_every_attack_rejects(name, case):
  change, message = BAD[case]
  with pytest.raises(ValueError, match=message) as info:
    call(name, **change)
  assert '\n' not in str(info.value)   # one line


@pytest.mark.parametrize('case', sorted(BAD))
def test_iterative_engine_rejects(case):
  change, message = BAD[case]
  kwargs = dict(images=IMAGES, labels=LABELS, eps=EPS) | change
  with pytest.raises(ValueError, match=message):
    iterative_attack(MODEL, PARAMS, kwargs['images'], kwargs['labels'], kwargs['eps'],
                     config=Config(steps=1))


@pytest.mark.slow
def test_good_inputs_pass_including_the_range_ends():
  images = IMAGES.at[0].set(0.0).at[1].set(1.0)   # exactly 0 and 1 are valid pixels
  for name in ATTACKS:
    call(name, images=images, eps=0.0)
  call('fgsm', eps=jnp.array([EPS]))   # a (1,) eps broadcasts


def test_off_switch_skips_the_value_checks():
  # Without the check a 0-255 image is clipped to [0, 1]: |adv - x| is ~254, not eps.
  with validation(False):
    adv = fgsm(MODEL, PARAMS, IMAGES * 255, LABELS, EPS)
  assert np.abs(np.asarray(adv) - np.asarray(IMAGES) * 255).max() > 1.0
  with pytest.raises(ValueError):   # on again after the block
    fgsm(MODEL, PARAMS, IMAGES * 255, LABELS, EPS)


def test_tracers_inside_a_callers_jit_are_not_value_checked():
  # Values are unknown while tracing: the caller's jit must still compile and run (here on
  # out-of-range pixels, which only a concrete check could see), while shapes are checked.
  out = jax.jit(lambda x: fgsm(MODEL, PARAMS, x, LABELS, EPS))(IMAGES + 2.0)
  assert out.shape == IMAGES.shape
  with pytest.raises(ValueError, match='labels for 3 images'):
    jax.jit(lambda x: pgd(MODEL, PARAMS, x, LABELS[:2], EPS, key=KEY, steps=1))(IMAGES)
