"""A 2-D convolution whose input gradient is one explicit convolution, fast inside lax loops.

``conv2d(..., fast=False)`` / ``PlainConv`` are the plain reference (``lax.conv_general_dilated``
of ``kernel * scale``); ``conv2d`` / ``Conv`` the fast forms below.

JAX differentiates ``lax.conv_general_dilated`` w.r.t. its input as a convolution of the
output gradient with the kernel's in/out axes swapped (via dimension numbers). Outside a
loop XLA:CPU re-lays that kernel out and runs its fast convolution library; inside a
``lax.fori_loop`` / ``while_loop`` body (``fgsm_jax.attacks.iterative``) it keeps the swapped
layout and every backward convolution falls to a slow generic kernel. Measured on dlib's
ResNet (30 convolutions), batch 8, 2 CPU cores: 385-391 ms per gradient step inside
``fori_loop`` against 85-93 ms as separate jitted calls (forward alone ~34 ms either way).

``conv2d`` has a hand-written VJP (``jax.custom_vjp``, as ``ops.conv_relu_pool``): the
input gradient is ``conv(dilate(g, stride), flip(kernel) with in/out swapped)``, the kernel
materialised in HWIO. With it the same step takes ~84 ms inside the loop, results equal.
The kernel gradient (training) is JAX's own, through ``jax.vjp`` of the plain forward in
the kernel only; an attack never uses it and XLA drops it.

``Conv`` is a drop-in for this repo's ``nn.Conv(features, (k, k), strides, padding=...)``
uses: same parameter names, shapes, dtypes and initialisers (``kernel`` kh x kw x C x O
lecun_normal, ``bias`` (O,) zeros), so existing params and checkpoints load unchanged.
``Conv(...)(x, scale, shift)`` also applies a following per-channel affine layer (frozen
batch norm) with the scale folded into the kernel; besides saving a pass, that puts an
arithmetic op after the input-gradient kernel's flip/transpose, which lets XLA hoist the
chain out of an attack's loop (see ``_conv_bwd``).

Limits: no forward-mode differentiation (``jax.jvp`` / ``jacfwd`` raise on a custom_vjp
function); no kernel dilation or feature groups.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fgsm_jax.ops.layout import DN, flip_io, space_to_depth

Pads = tuple[tuple[int, int], tuple[int, int]]


def _plain(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: Pads) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=DN)


def _input_grad_pads(in_hw: Sequence[int], out_hw: Sequence[int], kernel_hw: Sequence[int],
                     strides: Sequence[int], padding: Pads) -> Pads:
  """Padding of the input-gradient convolution over the stride-dilated output gradient.

  Forward row i of the padded input meets output row o through tap i - o * s; transposed,
  the flipped kernel slides over the dilated g ((Ho - 1) s + 1 rows) padded K - 1 - lo
  before, and after by whatever makes the result H rows (negative: rows to drop).
  """
  pads = []
  for h, ho, k, s, (lo, _) in zip(in_hw, out_hw, kernel_hw, strides, padding):
    before = k - 1 - lo
    pads.append((before, h + k - 1 - ((ho - 1) * s + 1) - before))
  return tuple(pads)  # type: ignore[return-value]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv(x, kernel, scale, strides, padding):
  """conv(x, kernel * scale), scale (O,) per output channel."""
  return _plain(x, kernel * scale, strides, padding)


def _conv_fwd(x, kernel, scale, strides, padding):
  return _plain(x, kernel * scale, strides, padding), (x, kernel, scale)


def _conv_bwd(strides, padding, residuals, g):
  x, kernel, scale = residuals
  # The scale multiplies last: XLA's loop-invariant code motion hoists a flip/transpose out
  # of a while loop (an attack's steps) only when an arithmetic op consumes it; alone it is
  # recomputed every step (~5 ms per PGD step at batch 8 for dlib's 256-channel kernels).
  flipped = flip_io(kernel)  # kh x kw x O x C
  flipped = flipped * (scale[:, None] if scale.ndim else scale)
  pads = _input_grad_pads(x.shape[1:3], g.shape[1:3], kernel.shape[:2], strides, padding)
  dx = lax.conv_general_dilated(g, flipped, (1, 1), pads, lhs_dilation=strides,
                                dimension_numbers=DN)
  # Training only; XLA removes them when the caller uses dx alone.
  _, vjp = jax.vjp(lambda k, s: _plain(x, k * s, strides, padding), kernel, scale)
  dkernel, dscale = vjp(g)
  return dx.astype(x.dtype), dkernel, dscale


_conv.defvjp(_conv_fwd, _conv_bwd)


# --- stride-2 convolutions of narrow inputs (RGB stems) ----------------------------------
#
# XLA:CPU runs a 3-in-channel convolution (dlib's 7 x 7 / 2 stem, 150 x 150 x 3 -> 72 x 72 x
# 32) through a slow generic kernel: 18-21 ms forward and 14 ms input gradient at batch 8,
# ~40% of a whole PGD step. As a stride-1 convolution of the 2 x 2 space-to-depth image
# (4C channels, kernel ceil(k/2), zero taps added for odd k) it takes 6 ms forward and 3 ms
# for the input gradient (32 in, 4C out). (im2col then a matmul measured 2.5 + 1.4 ms as
# separate programs, but XLA:CPU fuses the patch gather into the dot, barrier or not: 22 ms.)

_NARROW_CHANNELS = 4


def _s2d_kernel(kernel):
  """kh x kw x C x O (even kh, kw) -> kh/2 x kw/2 x 4C x O, matching ``space_to_depth``."""
  kh, kw, c, o = kernel.shape
  return kernel.reshape(kh // 2, 2, kw // 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(
      kh // 2, kw // 2, 4 * c, o)


def _conv_stride2_narrow(x, kernel, padding):
  """Stride-2 convolution through the space-to-depth image; equal up to float rounding."""
  (top, bottom), (left, right) = padding
  kh, kw = kernel.shape[:2]
  kh2, kw2 = -(-kh // 2), -(-kw // 2)
  ho = (x.shape[1] + top + bottom - kh) // 2 + 1
  wo = (x.shape[2] + left + right - kw) // 2 + 1
  # The padded image exactly as the even kernel reads it (a negative pad crops unread rows).
  hp, wp = 2 * (ho - 1 + kh2), 2 * (wo - 1 + kw2)
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, hp - x.shape[1] - top, 0),
                                          (left, wp - x.shape[2] - left, 0), (0, 0, 0)))
  kernel = jnp.pad(kernel, ((0, 2 * kh2 - kh), (0, 2 * kw2 - kw), (0, 0), (0, 0)))
  return _conv(space_to_depth(x), _s2d_kernel(kernel), jnp.ones((), kernel.dtype), (1, 1),
               ((0, 0), (0, 0)))


# --- convolutions with a 1 x 1 output (dlib's last unit, 4 x 4 -> 1 x 1 -> 1 x 1) -------
#
# One output position makes the convolution a matrix product over the taps that meet real
# input. XLA:CPU turns the input gradient of the 4 x 4 -> 1 x 1 stride-2 convolution into a
# kernel-gradient-shaped convolution taking ~5 ms at batch 8 (profiled), and the 3 x 3 pad-1
# convolution of a 1 x 1 input another ~3 ms; as dots (whose transposes are dots) both are
# negligible.


def _conv_one_position(x, kernel, padding):
  """The convolution whose output is N x 1 x 1 x O, as one dot over the live taps."""
  taps = []
  for size, k, (lo, _) in zip(x.shape[1:3], kernel.shape[:2], padding):
    first = max(0, lo)  # Taps t in [first, last) read input row t - lo.
    last = max(first, min(k, lo + size))
    taps.append((first, last, first - lo))
  (t0, t1, r0), (u0, u1, c0) = taps
  window = x[:, r0:r0 + t1 - t0, c0:c0 + u1 - u0]
  live = kernel[t0:t1, u0:u1]
  y = jnp.einsum('nhwc,hwco->no', window, live)
  return y[:, None, None, :]


def _resolve_padding(padding: str | int | Sequence[Any], in_hw: Sequence[int],
                     kernel_hw: Sequence[int], strides: Sequence[int]) -> Pads:
  """nn.Conv's padding forms ('SAME', 'VALID', int, (lo, hi) pairs) -> explicit pairs."""
  if isinstance(padding, str):
    if padding.upper() not in ('SAME', 'VALID'):
      raise ValueError(f"padding must be 'SAME', 'VALID', an int or (lo, hi) pairs, got "
                       f'{padding!r}')
    return tuple(lax.padtype_to_pads(in_hw, kernel_hw, strides, padding.upper()))  # type: ignore
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple(tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding)
  if len(pads) != 2 or any(len(p) != 2 for p in pads):
    raise ValueError(f'expected padding as 2 (lo, hi) pairs, got {padding!r}')
  return tuple((int(lo), int(hi)) for lo, hi in pads)  # type: ignore[return-value]


