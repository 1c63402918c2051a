"""Every attack in the registry, on a tiny fixed model: budget, range, loss, keys, batching,
jit, compilation. Each attack is also checked targeted and with per-example budgets."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import (ATTACK_NORMS, ATTACKS, Config, cross_entropy, example_keys,
                              iterative_attack)
from fgsm_jax.attacks.transforms import GaussianBlur, ResizePad
from conftest import TRACES, Counting, Linear, linear_params, tiny_images, H, W, C, K

EPS_LINF = 0.03
EPS_L2 = EPS_LINF * np.sqrt(H * W * C)   # the L2 norm of a full-budget sign perturbation
# Fewer steps and samples than the defaults, to keep the tests fast.
OVERRIDES = {name: {'steps': 3} for name in ATTACKS}
OVERRIDES['fgsm'] = OVERRIDES['fgm_l2'] = {}
OVERRIDES['vmifgsm'] = {'steps': 3, 'samples': 3}
# A cheap transformation here; the default (with JPEG) is tested in test_transforms.py.
OVERRIDES['eot_pgd'] = {'steps': 3, 'samples': 2,
                        'transform': GaussianBlur(kernel_size=3, max_sigma=1.0)}
# DI's default min_scale 0.9 cannot shrink an 8-pixel side (ceil(7.2) = 8): shrink more.
OVERRIDES['difgsm'] = {'steps': 3, 'min_scale': 0.5}
OVERRIDES['ditimifgsm'] = {'steps': 3, 'transform': ResizePad(min_scale=0.5, prob=0.5)}
RANDOMISED = ('pgd', 'pgd_l2', 'vmifgsm', 'difgsm', 'ditimifgsm', 'eot_pgd')
NAMES = sorted(ATTACKS)

MODEL = Counting(Linear(), tag='registry')
PARAMS = linear_params()
IMAGES = tiny_images()
LABELS = jnp.array([0, 1, 2], jnp.int32)
TARGETS = (LABELS + 1) % K
KEY = jax.random.key(42)


def eps_of(name):
  return EPS_L2 if ATTACK_NORMS[name] == 'l2' else EPS_LINF


def run(name, images=IMAGES, labels=LABELS, key=KEY, eps=None, **kwargs):
  eps = eps_of(name) if eps is None else eps
  return ATTACKS[name](MODEL, PARAMS, images, labels, eps, key=key,
                       **{**OVERRIDES[name], **kwargs})


@functools.cache
def adversarial(name, targeted):
  return np.asarray(run(name, labels=TARGETS if targeted else LABELS, targeted=targeted))


def distances(adv, images=IMAGES):
  d = np.asarray(adv) - np.asarray(images)
  return np.abs(d).reshape(len(d), -1).max(1), np.sqrt((d ** 2).reshape(len(d), -1).sum(1))


@pytest.mark.slow
def test_randomised_list_is_complete():
  # Every attack that uses the key is listed, so the key tests below cover it.
  for name in NAMES:
    a, b = run(name), run(name, key=jax.random.key(7))
    assert (name in RANDOMISED) == (not np.array_equal(a, b)), name


@pytest.mark.slow
@pytest.mark.parametrize('targeted', [False, True])
@pytest.mark.parametrize('name', NAMES)
def test_within_budget_and_unit_range(name, targeted):
  adv = adversarial(name, targeted)
  assert adv.shape == IMAGES.shape and adv.dtype == np.float32
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  linf, l2 = distances(adv)
  if ATTACK_NORMS[name] == 'linf':
    assert np.all(linf <= EPS_LINF + 1e-6)
    assert np.all(linf >= EPS_LINF - 1e-6)   # the budget is used, not just respected
  else:
    assert np.all(l2 <= EPS_L2 * (1 + 1e-5))
    assert np.all(l2 >= 0.5 * EPS_L2)


@pytest.mark.parametrize('targeted', [False, True])
@pytest.mark.parametrize('name', NAMES)
def test_moves_the_loss_the_right_way(name, targeted):
  labels = TARGETS if targeted else LABELS
  clean = cross_entropy(Linear()(PARAMS, IMAGES), labels)
  after = cross_entropy(Linear()(PARAMS, jnp.asarray(adversarial(name, targeted))), labels)
  if targeted:
    assert np.all(np.asarray(after) < np.asarray(clean) - 0.05), (clean, after)
  else:
    assert np.all(np.asarray(after) > np.asarray(clean) + 0.05), (clean, after)


# The engine shares the projections; these cover each norm and both one-step attacks.
@pytest.mark.parametrize('name', ['fgsm', 'fgm_l2', 'ifgsm', 'pgd', 'pgd_l2'])
def test_per_example_budgets(name):
  scale = np.array([0.0, 0.5, 1.0], np.float32)
  adv = run(name, eps=jnp.asarray(eps_of(name) * scale))
  linf, l2 = distances(adv)
  dist = linf if ATTACK_NORMS[name] == 'linf' else l2
  assert np.all(dist <= eps_of(name) * scale * (1 + 1e-5) + 1e-6)
  assert dist[0] == 0.0 and dist[2] > dist[1] > 0


@pytest.mark.parametrize('name', RANDOMISED)
def test_same_key_same_result_other_key_other_result(name):
  a, b = run(name), run(name)
  c = run(name, key=jax.random.key(43))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_raw_uint32_keys_give_the_draws_of_the_typed_key():
  np.testing.assert_array_equal(run('pgd'), run('pgd', key=jax.random.key_data(KEY)))


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_batched_equals_per_example(name):
  # One key is split into one key per example; example i alone with its key must give the
  # same result as within the batch.
  keys = example_keys(KEY, len(IMAGES))
  batched = run(name)
  for i in range(len(IMAGES)):
    single = run(name, images=IMAGES[i:i + 1], labels=LABELS[i:i + 1], key=keys[i:i + 1])
    np.testing.assert_allclose(batched[i:i + 1], single, atol=1e-6)


# The attacks that draw transformations: disable_jit would take ~10 s each here, so they are
# compared with the engine's plain Python function (not jitted; its inner loops still
# compile as primitives), called with the options the attack should pass.
# (difgsm is ditimifgsm without TI and momentum.)
TRANSFORMED = {
    'ditimifgsm': {'transform': ResizePad(min_scale=0.5, prob=0.5), 'decay': 1.0,
                   'kernel_size': 7},
    'eot_pgd': {'transform': OVERRIDES['eot_pgd']['transform'], 'eot_samples': 2,
                'random_init': True, 'step_size': 2.5 * EPS_LINF / 2},
}


# Eager execution compiles every primitive separately, the PRNG's hashing most slowly.
@pytest.mark.slow
@pytest.mark.parametrize('name', [n for n in NAMES if n not in TRANSFORMED and n != 'difgsm'])
def test_jitted_equals_eager(name):
  short = {k: min(v, 2) for k, v in OVERRIDES[name].items() if k in ('steps', 'samples')}
  jitted = run(name, **short)
  with jax.disable_jit():
    eager = run(name, **short)
  np.testing.assert_allclose(jitted, eager, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TRANSFORMED))
def test_jitted_equals_the_python_engine(name):
  short = {k: min(v, 2) for k, v in OVERRIDES[name].items() if k in ('steps', 'samples')}
  jitted = run(name, **short)
  options = dict(TRANSFORMED[name])
  step_size = options.pop('step_size', None)
  python = iterative_attack.__wrapped__(MODEL, PARAMS, IMAGES, LABELS, EPS_LINF, key=KEY,
                                        step_size=step_size, config=Config(steps=2, **options))
  np.testing.assert_allclose(jitted, python, atol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_compiles_once_for_a_fixed_shape(name):
  run(name)
  traced = TRACES['registry']
  assert traced > 0
  for eps_scale, labels, seed in ((0.5, TARGETS, 1), (0.25, LABELS[::-1], 2)):
    adv = run(name, labels=labels, key=jax.random.key(seed), eps=eps_of(name) * eps_scale)
    linf, l2 = distances(adv)
    assert np.all((linf if ATTACK_NORMS[name] == 'linf' else l2)
                  <= eps_of(name) * eps_scale * (1 + 1e-5) + 1e-7)
  assert TRACES['registry'] == traced


@pytest.mark.parametrize('name', ['pgd', 'mifgsm'])
def test_bad_shapes_and_options_raise(name):
  with pytest.raises(ValueError, match='N x H x W x C'):
    run(name, images=IMAGES[0])
  if name == 'pgd':
    with pytest.raises(ValueError, match='PRNG key'):
      run(name, key=jax.random.split(KEY, 5))   # 5 keys for 3 images
    with pytest.raises(ValueError, match='PRNG key'):
      run(name, key=None)
  with pytest.raises(ValueError, match='norm'):
    run(name, norm='l1')
