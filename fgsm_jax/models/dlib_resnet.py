"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in Flax linen.

A 150x150 aligned RGB face chip (as made by ``dlib.get_face_chip(img, shape, 150, 0.25)``)
maps to a 128-D descriptor; two chips show the same person when the L2 distance between
their descriptors is below 0.6. The port reproduces dlib's network (``anet_type`` of
dlib's ``dnn_face_recognition_ex.cpp``) layer for layer:

  input_rgb_image_sized<150>: x -> (255 x - mean_rgb) / 256
  con<32,7,7,2,2> affine relu max_pool<3,3,2,2>
  alevel4: 3 x ares<32>
  alevel3: ares_down<64>, 3 x ares<64>
  alevel2: ares_down<128>, 2 x ares<128>
  alevel1: ares_down<256>, 2 x ares<256>
  alevel0: ares_down<256>
  avg_pool_everything, fc_no_bias<128>   (loss_metric outputs this unnormalised)

dlib conventions kept exactly: a stride-2 ``con`` has no padding (a stride-1 3x3 one pads
1); pooling windows start at the top-left and drop the trailing row/column that does not
fill a window (VALID); ``add_prev`` of two tensors of different shapes zero-pads the
smaller one at the bottom/right and in the extra channels (this happens in every
``ares_down``, where the pooled shortcut keeps the input's channel count and, at 8x8, a
4x4 shortcut meets a 3x3 block output).

The weights are read from dlib's own binary serialization by ``load_dlib_resnet``
(``fgsm_jax.models.dlib_dat``). ``DlibResNet()`` is written with plain Flax layers;
``fast_dlib_resnet()`` (behind ``dlib_resnet_apply``) is the same network built with the fast
forms of ``fgsm_jax.ops``: ``ops.Conv`` (input gradients that stay fast inside attack loops,
the affine scale folded into the kernel) and ``ops.max_pool`` (no select_and_scatter); PGD
steps ~4.5x faster on XLA:CPU, the same parameters.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from fgsm_jax import ops
from fgsm_jax.models.apply import check_face_batch
from fgsm_jax.models.distance import distance
from fgsm_jax.models.dlib_dat import (  # noqa: F401  (re-exported: the reader's names)
    CHIP_SIZE,
    DESCRIPTOR_DIM,
    RESNET_UNITS,
    DlibModelError,
    load_dlib_resnet,
    parse_dlib_resnet,
)
from fgsm_jax.ops.conv import PlainConv
from fgsm_jax.ops.pool import max_pool_reference

ModuleDef = Callable[..., nn.Module]

SAME_PERSON_THRESHOLD = 0.6  # L2 distance under which dlib calls two faces one person.
# input_rgb_image_sized's default per-channel means (0..255 units); the file stores the same.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)

# ---------------------------------------------------------------------------------------
# The network.


class _Affine(nn.Module):
  """dlib's affine_ layer in CONV_MODE, x * scale + bias per channel (frozen batch norm).

  Every affine here follows a convolution, which applies it (``Conv(x, scale, shift)``; the
  fast ``ops.Conv`` folds the scale into the kernel, so the input-gradient kernel is hoisted
  out of attack loops); this module only holds the parameters and returns (scale, bias).
  """
  features: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    scale = self.param('scale', nn.initializers.ones, (self.features,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return scale, bias


def _con(conv: ModuleDef, features: int, size: int, stride: int, name: str) -> nn.Module:
  """dlib's con_: a stride-1 filter pads size//2 each side, a strided one pads 0. ``conv``
  is called as ``(x, scale, shift)``: the following affine layer (``ops.conv.Conv``)."""
  pad = size // 2 if stride == 1 else 0
  return conv(features, (size, size), strides=(stride, stride),
              padding=((pad, pad), (pad, pad)), name=name)


def _add_prev(a: jax.Array, b: jax.Array) -> jax.Array:
  """dlib's add_prev: sum over the larger shape, the smaller one zero-padded bottom/right."""
  shape = tuple(max(s, t) for s, t in zip(a.shape, b.shape))

  def pad(x: jax.Array) -> jax.Array:
    if x.shape == shape:
      return x
    return jnp.pad(x, [(0, s - t) for s, t in zip(shape, x.shape)])

  return pad(a) + pad(b)


class _ResUnit(nn.Module):
  """dlib's ares / ares_down: relu(block(x) + shortcut(x))."""
  features: int
  down: bool
  conv: ModuleDef = PlainConv

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    stride = 2 if self.down else 1
    conv1 = _con(self.conv, self.features, 3, stride, 'conv1')
    y = nn.relu(conv1(x, *_Affine(self.features, name='affine1')()))
    conv2 = _con(self.conv, self.features, 3, 1, 'conv2')
    y = conv2(y, *_Affine(self.features, name='affine2')())
    # residual_down's shortcut: avg_pool<2,2,2,2> of the input (channel count unchanged).
    shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2), padding='VALID') if self.down else x
    return nn.relu(_add_prev(y, shortcut))