def conv2d(x: jax.Array, kernel: jax.Array, strides: int | Sequence[int] = 1,
           padding: str | int | Sequence[Any] = 'SAME',
           scale: jax.Array | None = None, *, fast: bool = True) -> jax.Array:
  """2-D cross-correlation, NHWC x HWIO -> NHWC, as ``lax.conv_general_dilated``.

  Args:
    x: N x H x W x C.
    kernel: kh x kw x C x O.
    strides: s or (sh, sw).
    padding: 'SAME', 'VALID', p (each side) or ((top, bottom), (left, right)), as nn.Conv.
    scale: optional (O,) per-output-channel factor, folded into the kernel: the result is
      ``conv(x, kernel * scale)`` (a following frozen batch norm / affine layer's scale).
    fast: True (default) for the forms above; False for the plain ``lax`` convolution.

  Returns:
    N x Ho x Wo x O; its input gradient is one convolution (see the module docstring).
  """
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
    raise ValueError(f'expected x N x H x W x C and kernel kh x kw x C x O, got {x.shape} and '
                     f'{kernel.shape}')
  strides = (strides, strides) if isinstance(strides, int) else tuple(int(s) for s in strides)
  if len(strides) != 2 or min(strides) < 1:
    raise ValueError(f'expected 2 positive strides, got {strides}')
  pads = _resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  if scale is not None and jnp.shape(scale) != (kernel.shape[3],):
    raise ValueError(f'expected scale of shape ({kernel.shape[3]},), got {jnp.shape(scale)}')
  out_hw = [(size + lo + hi - k) // s + 1
            for size, k, s, (lo, hi) in zip(x.shape[1:3], kernel.shape[:2], strides, pads)]
  if not fast:
    return _plain(x, kernel if scale is None else kernel * scale, strides, pads)
  if out_hw == [1, 1]:
    return _conv_one_position(x, kernel if scale is None else kernel * scale, pads)
  if strides == (2, 2) and x.shape[3] <= _NARROW_CHANNELS:
    return _conv_stride2_narrow(x, kernel if scale is None else kernel * scale, pads)
  return _conv(x, kernel, jnp.ones((), kernel.dtype) if scale is None else scale, strides, pads)


