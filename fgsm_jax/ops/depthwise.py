"""Depthwise 2-D convolution as a sum of shifted views, with a hand-written VJP.

A depthwise convolution (one k x k filter per channel, ``feature_group_count`` = channels:
MobileNets, MobileFaceNets) is a sum over the k * k taps of the padded input's strided view
at that tap times the tap's per-channel weight: elementwise work that XLA fuses into one
loop. XLA:CPU instead runs ``lax.conv_general_dilated`` with feature groups through a slow
generic kernel, and autodiff of the sum of views (a pad per tap, summed) is slow as well.
Measured on 2 busy CPU cores, batch 8:

  3x3 stride 1, 56 x 56 x 128: grouped conv 236 ms forward; views 12 ms
  3x3 stride 1, 7 x 7 x 512:   grouped conv 22 ms; views 0.9 ms
  a MobileFaceNet bottleneck (1x1, depthwise 3x3, 1x1) at 28 x 28, input gradient:
                               autodiff of the views 174 ms; this VJP 22-24 ms

The input gradient here is the same kind of sum: the output gradient dilated by the stride
and padded k - 1 on each side, correlated with the flipped filter, cropped to the input.
The kernel gradient (training only; XLA drops it when unused) is one reduction per tap.

``depthwise_conv2d(..., fast=False)`` / ``PlainDepthwiseConv`` are the plain reference
(``lax.conv_general_dilated`` with ``feature_group_count``); ``DepthwiseConv`` has the
parameters of ``nn.Conv(C, (kh, kw), feature_group_count=C)`` (``kernel`` kh x kw x 1 x C,
``bias`` (C,)), so params load into either.

Limits: depth multiplier 1, no dilation, padding of at least 0; no forward-mode
differentiation (``jax.custom_vjp``).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fgsm_jax.ops.conv import Pads, _resolve_padding
from fgsm_jax.ops.layout import DN


def _views_sum(xp: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """sum over taps (i, j) of xp[:, i::sh, j::sw] (the VALID output's extent) * kernel[i, j, 0]."""
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  ho = (xp.shape[1] - kh) // sh + 1
  wo = (xp.shape[2] - kw) // sw + 1
  y = None
  for i in range(kh):
    for j in range(kw):
      v = xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] * kernel[i, j, 0]
      y = v if y is None else y + v
  return y


def _pad(x: jax.Array, padding: Pads) -> jax.Array:
  return jnp.pad(x, ((0, 0), *padding, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, strides, padding):
  return _views_sum(_pad(x, padding), kernel, strides)


def _depthwise_fwd(x, kernel, strides, padding):
  return _depthwise(x, kernel, strides, padding), (x, kernel)


def _depthwise_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  (top, _), (left, _) = padding
  h, w = x.shape[1:3]
  # Padded-input row p meets output row o through tap p - s * o: a full correlation of g
  # dilated by s with the flipped filter covers padded rows 0 .. (Ho - 1) s + kh - 1.
  zero = jnp.zeros((), g.dtype)
  gd = lax.pad(g, zero, ((0, 0, 0), (kh - 1, kh - 1, strides[0] - 1),
                         (kw - 1, kw - 1, strides[1] - 1), (0, 0, 0)))
  dxp = _views_sum(gd, kernel[::-1, ::-1], (1, 1))
  # Padded rows past the last one read get no gradient; then drop the padding.
  dxp = lax.pad(dxp, zero, ((0, 0, 0), (0, max(0, top + h - dxp.shape[1]), 0),
                            (0, max(0, left + w - dxp.shape[2]), 0), (0, 0, 0)))
  dx = dxp[:, top:top + h, left:left + w]
  # Training only; XLA removes it when the caller uses dx alone.
  xp = _pad(x, padding)
  ho, wo = g.shape[1:3]
  sh, sw = strides
  dkernel = jnp.stack([
      jnp.sum(xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] * g, axis=(0, 1, 2))
      for i in range(kh) for j in range(kw)]).reshape(kernel.shape)
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, strides: int | Sequence[int] = 1,
                     padding: str | int | Sequence[Any] = 'SAME', *,
                     fast: bool = True) -> jax.Array:
  """Depthwise cross-correlation, NHWC x (kh x kw x 1 x C) -> NHWC, one filter per channel.

  Args:
    x: N x H x W x C.
    kernel: kh x kw x 1 x C (nn.Conv's kernel with ``feature_group_count=C``).
    strides: s or (sh, sw).
    padding: 'SAME', 'VALID', p (each side) or ((top, bottom), (left, right)), as nn.Conv;
      no negative pads.
    fast: True (default) for the sum of views with its VJP; False for the plain ``lax``
      grouped convolution.

  Returns:
    N x Ho x Wo x C.
  """
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
    raise ValueError(f'expected x N x H x W x C and kernel kh x kw x 1 x C, got {x.shape} and '
                     f'{kernel.shape}')
  strides = (strides, strides) if isinstance(strides, int) else tuple(int(s) for s in strides)
  if len(strides) != 2 or min(strides) < 1:
    raise ValueError(f'expected 2 positive strides, got {strides}')
  pads = _resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  if min(p for pair in pads for p in pair) < 0:
    raise ValueError(f'expected padding of at least 0, got {pads}')
  if not fast:
    return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=DN,
                                    feature_group_count=x.shape[3])
  return _depthwise(x, kernel, strides, pads)


class DepthwiseConv(nn.Module):
  """nn.Conv(C, (kh, kw), feature_group_count=C) for NHWC inputs, through `depthwise_conv2d`.

  Attributes:
    kernel_size: (kh, kw) (or one int).
    strides: s or (sh, sw).
    padding: 'SAME', 'VALID', p or ((top, bottom), (left, right)).
    use_bias: add a learned (C,) bias.
    fast: True (default) for the sum of views; False for the plain grouped convolution
      (``PlainDepthwiseConv``). The parameters are the same.
  """
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] = 1
  padding: str | int | Sequence[Any] = 'SAME'
  use_bias: bool = True
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  fast: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f'expected x N x H x W x C, got shape {x.shape}')
    ks = self.kernel_size
    ks = (ks, ks) if isinstance(ks, int) else tuple(ks)
    c = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (*ks, 1, c))
    y = depthwise_conv2d(x, kernel, self.strides, self.padding, fast=self.fast)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (c,))
    return y


# The plain reference of ``DepthwiseConv``: same parameters and call, XLA's grouped
# convolution and its gradient. A module-level constant, so modules built with it hash equal.
PlainDepthwiseConv = functools.partial(DepthwiseConv, fast=False)
