"""Random, differentiable image transformations for input diversity (DI) and EOT.

A transformation is a hashable frozen dataclass called on ONE image:
``transform(key, image H x W x C) -> image H x W x C`` (float in [0, 1], same shape, so models
with a fixed input size still accept it). ``apply_batch`` maps it over a batch with one key per
example, so each example's draw depends only on its own key (results do not depend on how
examples are batched). Every random quantity (scales, offsets, sigmas, JPEG qualities) is drawn
from the key inside the compiled function; shapes stay static, so one jit serves all draws.

The Gaussian kernels here are also used by TI-FGSM (``gaussian_smooth``) on gradients.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# transform(key, image H x W x C) -> image H x W x C.
Transform = Callable[[jax.Array, jnp.ndarray], jnp.ndarray]


def apply_batch(transform: Transform, keys: jax.Array, images: jnp.ndarray) -> jnp.ndarray:
  """Applies ``transform`` to each image with its own key. keys (N,), images N x H x W x C."""
  return jax.vmap(transform)(keys, images)


def _maybe(key: jax.Array, prob: float, image: jnp.ndarray, transformed: jnp.ndarray
           ) -> jnp.ndarray:
  """``transformed`` with probability ``prob``, else ``image`` (both are computed)."""
  if prob >= 1.0:
    return transformed
  return jnp.where(jax.random.uniform(key) < prob, transformed, image)


# --- resizing with a traced size (static array shapes) ------------------------------------

def _linear_resize_matrix(out_positions: jnp.ndarray, in_size: int, in_valid: jnp.ndarray,
                          scale: jnp.ndarray) -> jnp.ndarray:
  """Rows of a 1-D linear (triangle-kernel) resize, len(out_positions) x in_size.

  Output pixel k (in the resized frame) has centre k + 0.5, i.e. input coordinate
  (k + 0.5) / scale; only the first ``in_valid`` input pixels count, and the weights are
  renormalised over them (so edges are clamped rather than faded to black). When shrinking
  (scale < 1) the kernel widens to 1 / scale input pixels: antialiased, like
  ``jax.image.resize(..., antialias=True)``.
  """
  centre = (out_positions.astype(jnp.float32) + 0.5) / scale
  pixel = jnp.arange(in_size, dtype=jnp.float32) + 0.5
  radius = jnp.maximum(1.0, 1.0 / scale)
  w = jnp.maximum(0.0, 1.0 - jnp.abs(pixel[None, :] - centre[:, None]) / radius)
  w = w * (jnp.arange(in_size) < in_valid)[None, :]
  return w / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1e-12)


def _apply_separable(image: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray) -> jnp.ndarray:
  """out[i, j, c] = sum_h,w rows[i, h] image[h, w, c] cols[j, w]."""
  return jnp.einsum('ih,hwc,jw->ijc', rows, image, cols)


def _random_side(key: jax.Array, size: int, min_scale: float) -> jnp.ndarray:
  """An integer side length in [ceil(min_scale * size), size], uniformly."""
  low = min(size, max(1, math.ceil(min_scale * size)))
  return jax.random.randint(key, (), low, size + 1)


@dataclasses.dataclass(frozen=True)
class ResizePad:
  """DI-FGSM's input diversity (Xie et al. 2019): random shrink, then random zero padding.

  With probability ``prob`` the image is resized (linear, antialiased) to rnd x rnd' with
  rnd uniform in [ceil(min_scale * H), H] (rnd' = round(rnd * W / H)) and placed at a random
  offset in an H x W zero canvas; otherwise it is returned unchanged. The reference code
  enlarges 299 -> [299, 330) and pads to 330, which needs a model that takes larger inputs;
  ours keep the input size, so the image shrinks instead (as torchattacks does with
  resize_rate = 0.9).
  """
  min_scale: float = 0.9
  prob: float = 0.5

  def __call__(self, key: jax.Array, image: jnp.ndarray) -> jnp.ndarray:
    h, w, _ = image.shape
    k_apply, k_size, k_top, k_left = jax.random.split(key, 4)
    side_h = _random_side(k_size, h, self.min_scale)
    side_w = jnp.clip(jnp.round(side_h / h * w).astype(jnp.int32), 1, w)
    top = jax.random.randint(k_top, (), 0, h - side_h + 1)
    left = jax.random.randint(k_left, (), 0, w - side_w + 1)

    def placed(n, side, offset):
      # Row i of the canvas shows row i - offset of the n -> side resized image, if any.
      k = jnp.arange(n) - offset
      inside = (k >= 0) & (k < side)
      return _linear_resize_matrix(k, n, n, side / n) * inside[:, None]

    out = _apply_separable(image, placed(h, side_h, top), placed(w, side_w, left))
    return _maybe(k_apply, self.prob, image, out)


@dataclasses.dataclass(frozen=True)
class DownUpResize:
  """Resize down to a random scale s in [min_scale, 1], then back up to H x W (linear).

  Loses detail above the reduced resolution, like a re-scaled upload; s is drawn per call as
  an integer side in [ceil(min_scale * H), H]. Applied with probability ``prob``.
  """
  min_scale: float = 0.5
  prob: float = 1.0

  def __call__(self, key: jax.Array, image: jnp.ndarray) -> jnp.ndarray:
    h, w, _ = image.shape
    k_apply, k_size = jax.random.split(key)
    side_h = _random_side(k_size, h, self.min_scale)
    scale = side_h / h
    side_w = jnp.clip(jnp.round(scale * w).astype(jnp.int32), 1, w)

    def down_up(n, side):
      idx = jnp.arange(n)
      s = side / n
      down = _linear_resize_matrix(idx, n, n, s) * (idx < side)[:, None]   # n -> side
      up = _linear_resize_matrix(idx, n, side, 1.0 / s)                     # side -> n
      return up @ down

    out = _apply_separable(image, down_up(h, side_h), down_up(w, side_w))
    return _maybe(k_apply, self.prob, image, out)


# --- Gaussian kernels: blur (EOT) and TI-FGSM's gradient smoothing ------------------------

def gaussian_kernel(size: int, sigma: jnp.ndarray) -> jnp.ndarray:
  """A normalised 2-D Gaussian, size x size (size odd), standard deviation ``sigma`` pixels."""
  if size < 1 or size % 2 == 0:
    raise ValueError(f'expected an odd kernel size >= 1, got {size}')
  x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  g = jnp.exp(-0.5 * jnp.square(x / jnp.maximum(sigma, 1e-3)))
  g = g / jnp.sum(g)
  return jnp.outer(g, g)


def gaussian_smooth(x: jnp.ndarray, kernel: jnp.ndarray, padding: str = 'zero') -> jnp.ndarray:
  """Depthwise 2-D convolution of N x H x W x C ``x`` with a k x k ``kernel`` per channel.

  ``padding``: 'zero' (as TI-FGSM's reference, tf depthwise_conv2d 'SAME') or 'reflect'
  (for blurring images without darkening their borders). Output has x's shape.
  """
  k = kernel.shape[0]
  c = x.shape[-1]
  if padding == 'reflect':
    r = k // 2
    mode = 'reflect' if min(x.shape[1:3]) > r else 'edge'
    x = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode=mode)
    pad = 'VALID'
  elif padding == 'zero':
    pad = 'SAME'
  else:
    raise ValueError(f"padding must be 'zero' or 'reflect', got {padding!r}")
  rhs = jnp.tile(kernel.astype(x.dtype)[:, :, None, None], (1, 1, 1, c))   # HWIO, I = 1
  return jax.lax.conv_general_dilated(
      x, rhs, window_strides=(1, 1), padding=pad,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c)


@dataclasses.dataclass(frozen=True)
class GaussianBlur:
  """Gaussian blur with sigma uniform in [min_sigma, max_sigma] pixels (reflect padding).

  ``kernel_size`` (odd) is static; choose it >= about 4 * max_sigma + 1. Applied with
  probability ``prob``.
  """
  min_sigma: float = 0.3
  max_sigma: float = 1.5
  kernel_size: int = 7
  prob: float = 1.0

  def __call__(self, key: jax.Array, image: jnp.ndarray) -> jnp.ndarray:
    k_apply, k_sigma = jax.random.split(key)
    sigma = jax.random.uniform(k_sigma, (), minval=self.min_sigma, maxval=self.max_sigma)
    out = gaussian_smooth(image[None], gaussian_kernel(self.kernel_size, sigma), 'reflect')[0]
    return _maybe(k_apply, self.prob, image, out)


# --- a differentiable JPEG approximation ---------------------------------------------------

# The IJG (libjpeg) base quantisation tables, Annex K of the JPEG standard.
_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
                       np.float32).reshape(8, 8)
_CHROMA_TABLE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
                         np.float32).reshape(8, 8)
# JFIF full-range RGB -> YCbCr (before the +128 chroma offset).
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], np.float32)


def _dct_matrix() -> np.ndarray:
  """The orthonormal 8-point DCT-II; JPEG's 2-D DCT is D @ block @ D.T."""
  k = np.arange(8)[:, None]
  n = np.arange(8)[None, :]
  d = np.cos(np.pi * (2 * n + 1) * k / 16) * np.sqrt(2 / 8)
  d[0] /= np.sqrt(2)
  return d.astype(np.float32)


def quality_tables(quality: jnp.ndarray) -> jnp.ndarray:
  """IJG quality scaling of the base tables: 2 x 8 x 8 (luma, chroma), quality in [1, 100]."""
  q = jnp.clip(jnp.asarray(quality, jnp.float32), 1.0, 100.0)
  scale = jnp.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
  base = jnp.stack([_LUMA_TABLE, _CHROMA_TABLE])
  return jnp.clip(jnp.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)


def round_ste(x: jnp.ndarray) -> jnp.ndarray:
  """Rounds in the forward pass; the gradient passes straight through (identity)."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def round_cubic(x: jnp.ndarray) -> jnp.ndarray:
  """Shin & Song (2017)'s smooth rounding round(x) + (x - round(x))^3 (gradient 3 r^2)."""
  r = jnp.round(x)
  return r + (x - r) ** 3


def jpeg_approx(image: jnp.ndarray, quality: jnp.ndarray, rounding: str = 'ste') -> jnp.ndarray:
  """Differentiable JPEG compress-decompress of one H x W x C image (C = 1 or 3) in [0, 1].

  What it computes: baseline JPEG as libjpeg does at 4:4:4 (no chroma subsampling) -- JFIF
  RGB -> YCbCr, level shift by 128, 8 x 8 block DCT (H, W edge-padded to multiples of 8),
  quantisation with the IJG tables scaled to ``quality``, dequantisation, inverse DCT, back to
  RGB, clipped to [0, 1]. With ``rounding='ste'`` the forward pass is that exact quantisation
  (it differs from libjpeg's integer DCT and 8-bit output rounding by about one grey level)
  and the gradient treats rounding as the identity (straight-through estimator); with
  'cubic' both passes use Shin & Song's smooth rounding. Chroma subsampling (PIL's default
  4:2:0) and Huffman coding are not modelled. ``quality`` may be traced.
  """
  h, w, c = image.shape
  if c not in (1, 3):
    raise ValueError(f'JPEG needs 1 or 3 channels, got image shape {image.shape}')
  round_fn = {'ste': round_ste, 'cubic': round_cubic}.get(rounding)
  if round_fn is None:
    raise ValueError(f"rounding must be 'ste' or 'cubic', got {rounding!r}")
  ph, pw = -h % 8, -w % 8
  x = jnp.pad(image.astype(jnp.float32) * 255.0, ((0, ph), (0, pw), (0, 0)), mode='edge')
  if c == 3:
    x = x @ jnp.asarray(RGB_TO_YCC).T       # chroma centred on 0 already
    x = x.at[..., 0].add(-128.0)
  else:
    x = x - 128.0
  hb, wb = x.shape[0] // 8, x.shape[1] // 8
  blocks = x.reshape(hb, 8, wb, 8, c).transpose(0, 2, 4, 1, 3)      # hb, wb, c, 8, 8
  d = jnp.asarray(_dct_matrix())
  coeffs = d @ blocks @ d.T
  tables = quality_tables(quality)
  tables = tables[:1] if c == 1 else tables[jnp.array([0, 1, 1])]   # c x 8 x 8
  coeffs = round_fn(coeffs / tables) * tables
  blocks = d.T @ coeffs @ d
  x = blocks.transpose(0, 3, 1, 4, 2).reshape(hb * 8, wb * 8, c)
  if c == 3:
    x = x.at[..., 0].add(128.0)
    x = x @ jnp.asarray(np.linalg.inv(RGB_TO_YCC).astype(np.float32)).T
  else:
    x = x + 128.0
  return jnp.clip(x[:h, :w] / 255.0, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class JpegApprox:
  """JPEG at a quality drawn uniformly from the integers [min_quality, max_quality].

  See ``jpeg_approx`` for what is modelled. Applied with probability ``prob``.
  """
  min_quality: int = 50
  max_quality: int = 90
  rounding: str = 'ste'
  prob: float = 1.0

  def __call__(self, key: jax.Array, image: jnp.ndarray) -> jnp.ndarray:
    k_apply, k_quality = jax.random.split(key)
    quality = jax.random.randint(k_quality, (), self.min_quality, self.max_quality + 1)
    return _maybe(k_apply, self.prob, image, jpeg_approx(image, quality, self.rounding))


@dataclasses.dataclass(frozen=True)
class Compose:
  """Applies ``transforms`` (a tuple) in order, each with its own key drawn from ``key``."""
  transforms: tuple

  def __call__(self, key: jax.Array, image: jnp.ndarray) -> jnp.ndarray:
    for i, t in enumerate(self.transforms):
      image = t(jax.random.fold_in(key, i), image)
    return image


def default_eot() -> Compose:
  """The EOT distribution used by the sweep: each of resize, blur and JPEG with p = 0.5."""
  return Compose((DownUpResize(min_scale=0.5, prob=0.5),
                  GaussianBlur(min_sigma=0.3, max_sigma=1.5, kernel_size=7, prob=0.5),
                  JpegApprox(min_quality=50, max_quality=90, prob=0.5)))
