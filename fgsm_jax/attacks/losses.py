"""Per-example losses that attacks ascend (untargeted, dodging) or descend (targeted).

Every loss maps model outputs (N x ...) and targets to a per-example loss of shape (N,).
The attack convention: untargeted attacks move the input to *increase* the loss against the
true targets; targeted ones move it to *decrease* the loss against the chosen targets.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

LossFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Softmax cross-entropy of integer labels. logits N x C float, labels N int -> N."""
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(
        f'expected logits N x C and labels (N,), got {logits.shape} and {labels.shape}')
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def _squared_distance(descriptors: jnp.ndarray, references: jnp.ndarray) -> jnp.ndarray:
  if descriptors.shape != references.shape or descriptors.ndim != 2:
    raise ValueError(
        f'expected descriptors and references both N x D, got {descriptors.shape} and '
        f'{references.shape}')
  diff = descriptors.astype(jnp.float32) - references.astype(jnp.float32)
  return jnp.sum(diff * diff, axis=-1)


def dodging(descriptors: jnp.ndarray, references: jnp.ndarray) -> jnp.ndarray:
  """Squared L2 distance from each face's own reference descriptor (N x D each) -> N.

  Untargeted attacks ascend it: the protected face moves away from its own identity.
  """
  return _squared_distance(descriptors, references)


def impersonation(descriptors: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
  """Squared L2 distance to a chosen target descriptor (N x D each) -> N.

  Use with ``targeted=True``: the attack descends it, towards the target identity.
  """
  return _squared_distance(descriptors, targets)
