"""The one distance between face descriptors: NumPy (float64, for judges and galleries) or JAX
(traceable, for the attack's loss), by the recognizer's metric.

Two metrics:
  'l2'      Euclidean distance of the raw descriptors (dlib's ResNet: same person under 0.6);
  'cosine'  1 - cos of the angle between them, i.e. of the L2-normalised descriptors (the
            ArcFace family: MobileFace, FaceNet, ...).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ('l2', 'cosine')
# The floor of a vector's length when it is normalised (a zero vector: cosine distance 1).
_TINY = 1e-12


def distance(a: Any, b: Any, metric: str, *, eps: float = 0.0) -> Any:
  """Distance along the last axis between descriptors ``a`` (... x D) and ``b`` (D,) or
  (... x D, broadcasting).

  Args:
    a, b: descriptors. JAX arrays (tracers included) give a JAX result; anything else is
      computed in NumPy float64.
    metric: 'l2' or 'cosine' (`METRICS`).
    eps: added under every square root (the Euclidean norm; for 'cosine' each vector's
      length). 0 gives the exact value; the attack differentiates with a small eps (1e-12)
      so that a zero distance still has a finite gradient.

  Returns:
    ``a``'s leading shape (a scalar for two vectors).
  """
  if metric not in METRICS:
    raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
  if isinstance(a, jax.Array) or isinstance(b, jax.Array):
    xp = jnp
  else:
    xp = np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if metric == 'l2':
    d = a - b
    return xp.sqrt(xp.sum(d * d, axis=-1) + eps)
  a_unit, b_unit = _unit(a, xp, eps), _unit(b, xp, eps)
  # One reference: a matrix-vector product (what the attack's programs always computed).
  cos = a_unit @ b_unit if b.ndim == 1 else xp.sum(a_unit * b_unit, axis=-1)
  return 1.0 - cos


def _unit(v: Any, xp: Any, eps: float) -> Any:
  """``v`` over its length along the last axis. With eps > 0 the length is never 0; with
  eps 0 it is floored (a zero vector stays 0). No floor with eps > 0: XLA then computes
  the attack's loss exactly as it always did (a floor changes how it fuses the division,
  and the last bits of the distances to several references)."""
  norm = xp.sqrt(xp.sum(v * v, axis=-1, keepdims=True) + eps)
  return v / (norm if eps > 0 else xp.maximum(norm, _TINY))
