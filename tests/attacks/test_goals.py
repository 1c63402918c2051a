"""Early stopping (goals as done_fn) and the embedding losses (dodging, impersonation)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import (DistanceAbove, DistanceBelow, Misclassified, ReachedTarget,
                              dodging, ifgsm, impersonation, mifgsm, pgd)
from conftest import TRACES, Counting, Linear, linear_params, tiny_images

PARAMS = linear_params()
X = tiny_images(n=6, seed=4)


class Embed:
  """descriptors = flatten(x) @ w, a stand-in for a face-recognition network (N x 6)."""

  def __eq__(self, other):
    return isinstance(other, Embed)

  def __hash__(self):
    return hash(Embed)

  def __call__(self, w, images):
    return images.reshape(images.shape[0], -1) @ w


W_EMBED = jnp.asarray(np.random.default_rng(1).normal(0, 0.1, (8 * 8 * 3, 6)), jnp.float32)


def test_goal_predicates():
  logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 2.9], [1.0, 1.0, 5.0]])
  labels = jnp.array([0, 2, 2])
  np.testing.assert_array_equal(Misclassified()(logits, labels), [False, True, False])
  np.testing.assert_array_equal(Misclassified(margin=0.5)(logits, labels), [False, False, False])
  np.testing.assert_array_equal(ReachedTarget()(logits, jnp.array([1, 1, 2])),
                                [False, True, True])
  np.testing.assert_array_equal(ReachedTarget(margin=0.5)(logits, jnp.array([1, 1, 2])),
                                [False, False, True])
  d = jnp.zeros((2, 3))
  r = jnp.array([[0.3, 0.4, 0.0], [1.0, 0.0, 0.0]])   # distances 0.5 and 1.0
  np.testing.assert_array_equal(DistanceAbove(0.6)(d, r), [False, True])
  np.testing.assert_array_equal(DistanceBelow(0.6)(d, r), [True, False])


def labels_for_mix():
  """Labels making some examples misclassified already, the rest correct."""
  pred = np.asarray(jnp.argmax(Linear()(PARAMS, X), -1))
  labels = pred.copy()
  labels[:2] = (pred[:2] + 1) % 4   # wrong on purpose: the goal is met before any step
  return jnp.asarray(labels), pred


def test_early_stopping_freezes_examples_once_misclassified():
  labels, _ = labels_for_mix()
  model = Counting(Linear(), 'goals')
  eps, steps = 0.1, 20   # many small steps: most examples flip before the budget is spent
  full = ifgsm(model, PARAMS, X, labels, eps, steps=steps)
  early = ifgsm(model, PARAMS, X, labels, eps, steps=steps, done_fn=Misclassified())
  traced = TRACES['goals']
  ifgsm(model, PARAMS, X, labels[::-1], eps / 2, steps=steps, done_fn=Misclassified())
  assert TRACES['goals'] == traced   # one compile serves new labels and eps
  np.testing.assert_array_equal(early[:2], X[:2])   # already misclassified: untouched
  pred = np.asarray(jnp.argmax(Linear()(PARAMS, early), -1))
  dist_early = np.abs(np.asarray(early - X)).reshape(6, -1).max(1)
  dist_full = np.abs(np.asarray(full - X)).reshape(6, -1).max(1)
  for i in range(6):
    if pred[i] != labels[i]:
      assert dist_early[i] <= dist_full[i] + 1e-7   # stopped no later than the full run
    else:   # never reached the goal: the same trajectory as without early stopping
      np.testing.assert_allclose(early[i], full[i], atol=1e-6)
  assert np.sum(pred != np.asarray(labels)) >= 4
  assert np.any(dist_early[2:] < dist_full[2:] - 1e-3)   # early stopping did stop early


def test_targeted_early_stopping_and_all_done_at_start():
  labels, pred = labels_for_mix()
  targets = jnp.asarray((pred + 1) % 4)
  adv = mifgsm(Linear(), PARAMS, X, targets, 0.2, steps=20, targeted=True,
               done_fn=ReachedTarget())
  assert np.all(np.asarray(jnp.argmax(Linear()(PARAMS, adv), -1)) == np.asarray(targets))
  # Every goal met at the start: the while loop runs no step at all.
  done = pgd(Linear(), PARAMS, X, jnp.asarray(pred), 0.05, key=jax.random.key(0), steps=5,
             random_init=False, targeted=True, done_fn=ReachedTarget())
  np.testing.assert_array_equal(done, X)


@pytest.mark.slow
@pytest.mark.parametrize('attack', ['pgd', 'mifgsm'])
def test_dodging_and_impersonation_on_an_embedding(attack):
  # Each face's reference descriptor comes from another photo of the same person (here the
  # image slightly changed): at the image's own descriptor the squared distance has zero
  # gradient, so a deterministic attack could not leave it (PGD's random start can; below).
  other_photo = jnp.clip(X + 0.05 * jax.random.normal(jax.random.key(9), X.shape), 0, 1)
  refs = Embed()(W_EMBED, other_photo)
  others = jnp.roll(refs, 1, axis=0)         # another person's descriptor
  kwargs = {'steps': 5}

  def run(labels, loss_fn, targeted, done_fn=None):
    if attack == 'pgd':
      return pgd(Embed(), W_EMBED, X, labels, 0.05, key=jax.random.key(1), loss_fn=loss_fn,
                 targeted=targeted, done_fn=done_fn, **kwargs)
    return mifgsm(Embed(), W_EMBED, X, labels, 0.05, loss_fn=loss_fn, targeted=targeted,
                  done_fn=done_fn, **kwargs)

  dodge = run(refs, dodging, False)
  assert bool(jnp.all(dodging(Embed()(W_EMBED, dodge), refs) > dodging(Embed()(W_EMBED, X), refs)))
  if attack == 'pgd':
    own = Embed()(W_EMBED, X)
    escaped = pgd(Embed(), W_EMBED, X, own, 0.05, key=jax.random.key(1), loss_fn=dodging, steps=5)
    assert bool(jnp.all(dodging(Embed()(W_EMBED, escaped), own) > 1e-4))
  before = impersonation(refs, others)
  imp = run(others, impersonation, True)
  assert bool(jnp.all(impersonation(Embed()(W_EMBED, imp), others) < before))
  # Dodging with a threshold: examples stop once farther than it.
  threshold = float(jnp.median(jnp.sqrt(dodging(Embed()(W_EMBED, dodge), refs))))
  stopped = run(refs, dodging, False, DistanceAbove(threshold / 2))
  dist = np.sqrt(np.asarray(dodging(Embed()(W_EMBED, stopped), refs)))
  assert np.all(dist > threshold / 2)
  assert np.all(dist <= np.sqrt(np.asarray(dodging(Embed()(W_EMBED, dodge), refs))) + 1e-6)
