"""The face classifier of the original FGSM experiment, as a Flax linen module."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class OriginalCNN(nn.Module):
  """The small CNN the original notebook trained on the Georgia Tech faces.

  Conv(8, 3x3, same, ReLU) -> MaxPool 2 -> Conv(16) -> MaxPool 3 -> Conv(32) -> MaxPool 3
  -> Flatten (2048 for 160x160 inputs) -> Dense(512, ReLU) -> Dense(num_classes).

  Input: images N x 160 x 160 x 3, float in [0, 1]. Output: logits N x num_classes.
  ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``); parameters stay float32.

  Example:
    >>> model = OriginalCNN(num_classes=50)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
    >>> logits = model.apply({'params': params}, images)   # (N, 50)
  """
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected images N x H x W x 3, got shape {images.shape}")
    x = images.astype(self.dtype)
    for features, pool in ((8, 2), (16, 3), (32, 3)):
      x = nn.Conv(features, (3, 3), padding="SAME", dtype=self.dtype)(x)
      x = nn.relu(x)
      # Keras' MaxPooling2D(k): window k, stride k, VALID padding.
      x = nn.max_pool(x, (pool, pool), strides=(pool, pool), padding="VALID")
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(512, dtype=self.dtype)(x))
    x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
    # Logits in float32 so losses and their gradients keep full precision.
    return x.astype(jnp.float32)
