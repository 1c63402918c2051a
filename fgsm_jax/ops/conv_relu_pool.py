"""conv -> bias -> ReLU -> max-pool as one differentiable op, fast on XLA:CPU.

``reference`` is the plain form (the original CNN's ``nn.Conv -> relu -> max_pool``);
``conv_relu_maxpool`` / ``FusedConvReluPool`` the fused one.

The original CNN is three such blocks. Written plainly (``lax.conv_general_dilated`` +
``nn.max_pool``), XLA:CPU spends most of an FGSM step outside the convolutions: the
gradient of ``reduce_window`` max is a ``select_and_scatter`` that XLA:CPU runs slowly, the
gradient of a 3-in-channel convolution (the first layer's input gradient, 160 x 160 x 8 ->
160 x 160 x 3) falls to a slow generic kernel, and every full-resolution activation is
written and re-read several times. ``conv_relu_maxpool`` replaces that with:

* pooling windows as strided slices, with the argmax as an int8 index (as PyTorch's
  ``max_pool2d_with_indices`` and TensorFlow's MaxPoolGrad route the gradient: to the first
  maximum of each window); the backward pass selects the gradient's position with it;
* for the 2 x 2 pool after a 3 x 3 convolution (the first layer), a space-to-depth form: the
  convolution becomes a 2 x 2 convolution of the 2 x 2-blocked image (12 in, 4 x 8 out
  channels, one output channel group per pooling-window position), so pooling is a max over
  four channel groups, the forward convolution has channel counts XLA:CPU's convolution
  library handles well, and the input gradient is a matmul (32 -> 48) and a col2im sum;
* a hand-written VJP (``jax.custom_vjp``): dx is one convolution with the flipped kernel
  (for the space-to-depth layer a matmul and a sum of shifted slices), and the kernel and
  bias gradients (training) are computed only when asked for: an attack needs only dx, and
  XLA drops the rest;
* convolutions shaped for XLA:CPU's fast path (YNNPACK), which it takes only for symmetric
  padding and > 16 channels on one side: narrow ones get a zero output channel padded in
  (``_conv_wide``; ``widen=False`` turns it off), and the pooled layers' gradient is built
  over whole windows and sliced rather than zero-padded (a pad would be folded into
  asymmetric convolution padding).

Two of these choices are XLA:CPU's alone, and the GPU keeps the forms it was measured with
(``_fused(..., for_cpu)``, picked per platform): there the first layer's input gradient is
one transposed 2 x 2 convolution, and narrow convolutions are widened to 32 channels.

Semantics equal the plain formulation (``reference``): outputs to float rounding (the
space-to-depth convolution sums in another order, ~1e-6), gradients identical except where a
pooling window holds tied maxima (the first one gets the gradient, as in TF and PyTorch;
``reduce_window``'s gradient in XLA picks one too). ReLU'(0) = 0.

``impl='auto'`` (the default) picks the fused form when the computation is lowered for CPU or
an NVIDIA GPU and the plain one elsewhere (TPU, ROCm: not measured), via
``jax.lax.platform_dependent``: the choice follows the device the computation runs on, not
the default backend at trace time. The fused form was written for XLA:CPU, but it pays more
on a GPU: FGSM on the original CNN at batch 4096 on an H200 ran at 204k images/s fused
against 84k plain in float32 (238k / 93k in bfloat16; BENCHMARKS.md, throughput) -- the plain
form's full-resolution passes and select_and_scatter pooling gradient dominate there too.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fgsm_jax.ops.layout import DN, depth_to_space, first_argmax, flip_io, space_to_depth
from fgsm_jax.ops.pool import max_pool_reference

IMPLS = ('auto', 'fused', 'reference')


def conv_relu_maxpool(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray, pool: int, *,
                      impl: str = 'auto', widen: bool = True) -> jnp.ndarray:
  """relu(maxpool_k(conv_same(x, kernel) + bias)): Keras' Conv2D(same, relu) + MaxPooling2D(k).

  Args:
    x: N x H x W x C.
    kernel: kh x kw x C x O (HWIO), odd kh and kw; SAME padding, stride 1.
    bias: (O,).
    pool: k, the pooling window and stride (VALID: the last H % k rows and W % k columns
      are dropped, as Keras does).
    impl: 'auto' (fused on CPU and CUDA GPUs, reference elsewhere), 'fused' or 'reference'.
    widen: pad narrow convolutions' output channels (to 17 on CPU, 32 on GPU) so XLA takes
      its fast convolution path (default True; False for comparing).

  Returns:
    N x H // k x W // k x O, in x's dtype.
  """
  if impl not in IMPLS:
    raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
    raise ValueError(f'expected x N x H x W x C and kernel kh x kw x C x O, got {x.shape} and '
                     f'{kernel.shape}')
  if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
    raise ValueError(f'expected an odd kernel size, got {kernel.shape[:2]}')
  if bias.shape != kernel.shape[3:]:
    raise ValueError(f'expected bias ({kernel.shape[3]},), got {bias.shape}')
  if not 1 <= pool <= min(x.shape[1], x.shape[2]) or pool * pool > 127:
    raise ValueError(f'pool must be in [1, min(H, W)] and pool**2 <= 127, got {pool} for '
                     f'{x.shape}')
  if impl == 'reference':
    return reference(x, kernel, bias, pool)
  for_cpu = lambda *a: _fused(*a, pool, True, widen)
  for_gpu = lambda *a: _fused(*a, pool, False, widen)
  if impl == 'fused':
    return lax.platform_dependent(x, kernel, bias, cpu=for_cpu, default=for_gpu)
  return lax.platform_dependent(x, kernel, bias, cpu=for_cpu, cuda=for_gpu,
                                default=lambda *a: reference(*a, pool))


def reference(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray, pool: int) -> jnp.ndarray:
  """The plain formulation: XLA convolution, bias, ReLU, ``nn.max_pool`` (reduce_window)."""
  return max_pool_reference(jax.nn.relu(_conv_same(x, kernel) + bias), pool, pool)


# --- the fused op ----------------------------------------------------------------------------

def _conv(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=DN)


def _conv_same(x, kernel):
  ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
  return _conv(x, kernel, ((ph, ph), (pw, pw)))


# XLA:CPU sends a convolution to YNNPACK only when one side has more than 16 channels (and
# the output is no larger than the input), and its fallback (Eigen) is slow for narrow ones.
# One zero output channel is enough: the second layer's 8 -> 16 forward and 16 -> 8 input
# gradient widened to 17 output channels take 0.92 and 1.6 ms per 8-image chunk on one core,
# against 1.04 and 2.0 ms widened to 32 and 1.6 and 2.3 ms in Eigen. (Widening the input
# side instead, 16 -> 8 as 17 -> 8, runs 2.7 ms: YNNPACK is slow with few output channels.)
# On a GPU the form measured there is kept: widened to 32, and the first layer's input
# gradient as one transposed convolution -- FGSM at batch 4096 on an H200 ran at 204k
# images/s in float32 with it, 162k with the CPU choices (17 channels, matmul + col2im).
_WIDE_CHANNELS = {True: 17, False: 32}   # for_cpu -> output channels


def _conv_wide(x, kernel, padding, for_cpu, widen):
  """``_conv`` with the output channels zero-padded (to 17 on CPU, 32 on GPU) for narrow
  convolutions, when ``widen``."""
  o, wide = kernel.shape[3], _WIDE_CHANNELS[for_cpu]
  if not widen or max(kernel.shape[2], o) >= wide:
    return _conv(x, kernel, padding)
  kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, wide - o)))
  return _conv(x, kernel, padding)[..., :o]


def _usespace_to_depth(x, kernel, pool):
  return (pool == 2 and kernel.shape[:2] == (3, 3) and x.shape[1] % 2 == 0
          and x.shape[2] % 2 == 0)


def _s2d_kernel(kernel):
  """3 x 3 x C x O -> 2 x 2 x 4C x 4O acting on the 2 x 2 blocks of the padded image.

  Output channel group (a, b) is the 3 x 3 convolution's output at position (a, b) of each
  2 x 2 pooling window; it reads padded-image rows a..a+2 and columns b..b+2 of the 4 x 4
  neighbourhood that 2 x 2 blocks of the padded image cover.
  """
  c, o = kernel.shape[2], kernel.shape[3]
  big = jnp.zeros((4, 4, c, 2, 2, o), kernel.dtype)
  for a in range(2):
    for b in range(2):
      big = big.at[a:a + 3, b:b + 3, :, a, b, :].set(kernel)
  # padded row r = 2 R + dr -> (R, S, dr, ds, c, a, b, o)
  big = big.reshape(2, 2, 2, 2, c, 2, 2, o).transpose(0, 2, 1, 3, 4, 5, 6, 7)
  return big.reshape(2, 2, 4 * c, 4 * o)


def _s2d_preact(x, kernel):
  """The 3 x 3 SAME convolution of x, as N x H/2 x W/2 x (4 window positions x O)."""
  blocks = space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
  return _conv(blocks, _s2d_kernel(kernel), 'VALID')


def _forward(x, kernel, bias, pool, for_cpu, widen):
  """(y, argmax index per pooled value)."""
  o = kernel.shape[3]
  if _usespace_to_depth(x, kernel, pool):
    z = _s2d_preact(x, kernel)
    n, h, w, _ = z.shape
    groups = z.reshape(n, h, w, 4, o)
    # Reductions (first maximum on ties, as jnp.argmax): XLA materialises a reduction's
    # result, so the backward pass reads this 1-byte index instead of recomputing it from
    # the 4x larger pre-activation (an elementwise form gets fused into the backward pass and
    # redone there; ~10% of the whole FGSM step on CPU).
    m, idx = jnp.max(groups, axis=3), jnp.argmax(groups, axis=3).astype(jnp.int8)
  else:
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    z = _conv_wide(x, kernel, ((ph, ph), (pw, pw)), for_cpu, widen)
    n, h, w, _ = z.shape
    h2, w2 = h // pool, w // pool
    windows = z[:, :h2 * pool, :w2 * pool].reshape(n, h2, pool, w2, pool, o)
    m, idx = first_argmax([windows[:, :, i, :, j, :]
                            for i in range(pool) for j in range(pool)])
  # max(z) + b then ReLU equals pooling relu(z + b): both are monotone.
  return jax.nn.relu(m + bias), idx


def _s2d_input_grad(g_pre, kernel):
  """The gradient of ``_s2d_preact(x, kernel)`` with respect to x, from its N x h x w x 4O
  cotangent ``g_pre``: N x 2h x 2w x C.

  The transposed 2 x 2 convolution as a matmul and a sum of shifted slices (col2im): each
  pooled position's 4O gradients give the 2 x 2 blocks x 4C values it touches. As one
  convolution (h x w -> h + 1 x w + 1 blocks) XLA:CPU keeps it off YNNPACK (whose
  convolutions must not grow the image; with the input padded to allow it, its 12-channel
  output runs 2x slower still): 2.2 ms against 0.85 ms matmul + 1.3 ms col2im and the
  attack's sign/clip, per 8-image chunk on one core.
  """
  c = kernel.shape[2]
  k = _s2d_kernel(kernel)                                   # 2 x 2 x 4C x 4O
  n, h, w, _ = g_pre.shape
  p = jnp.einsum('nhwo,oc->nhwc', g_pre,
                 jnp.transpose(k, (3, 0, 1, 2)).reshape(k.shape[3], 4 * k.shape[2]))
  p = jnp.pad(p.reshape(n, h, w, 2, 2, 4 * c), ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
  # Block (R, S) of the padded image gets p[R - dr, S - ds, dr, ds].
  blocks = (p[:, 1:, 1:, 0, 0] + p[:, 1:, :-1, 0, 1] + p[:, :-1, 1:, 1, 0]
            + p[:, :-1, :-1, 1, 1])                          # N x h+1 x w+1 x 4C
  return depth_to_space(blocks, c)[:, 1:-1, 1:-1]


def _scatter_to_groups(g, idx):
  """N x h x w x O gradients -> N x h x w x 4O, each in the channel group its argmax names."""
  # Four selects concatenated: ~6% faster on XLA:CPU than one broadcast compare over an
  # N x h x w x 4 x O view.
  zero = jnp.zeros((), g.dtype)
  return jnp.concatenate([jnp.where(idx == i, g, zero) for i in range(4)], axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _fused(x, kernel, bias, pool, for_cpu, widen=True):
  """The fused block; ``for_cpu`` picks the forms measured fastest on XLA:CPU, else on a GPU."""
  return _forward(x, kernel, bias, pool, for_cpu, widen)[0]


def _fused_fwd(x, kernel, bias, pool, for_cpu, widen):
  y, idx = _forward(x, kernel, bias, pool, for_cpu, widen)
  return y, (x, kernel, y, idx)


def _fused_bwd(pool, for_cpu, widen, residuals, g):
  x, kernel, y, idx = residuals
  n, h2, w2, o = y.shape
  g_active = jnp.where(y > 0, g, jnp.zeros_like(g))           # ReLU'(0) = 0
  if _usespace_to_depth(x, kernel, pool):
    g_pre = _scatter_to_groups(g_active, idx)
    if for_cpu:
      dx = _s2d_input_grad(g_pre, kernel)
    else:   # one transposed 2 x 2 convolution of the blocks
      blocks = _conv(g_pre, flip_io(_s2d_kernel(kernel)), ((1, 1), (1, 1)))
      dx = depth_to_space(blocks, x.shape[3])[:, 1:-1, 1:-1]
    preact = lambda k: _s2d_preact(x, k)
  else:
    # Rows/columns past the last whole window get no gradient. They are covered by one more
    # window row/column whose index (-1) matches no position, and the result is sliced to
    # H x W: a zero jnp.pad instead would be folded into the convolution's padding, and an
    # asymmetric padding keeps XLA:CPU off its YNNPACK path.
    hp, wp = -(-x.shape[1] // pool), -(-x.shape[2] // pool)
    idx = jnp.pad(idx, ((0, 0), (0, hp - h2), (0, wp - w2), (0, 0)), constant_values=-1)
    g_active = jnp.pad(g_active, ((0, 0), (0, hp - h2), (0, wp - w2), (0, 0)))
    positions = jnp.arange(pool * pool, dtype=jnp.int8).reshape(1, 1, pool, 1, pool, 1)
    g_windows = jnp.where(idx[:, :, None, :, None, :] == positions,
                          g_active[:, :, None, :, None, :], jnp.zeros((), g.dtype))
    g_pre = g_windows.reshape(n, hp * pool, wp * pool, o)[:, :x.shape[1], :x.shape[2]]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    dx = _conv_wide(g_pre, flip_io(kernel), ((ph, ph), (pw, pw)), for_cpu, widen)
    preact = lambda k: _conv_same(x, k)
  # Kernel and bias gradients, for training; XLA removes them when only dx is used.
  dkernel = jax.vjp(preact, kernel)[1](g_pre)[0]
  dbias = jnp.sum(g_active, axis=(0, 1, 2))
  return dx, dkernel, dbias


_fused.defvjp(_fused_fwd, _fused_bwd)


class FusedConvReluPool(nn.Conv):
  """``nn.Conv(features, kernel_size, padding='SAME') -> relu -> max_pool(pool)`` as one fused
  op (``conv_relu_maxpool``): the fast block of the original CNN.

  A subclass of nn.Conv with the same fields and parameters (``kernel``, ``bias``; names,
  shapes and initialisers), so a network built with it has the same parameter tree as one
  built with the plain block (``fgsm_jax.models.cnn.ConvReluPool``). Supports what the
  original CNN uses: odd square kernels, stride 1, SAME padding, a bias. ``impl`` and
  ``widen``: as ``conv_relu_maxpool``.
  """
  pool: int = 1
  impl: str = 'auto'
  widen: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    if (self.strides not in (1, (1, 1), None) or self.padding != 'SAME' or not self.use_bias
        or self.feature_group_count != 1):
      raise ValueError("FusedConvReluPool supports stride 1, padding='SAME', use_bias=True "
                       f'and one feature group, got {self}')
    kernel = self.param('kernel', self.kernel_init, (*ks, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv_relu_maxpool(x, kernel, bias, self.pool, impl=self.impl, widen=self.widen)
