"""A small ResNet face classifier, a stronger and different model for transfer experiments.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385 -- basic blocks, with GroupNorm (Wu & He, 2018, arXiv:1803.08494) instead
of BatchNorm: ``fgsm_jax.train.train_step`` keeps no batch statistics, and attacks then see
the same deterministic function in training and evaluation.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fgsm_jax import ops

ModuleDef = Callable[..., nn.Module]


class BasicBlock(nn.Module):
  """conv3x3 -> GN -> ReLU -> conv3x3 -> GN (scale 0 at init) + shortcut -> ReLU."""
  features: int
  strides: int = 1
  groups: int = 8
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    Conv = self.conv
    y = Conv(self.features, (3, 3), (self.strides, self.strides), padding='SAME',
             use_bias=False, dtype=self.dtype)(x)
    y = nn.relu(nn.GroupNorm(num_groups=self.groups, dtype=self.dtype)(y))
    y = Conv(self.features, (3, 3), padding='SAME', use_bias=False, dtype=self.dtype)(y)
    # Zero-initialised last scale: each block starts as the identity (Goyal et al., 2017),
    # which lets the net train well from the start without normalising batches.
    y = nn.GroupNorm(num_groups=self.groups, scale_init=nn.initializers.zeros,
                     dtype=self.dtype)(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = Conv(self.features, (1, 1), (self.strides, self.strides), use_bias=False,
               dtype=self.dtype, name='shortcut_conv')(x)
      x = nn.GroupNorm(num_groups=self.groups, dtype=self.dtype, name='shortcut_norm')(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet-10-style classifier: stem, 4 stages of basic blocks, global mean pool, Dense.

  Stem: Conv 7x7 / 2 (32) -> GN -> ReLU -> MaxPool 3x3 / 2; stages of ``stage_sizes`` blocks
  with ``widths`` channels, strides 1, 2, 2, 2. For 160 x 160 inputs the stages see 40, 20,
  10 and 5 pixels square; any input size works (global pooling), at least about 32 x 32.
  About 1.2 M parameters with the defaults. ``conv`` builds the convolutions: ``nn.Conv``
  (default) or ``ops.Conv`` (``fast_resnet``: the same parameters, with an input gradient
  that stays fast inside lax loops on XLA:CPU; PGD-20 step 244 -> 70 ms at batch 8).

  Input: images N x H x W x 3, float in [0, 1]. Output: float32 logits N x num_classes.

  Example:
    >>> model = ResNet(num_classes=50)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
    >>> logits = model.apply({'params': params}, images)   # (N, 50)
  """
  num_classes: int
  stage_sizes: Sequence[int] = (1, 1, 1, 1)
  widths: Sequence[int] = (32, 64, 128, 256)
  groups: int = 8
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'expected images N x H x W x 3, got shape {images.shape}')
    x = (images.astype(self.dtype) - 0.5) * 2.0   # centre the [0, 1] pixels
    x = self.conv(self.widths[0], (7, 7), (2, 2), padding='SAME', use_bias=False,
             dtype=self.dtype, name='stem_conv')(x)
    x = nn.relu(nn.GroupNorm(num_groups=self.groups, dtype=self.dtype, name='stem_norm')(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')
    for stage, (blocks, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(features, strides, self.groups, self.dtype, self.conv)(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
    return x.astype(jnp.float32)


def fast_resnet(num_classes: int, **kwargs: Any) -> ResNet:
  """``ResNet`` with ``ops.Conv`` convolutions (fast input gradients in attack loops)."""
  return ResNet(num_classes=num_classes, conv=ops.Conv, **kwargs)
