"""Layout helpers shared by the fast forms: dimension numbers, space-to-depth, kernel flips,
and the first maximum of a pooling window."""
from __future__ import annotations

import jax
import jax.numpy as jnp

# Images NHWC, kernels HWIO (kh x kw x in x out), as nn.Conv.
DN = ('NHWC', 'HWIO', 'NHWC')


def space_to_depth(x: jax.Array) -> jax.Array:
  """N x 2h x 2w x C -> N x h x w x 4C, channels ordered (row in block, col in block, c)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      n, h // 2, w // 2, 4 * c)


def depth_to_space(x: jax.Array, c: int) -> jax.Array:
  """The inverse of ``space_to_depth``: N x h x w x 4C -> N x 2h x 2w x C."""
  n, h, w, _ = x.shape
  return x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)


def flip_io(kernel: jax.Array) -> jax.Array:
  """The kernel of a convolution's input gradient: spatially flipped, in/out swapped."""
  return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


def window_slices(x: jax.Array, size: int, stride: int) -> list[jax.Array]:
  """The size*size strided views x[:, di::stride, dj::stride] of a VALID pooling, row-major."""
  ho = (x.shape[1] - size) // stride + 1
  wo = (x.shape[2] - size) // stride + 1
  return [x[:, di:di + stride * (ho - 1) + 1:stride, dj:dj + stride * (wo - 1) + 1:stride]
          for di in range(size) for dj in range(size)]


def first_argmax(parts: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
  """Elementwise max of equally shaped arrays and the index (int8) of the first maximum.

  As PyTorch's ``max_pool2d_with_indices`` and TensorFlow's MaxPoolGrad, a window's gradient
  goes to its first maximum (row-major). A pairwise tree of compare/selects: one elementwise
  loop for XLA (pooling windows lie along two strided axes; a reduction would need them
  transposed into one axis first, and measured no faster).
  """
  if not parts or len(parts) > 127:
    raise ValueError(f'expected 1 to 127 window positions, got {len(parts)}')
  items = [(p, jnp.full(p.shape, i, jnp.int8)) for i, p in enumerate(parts)]
  while len(items) > 1:
    merged = []
    for a in range(0, len(items) - 1, 2):
      (m0, i0), (m1, i1) = items[a], items[a + 1]
      later = m1 > m0   # strict: on a tie the earlier index wins
      merged.append((jnp.where(later, m1, m0), jnp.where(later, i1, i0)))
    if len(items) % 2:
      merged.append(items[-1])
    items = merged
  return items[0]
