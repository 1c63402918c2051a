"""Early-stopping predicates: ``done(outputs, labels) -> bool (N,)``, True once an example's
goal is met. Attacks freeze such examples (see ``iterative.iterative_attack``'s done_fn).

They are hashable frozen dataclasses (static jit arguments); a threshold is part of the
static value, so a new threshold compiles a new attack.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Misclassified:
  """Untargeted classification: the top-1 class differs from the true label.

  ``margin`` > 0 asks for a safety margin: the true logit must trail the best other one by
  more than ``margin`` (a barely flipped example may flip back after JPEG or resizing).
  """
  margin: float = 0.0

  def __call__(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    true = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    other = jnp.max(jnp.where(jnp.arange(logits.shape[1]) == labels[:, None], -jnp.inf,
                              logits), axis=1)
    return other - true > self.margin if self.margin > 0 else jnp.argmax(logits, 1) != labels


@dataclasses.dataclass(frozen=True)
class ReachedTarget:
  """Targeted classification: the top-1 class is the target (with an optional margin)."""
  margin: float = 0.0

  def __call__(self, logits: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
    target = jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]
    other = jnp.max(jnp.where(jnp.arange(logits.shape[1]) == targets[:, None], -jnp.inf,
                              logits), axis=1)
    return target - other > self.margin if self.margin > 0 else jnp.argmax(logits, 1) == targets


def _distance(descriptors: jnp.ndarray, references: jnp.ndarray) -> jnp.ndarray:
  diff = descriptors.astype(jnp.float32) - references.astype(jnp.float32)
  return jnp.sqrt(jnp.sum(diff * diff, axis=-1))


@dataclasses.dataclass(frozen=True)
class DistanceAbove:
  """Dodging: the descriptor is farther than ``threshold`` (Euclidean) from the reference.

  With dlib's recognizer, 0.6 is the same-person threshold; dodging succeeds above it.
  """
  threshold: float

  def __call__(self, descriptors: jnp.ndarray, references: jnp.ndarray) -> jnp.ndarray:
    return _distance(descriptors, references) > self.threshold


@dataclasses.dataclass(frozen=True)
class DistanceBelow:
  """Impersonation: the descriptor is within ``threshold`` (Euclidean) of the target's."""
  threshold: float

  def __call__(self, descriptors: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
    return _distance(descriptors, targets) < self.threshold
