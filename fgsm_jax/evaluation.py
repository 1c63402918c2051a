"""Evaluating classifiers under attack: accuracy on clean and adversarial test splits."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.data.pipeline import batches

# attack(images N x H x W x C, labels N) -> adversarial images; a closure over model and eps.
BatchAttack = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


@jax.jit
def _correct(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  return jnp.argmax(logits, -1) == labels


def predict(apply_fn, params: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """Predicted class per image (N,), in fixed-size padded batches (one compile)."""
  labels = np.zeros(len(images), np.int32)
  out = []
  for batch in batches(images, labels, batch_size, pad=True):
    logits = apply_fn(params, batch["image"])
    keep = int(batch["mask"].sum())
    out.append(np.asarray(jnp.argmax(logits, -1))[:keep])
  return np.concatenate(out) if out else np.zeros(0, np.int32)


def attack_split(attack: BatchAttack, images: np.ndarray, labels: np.ndarray,
                 batch_size: int = 64) -> np.ndarray:
  """Runs ``attack`` over a whole split in fixed-size padded batches; returns N x H x W x C."""
  out = []
  for batch in batches(images, labels, batch_size, pad=True):
    adv = attack(jnp.asarray(batch["image"]), jnp.asarray(batch["label"]))
    keep = int(batch["mask"].sum())
    out.append(np.asarray(adv)[:keep])
  return np.concatenate(out) if out else np.zeros_like(images)


def accuracy(apply_fn, params: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64) -> float:
  """Top-1 accuracy of the classifier on ``images``."""
  if len(images) == 0:
    raise ValueError("accuracy of an empty split is undefined")
  return float(np.mean(predict(apply_fn, params, images, batch_size) == labels))
