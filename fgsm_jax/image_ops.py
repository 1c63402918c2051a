"""Differentiable image operations, each beside the reference it equals.

The protection attack steps through what an observer may do to a photo and scores what a
person sees; both must be differentiable in JAX. Each function here names its reference
(PIL, NumPy or `fgsm_jax.quality`), and tests/test_image_ops.py checks it against that:

  window_ssim_sum, ssim_sum_grad   `quality.ssim_map` summed; the gradient by hand
  resize_half_back                 PIL's bilinear shrink to half and back (exact, 8-bit)
  chroma_420                       libjpeg's 4:2:0 chroma subsampling and fancy upsampling
  degrade('jpeg75')                PIL's JPEG 75: chroma_420, then the differentiable JPEG
                                   of `fgsm_jax.attacks.transforms` (an approximation)
  blur                             a Gaussian blur with edges repeated

Inputs are H x W x 3 (or K x S x S x 3) float arrays; units are given per function.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import quality
from fgsm_jax.attacks import transforms as tlib

# What `degrade` can do to a window ('none' leaves it).
DEGRADATIONS = ('none', 'jpeg75', 'resize_half')


def blur(crops: jax.Array, sigma: float = 1.5) -> jax.Array:
  """Gaussian blur of K x S x S x 3 crops (sd ``sigma`` px, edges repeated)."""
  r = int(np.ceil(3 * sigma))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k = jnp.asarray(k / k.sum(), jnp.float32)
  x = jnp.pad(crops, ((0, 0), (r, r), (r, r), (0, 0)), mode='edge')
  n = crops.shape[1]
  x = sum(k[i] * x[:, i:i + n] for i in range(2 * r + 1))
  return sum(k[i] * x[:, :, i:i + n] for i in range(2 * r + 1))


def _banded(rows: int, cols: int, taps: np.ndarray) -> np.ndarray:
  """rows x cols matrix whose row i holds ``taps`` from column i."""
  out = np.zeros((rows, cols), np.float32)
  for i in range(rows):
    out[i, i:i + len(taps)] = taps
  return out


_TILE = 64  # output rows per tile of the banded product


def _correlate_rows(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """'valid' correlation of ``x`` with ``taps`` along its first axis: the axis cut into
  tiles of _TILE outputs (with their len(taps) - 1 rows of overlap), each a product with one
  small banded matrix (on XLA:CPU ~3x faster, gradient included, than one product with the
  whole axis's banded matrix, and far faster than convolutions or sums of shifted slices)."""
  n, k = x.shape[0], len(taps)
  m = n - k + 1
  tiles = -(-m // _TILE)
  x = jnp.pad(x, ((0, tiles * _TILE + k - 1 - n),) + ((0, 0),) * (x.ndim - 1))
  stacked = jnp.stack([x[i * _TILE:i * _TILE + _TILE + k - 1] for i in range(tiles)])
  out = jnp.einsum('ij,tj...->ti...', jnp.asarray(_banded(_TILE, _TILE + k - 1, taps)), stacked)
  return out.reshape((tiles * _TILE,) + x.shape[1:])[:m]


def _gaussian_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """Separable 'valid' correlation of H x W x C with the 1-D window ``taps`` on both axes."""
  return jnp.swapaxes(_correlate_rows(jnp.swapaxes(_correlate_rows(x, taps), 0, 1), taps), 0, 1)


def ssim_clean_stats(x0: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The clean window's part of SSIM: (x0, its local means, its local variances)."""
  mu, sq = jnp.split(_gaussian_valid(jnp.concatenate([x0, x0 * x0], axis=-1),
                                     quality.gaussian_window()), 2, -1)
  return x0, mu, sq - mu ** 2


def _ssim_parts(x: jax.Array, clean: tuple[jax.Array, jax.Array, jax.Array]) -> tuple:
  """The local SSIM map's factors for ``x``: (mu_b, A1, A2, B1, B2), the map being
  A1 A2 / (B1 B2) (data range 1)."""
  x0, mu_a, var_a = clean
  c1, c2 = quality.SSIM_K1 ** 2, quality.SSIM_K2 ** 2
  mu_b, bb, ab = jnp.split(_gaussian_valid(jnp.concatenate([x, x * x, x0 * x], axis=-1),
                                           quality.gaussian_window()), 3, -1)
  var_b, cov = bb - mu_b ** 2, ab - mu_a * mu_b
  return (mu_b, 2 * mu_a * mu_b + c1, 2 * cov + c2, mu_a ** 2 + mu_b ** 2 + c1,
          var_a + var_b + c2)


def ssim_sum(x: jax.Array, clean: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
  _, a1, a2, b1, b2 = _ssim_parts(x, clean)
  return jnp.sum(a1 * a2 / (b1 * b2))


def ssim_sum_grad(x: jax.Array, clean: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
  """d `ssim_sum` / dx, by hand: the local map s = A1 A2 / (B1 B2) depends on x only
  through the local means mu_b = G x, S_bb = G x^2 and S_ab = G (x0 x), so the gradient is
  G^T of the three partials (one more filter pass, on the zero-padded partials). It runs
  every step: on a 384 x 384 window XLA:CPU took 5.3 ms for it, 19 ms for jax.grad of
  `ssim_sum` (and as long with jax.linear_transpose of the filter)."""
  x0, mu_a, _ = clean
  mu_b, a1, a2, b1, b2 = _ssim_parts(x, clean)
  s = a1 * a2 / (b1 * b2)
  d_ab = 2 * s / a2
  d_bb = -s / b2
  d_mu = s * (2 * mu_a / a1 - 2 * mu_b / b1) - mu_a * d_ab - 2 * mu_b * d_bb
  # G^T of a 'valid' correlation with symmetric taps: the same correlation of the input
  # padded with len(taps) - 1 zeros a side ('full').
  taps = quality.gaussian_window()
  r = len(taps) - 1
  spread = _gaussian_valid(jnp.pad(jnp.concatenate([d_mu, d_bb, d_ab], axis=-1),
                                   ((r, r), (r, r), (0, 0))), taps)
  g_mu, g_bb, g_ab = jnp.split(spread, 3, -1)
  return g_mu + 2 * x * g_bb + x0 * g_ab


def window_ssim_sum(x: jax.Array, x0: jax.Array) -> jax.Array:
  """Sum of the local SSIM map of ``x`` against ``x0`` (H x W x 3 in [0, 1]) over every
  valid 11 x 11 position and channel: `fgsm_jax.quality.ssim_map`'s formula (Wang et al.
  2004, Gaussian sigma 1.5), differentiable. Equal windows give (H - 10)(W - 10) 3; a change
  lowers it by about its local energy over (2 var + C2) of the clean window."""
  return ssim_sum(x, ssim_clean_stats(x0))


def round_half_up(v: jax.Array) -> jax.Array:
  """floor(v + 0.5) forward (PIL's rounding; jnp.round rounds to even), identity gradient."""
  return v + jax.lax.stop_gradient(jnp.floor(v + 0.5) - v)


def _pad1(v: jax.Array, axis: int) -> jax.Array:
  return jnp.pad(v, [(1, 1) if a == axis else (0, 0) for a in range(v.ndim)], mode='edge')


def _down2(v: jax.Array, axis: int) -> jax.Array:
  """Halves ``axis`` (even length) with taps 1 3 3 1 / 8 (PIL's antialiased bilinear)."""
  p, n = _pad1(v, axis), v.shape[axis]
  take = lambda s: jax.lax.slice_in_dim(p, s, s + n - 1, 2, axis)
  return (take(0) + 3 * take(1) + 3 * take(2) + take(3)) / 8.0


def _up2(v: jax.Array, axis: int) -> jax.Array:
  """Doubles ``axis``, bilinear with half-pixel centres (taps 1/4, 3/4; edges repeated)."""
  p, n = _pad1(v, axis), v.shape[axis]
  prev = jax.lax.slice_in_dim(p, 0, n, 1, axis)
  cur = jax.lax.slice_in_dim(p, 1, n + 1, 1, axis)
  nxt = jax.lax.slice_in_dim(p, 2, n + 2, 1, axis)
  out = jnp.stack([0.25 * prev + 0.75 * cur, 0.75 * cur + 0.25 * nxt], axis=axis + 1)
  shape = list(v.shape)
  shape[axis] *= 2
  return out.reshape(shape)


def resize_half_back(x: jax.Array) -> jax.Array:
  """PIL's bilinear shrink to half and enlarge back, H x W x C (H, W even), 0-255 units.

  Shrinking by 2 is PIL's antialiased bilinear (taps 1 3 3 1 / 8), enlarging is bilinear
  with pixel centres at half-pixels (taps 1/4, 3/4); each of its four 1-D passes
  (horizontal first) rounds half up to 8 bits (straight-through gradient). Borders clamp
  (edge pixels repeated); PIL renormalises its kernel there instead, so the outermost
  pixel rows may differ.
  """
  half = round_half_up(_down2(round_half_up(_down2(x, 1)), 0))
  return round_half_up(_up2(round_half_up(_up2(half, 1)), 0))


def chroma_420(x: jax.Array) -> jax.Array:
  """JPEG's 4:2:0 chroma subsampling and libjpeg's 'fancy' upsampling, H x W x 3 in 0-255.

  Cb and Cr (JFIF) are averaged over 2 x 2 blocks and brought back with the triangle
  filter; luma is kept. (PIL saves JPEG at quality 75 with 4:2:0 by default; the
  differentiable JPEG of fgsm_jax.attacks.transforms models 4:4:4 only.) Odd sizes are
  returned unchanged.
  """
  h, w = x.shape[0], x.shape[1]
  if h % 2 or w % 2:
    return x
  ycc = x @ jnp.asarray(tlib.RGB_TO_YCC).T  # JFIF, as the differentiable JPEG
  c = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
  c = _up2(_up2(c, 1), 0)
  ycc = jnp.concatenate([ycc[..., :1], c], axis=-1)
  return ycc @ jnp.asarray(np.linalg.inv(tlib.RGB_TO_YCC).astype(np.float32)).T


def degrade(window: jax.Array, kind: str) -> jax.Array:
  """One degradation of an H x W x 3 window in [0, 1] (8-bit values)."""
  if kind == 'none':
    return window
  if kind == 'jpeg75':
    sub = chroma_420(window * 255.0) / 255.0
    return tlib.round_ste(tlib.jpeg_approx(jnp.clip(sub, 0.0, 1.0), 75.0) * 255.0) / 255.0
  if kind == 'resize_half':
    return resize_half_back(window * 255.0) / 255.0
  raise ValueError(kind)
