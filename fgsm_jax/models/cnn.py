"""The face classifier of the original FGSM experiment, as a Flax linen module.

``OriginalCNN`` is the notebook's Keras network, written plainly; ``fast_original_cnn`` is the
same module built with the fused conv-ReLU-pool block (``fgsm_jax.ops.FusedConvReluPool``:
same parameters, FGSM about 3x faster on a 2-core CPU and 2.4x on an H200).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from fgsm_jax.ops.conv_relu_pool import FusedConvReluPool

ModuleDef = Callable[..., nn.Module]

# (features, pool) of the three conv blocks.
LAYERS = ((8, 2), (16, 3), (32, 3))


class ConvReluPool(nn.Conv):
  """Keras' Conv2D(features, 3, padding='same', activation='relu') + MaxPooling2D(pool):
  ``nn.Conv -> relu -> max_pool`` (window and stride ``pool``, VALID: the last H % pool rows
  and W % pool columns are dropped, as Keras does). nn.Conv's fields and parameters."""
  pool: int = 1

  def __call__(self, x):
    x = nn.relu(super().__call__(x))
    return nn.max_pool(x, (self.pool, self.pool), strides=(self.pool, self.pool),
                       padding='VALID')


class OriginalCNN(nn.Module):
  """The small CNN the original notebook trained on the Georgia Tech faces.

  Conv(8, 3x3, same, ReLU) -> MaxPool 2 -> Conv(16) -> MaxPool 3 -> Conv(32) -> MaxPool 3
  -> Flatten (2048 for 160x160 inputs) -> Dense(512, ReLU) -> Dense(num_classes).

  Input: images N x 160 x 160 x 3, float in [0, 1]. Output: float32 logits N x num_classes.
  ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
  ``block`` builds each conv-ReLU-pool layer: ``ConvReluPool`` (default, plain Flax) or
  ``FusedConvReluPool`` (``fast_original_cnn``); the parameters (``Conv_0..2``,
  ``Dense_0..1``, as ``nn.Conv``/``nn.Dense`` name them) are the same either way.

  Example:
    >>> model = OriginalCNN(num_classes=50)            # or fast_original_cnn(50)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
    >>> logits = model.apply({'params': params}, images)   # (N, 50)
  """
  num_classes: int
  dtype: Any = jnp.float32
  block: ModuleDef = ConvReluPool

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'expected images N x H x W x 3, got shape {images.shape}')
    x = images.astype(self.dtype)
    for i, (features, pool) in enumerate(LAYERS):
      x = self.block(features, (3, 3), padding='SAME', pool=pool, dtype=self.dtype,
                     name=f'Conv_{i}')(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(512, dtype=self.dtype)(x))
    x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
    # Logits in float32 so losses and their gradients keep full precision.
    return x.astype(jnp.float32)


def fast_original_cnn(num_classes: int, dtype: Any = jnp.float32,
                      impl: str = 'auto') -> OriginalCNN:
  """``OriginalCNN`` with the fused conv-ReLU-pool blocks (``ops.conv_relu_pool``; ``impl``
  'auto': fused on CPU and CUDA GPUs, plain elsewhere; 'fused' everywhere). Same params."""
  block = FusedConvReluPool if impl == 'auto' else _FUSED_BLOCKS[impl]
  return OriginalCNN(num_classes=num_classes, dtype=dtype, block=block)


# Module-level partials, so two fast_original_cnn(...) with one impl hash equal (one compile).
_FUSED_BLOCKS = {'fused': functools.partial(FusedConvReluPool, impl='fused')}