class DlibResNet(nn.Module):
  """dlib_face_recognition_resnet_model_v1: aligned face chips -> 128-D descriptors.

  Call: ``DlibResNet().apply({'params': params}, chips)`` with ``chips`` N x 150 x 150 x 3
  float32 RGB in [0, 1] (dlib's uint8 chip / 255); returns N x 128 float32 descriptors,
  unnormalised, exactly as dlib's ``compute_face_descriptor`` gives them.

  ``conv`` builds the convolutions, called as ``(x, scale, shift)`` (convolution then the
  affine layer): ``ops.PlainConv`` (default) or ``ops.Conv`` (fast); ``max_pool(x, size,
  stride)`` is the stem's VALID pooling: ``ops.max_pool_reference`` (default, nn.max_pool) or
  ``ops.max_pool``. ``fast_dlib_resnet()`` uses the fast ones; the parameters are the same.
  """
  conv: ModuleDef = PlainConv
  max_pool: Callable[[jax.Array, int, int], jax.Array] = max_pool_reference

  @nn.compact
  def __call__(self, chips: jax.Array) -> jax.Array:
    check_face_batch(chips, CHIP_SIZE, 'chips')
    mean_rgb = self.param('mean_rgb', lambda *_: jnp.asarray(DLIB_MEAN_RGB, jnp.float32))
    # input_rgb_image_sized: (pixel - mean) / 256 in 0..255 pixel units.
    x = (chips.astype(jnp.float32) * 255.0 - mean_rgb) / 256.0
    stem = _con(self.conv, 32, 7, 2, 'stem_conv')
    x = nn.relu(stem(x, *_Affine(32, name='stem_affine')()))
    x = self.max_pool(x, 3, 2)  # max_pool<3,3,2,2>, VALID.
    for u, (features, down) in enumerate(RESNET_UNITS):
      x = _ResUnit(features, down, self.conv, name=f'unit{u}')(x)
    x = jnp.mean(x, axis=(1, 2))  # avg_pool_everything.
    return nn.Dense(DESCRIPTOR_DIM, use_bias=False, name='fc')(x)  # fc_no_bias.


def fast_dlib_resnet() -> DlibResNet:
  """``DlibResNet`` built with the fast forms (``ops.Conv``, ``ops.max_pool``)."""
  return DlibResNet(conv=ops.Conv, max_pool=ops.max_pool)


@jax.jit
def dlib_resnet_apply(params: dict[str, Any], chips: jax.Array) -> jax.Array:
  """Descriptors of face chips: N x 150 x 150 x 3 in [0, 1] -> N x 128 (jitted, fast forms)."""
  return fast_dlib_resnet().apply({'params': params}, chips)


def descriptor_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """L2 distance between descriptors along the last axis (broadcasting); < 0.6: same person.

  `fgsm_jax.models.distance.distance` with the 'l2' metric, on JAX arrays."""
  return distance(jnp.asarray(a), jnp.asarray(b), 'l2')