class Conv(nn.Module):
  """nn.Conv for 2-D NHWC inputs, differentiated through ``conv2d``; same params as nn.Conv.

  Attributes:
    features: output channels O.
    kernel_size: (kh, kw) (or one int).
    strides: s or (sh, sw).
    padding: 'SAME', 'VALID', p or ((top, bottom), (left, right)).
    use_bias: add a learned (O,) bias.
    dtype: computation dtype (None: from the inputs and params, as nn.Conv).
    param_dtype: parameter dtype.
    kernel_init, bias_init: as nn.Conv's defaults.
    fast: True (default) differentiates through the fast forms of ``conv2d``; False is the
      plain convolution (``PlainConv``). The parameters are the same.
  """
  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] = 1
  padding: str | int | Sequence[Any] = 'SAME'
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  fast: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, scale: jax.Array | None = None,
               shift: jax.Array | None = None) -> jax.Array:
    """N x H x W x C -> N x Ho x Wo x O; with ``scale`` / ``shift`` ((O,) each), returns
    ``self(x) * scale + shift`` with the scale folded into the kernel (``conv2d``)."""
    if x.ndim != 4:
      raise ValueError(f'expected x N x H x W x C, got shape {x.shape}')
    ks = self.kernel_size
    ks = (ks, ks) if isinstance(ks, int) else tuple(ks)
    kernel = self.param('kernel', self.kernel_init, (*ks, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if scale is not None:
      scale = jnp.asarray(scale, x.dtype)
      bias = bias * scale if bias is not None else None
    y = conv2d(x, kernel, self.strides, self.padding, scale, fast=self.fast)
    if bias is not None:
      y = y + bias
    return y + jnp.asarray(shift, x.dtype) if shift is not None else y


# The plain reference of ``Conv``: same parameters and call (x, scale, shift), XLA's own
# convolution and gradient. A module-level constant, so modules built with it hash equal.
PlainConv = functools.partial(Conv, fast=False)
