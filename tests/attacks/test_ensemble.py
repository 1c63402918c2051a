"""Ensembles: logit fusion and loss fusion as pure (apply_fn, params, loss_fn) triples."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fgsm_jax.attacks import (LogitEnsemble, cross_entropy, dodging, ensemble, mifgsm, pgd)
from conftest import TRACES, Counting, Linear, TinyCNN, cnn_params, linear_params, tiny_images

X = tiny_images()
LABELS = jnp.array([0, 1, 2])
MEMBERS = ((Linear(), linear_params(seed=0)), (TinyCNN(), cnn_params()))


def embed(params, images):
  return images.reshape(images.shape[0], -1) @ params


def test_logit_fusion_is_the_weighted_sum_and_attacks_every_member():
  apply_fn, params, loss_fn = ensemble(MEMBERS, (0.3, 0.7))
  fused = apply_fn(params, X)
  np.testing.assert_allclose(
      fused, 0.3 * MEMBERS[0][0](MEMBERS[0][1], X) + 0.7 * MEMBERS[1][0](MEMBERS[1][1], X),
      rtol=1e-5, atol=1e-6)
  adv = mifgsm(apply_fn, params, X, LABELS, 0.05, steps=4, loss_fn=loss_fn)
  assert float(jnp.max(jnp.abs(adv - X))) <= 0.05 + 1e-6
  for f, p in MEMBERS:
    assert bool(jnp.all(cross_entropy(f(p, adv), LABELS) > cross_entropy(f(p, X), LABELS)))


def test_rebuilt_ensembles_are_equal_static_arguments():
  # The same members and weights give an equal, equally hashed apply_fn: no recompile.
  counted = ((Counting(Linear(), 'ensemble'), linear_params(seed=0)), MEMBERS[1])
  a, params, _ = ensemble(counted)
  b, _, _ = ensemble(counted)
  assert a == b and hash(a) == hash(b) and isinstance(a, LogitEnsemble)
  mifgsm(a, params, X, LABELS, 0.05, steps=2)
  traced = TRACES['ensemble']
  mifgsm(b, params, X, LABELS, 0.02, steps=2)
  assert traced > 0 and TRACES['ensemble'] == traced


def soft_cross_entropy(logits, one_hot):
  return optax.softmax_cross_entropy(logits, one_hot)


def test_loss_fusion_with_different_output_kinds():
  # A classifier and a face-embedding model cannot fuse logits (4 classes vs 5-D
  # descriptors); their losses add. Targets: the members' N x D_k targets concatenated --
  # one-hot labels for the classifier, reference descriptors for the embedding.
  w_embed = jnp.asarray(np.random.default_rng(0).normal(0, 0.2, (8 * 8 * 3, 5)), jnp.float32)
  members = ((Linear(), linear_params(seed=0)), (Embed(), w_embed))
  one_hot = jax.nn.one_hot(LABELS, 4)
  # References away from the images' own descriptors, so the embedding's loss (and so its
  # weight) is not 0 and the check below sees both members.
  own = embed(w_embed, X)
  refs = own + jnp.asarray(np.random.default_rng(1).normal(0, 0.5, own.shape), jnp.float32)
  apply_fn, params, loss_fn = ensemble(members, (1.0, 2.0), fuse='loss',
                                       loss_fn=(soft_cross_entropy, dodging))
  targets = jnp.concatenate([one_hot, refs], axis=1)
  loss = loss_fn(apply_fn(params, X), targets)
  ce = cross_entropy(Linear()(members[0][1], X), LABELS)
  embedding_term = 2.0 * dodging(own, refs)
  # Each term is a sizeable part of the sum: dropping either member, or its weight, changes
  # the loss by far more than the tolerance.
  # (measured: ce 0.52-5.2, embedding term 0.52-1.7)
  assert bool(jnp.all(embedding_term > 0.05 * ce)) and bool(jnp.all(ce > 0.05 * embedding_term))
  np.testing.assert_allclose(loss, ce + embedding_term, rtol=1e-5, atol=1e-7)
  adv = pgd(apply_fn, params, X, targets, 0.05, key=jax.random.key(0), steps=3, loss_fn=loss_fn)
  assert float(jnp.max(jnp.abs(adv - X))) <= 0.05 + 1e-6
  assert bool(jnp.all(loss_fn(apply_fn(params, adv), targets) > loss))
  # Both members moved: the classifier's loss rose, the descriptor left its reference.
  assert bool(jnp.all(cross_entropy(Linear()(members[0][1], adv), LABELS)
                      > cross_entropy(Linear()(members[0][1], X), LABELS)))
  assert bool(jnp.all(dodging(embed(w_embed, adv), refs) > dodging(own, refs)))
  with pytest.raises(ValueError, match='concatenated'):
    loss_fn(apply_fn(params, X), refs)


class Embed:
  """A linear face-embedding stand-in (hashable by identity of its class instances)."""

  def __eq__(self, other):
    return isinstance(other, Embed)

  def __hash__(self):
    return hash(Embed)

  def __call__(self, params, images):
    return images.reshape(images.shape[0], -1) @ params


def test_bad_ensembles_raise():
  with pytest.raises(ValueError, match='at least one'):
    ensemble(())
  with pytest.raises(ValueError, match='2 ensemble weights'):
    ensemble(MEMBERS, (1.0,))
  with pytest.raises(ValueError, match='fuse'):
    ensemble(MEMBERS, fuse='votes')
  apply_fn, params, _ = ensemble(((Linear(), linear_params()),
                                  (Embed(), jnp.zeros((192, 5)))))
  with pytest.raises(ValueError, match='equal output shapes'):
    apply_fn(params, X)
