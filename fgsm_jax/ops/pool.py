"""VALID max pooling whose gradient avoids ``select_and_scatter`` (dlib's max_pool<3,3,2,2>).

``nn.max_pool``'s gradient is select_and_scatter, which XLA:CPU lowers to a reduce_window
carrying an argmax per position plus a scatter: ~20 ms of a ~80 ms PGD step on dlib's ResNet
at batch 8 (profiled). ``max_pool`` takes the max over the size*size strided window slices,
recording the first maximum's position (``layout.first_argmax``), and its gradient routes g
back through size*size strided pads: all elementwise loops. Values equal
``max_pool_reference``; the gradient goes to the first maximum of a window in row-major
order, as select_and_scatter's ``>=`` does.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fgsm_jax.ops.layout import first_argmax, window_slices


def max_pool_reference(x: jax.Array, size: int, stride: int) -> jax.Array:
  """Plain VALID max pooling of N x H x W x C: ``nn.max_pool``."""
  return nn.max_pool(x, (size, size), strides=(stride, stride), padding='VALID')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x: jax.Array, size: int, stride: int) -> jax.Array:
  """VALID max pooling of N x H x W x C (window size, stride), first-maximum gradient."""
  return first_argmax(window_slices(x, size, stride))[0]


def _max_pool_fwd(x, size, stride):
  y, idx = first_argmax(window_slices(x, size, stride))
  return y, (idx, x.shape)


def _max_pool_bwd(size, stride, residuals, g):
  idx, shape = residuals
  _, ho, wo, _ = g.shape
  zero = jnp.zeros((), g.dtype)
  dx = None
  for k in range(size * size):
    di, dj = divmod(k, size)
    part = jnp.where(idx == k, g, zero)
    # Back to input rows di, di + stride, ...: interior padding stride - 1.
    part = lax.pad(part, zero, ((0, 0, 0),
                                (di, shape[1] - di - stride * (ho - 1) - 1, stride - 1),
                                (dj, shape[2] - dj - stride * (wo - 1) - 1, stride - 1),
                                (0, 0, 0)))
    dx = part if dx is None else dx + part
  return (dx,)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
