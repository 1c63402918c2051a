"""dlib's face chip from a window of the photo, with the geometry as traced data.

`fgsm_jax.faces.extract_chip` holds a face's geometry as a static `ChipTransform`, so each
face compiles its own warp. Protecting many photos needs one compiled attack for many
faces, so here the same warp takes the geometry as arrays (`ChipGeometry`): the window the
attack perturbs has a bucketed static size, and where the chip lies inside it is data.

The warp is dlib's extract_image_chip (see `fgsm_jax.faces.chips` for what that is): the
window (0-255 units, uint8 values) goes ``n_down`` times through pyramid_down<2> and is
then sampled bilinearly at the chip's pixel grid, with dlib's truncations reproduced in
the forward pass and passed straight through by the gradient. dlib builds its pyramid on
its own crop of the photo; pyramid_down<2> is a local filter with stride 2, so it is the
same on any window whose origin is an even (for two levels: a multiple of 4, ...) number
of pixels away -- `geometry` picks that sub-window origin (``shift``) inside the window.

`jitter` perturbs the geometry (a small random similarity in chip space) so the attack
holds when the landmarks are found again, a pixel or two away, on the protected photo.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.faces import chips as chips_lib

CHIP_SIZE = chips_lib.CHIP_SIZE
# Floors are taken after adding this (0-255 units) so round-off just below an integer does
# not drop a grey level (as in fgsm_jax.faces.chips).
_FLOOR_SLACK = 3e-5


class ChipGeometry(NamedTuple):
  """Where one face's chip lies in a window (arrays, so they can be traced).

  Attributes:
    affine: (6,) float32 (a, b, c, d, e, f): chip pixel (col x, row y) samples the
      pyramid level at (a x + b y + c, d x + e y + f), level pixel coordinates.
    bounds: (4,) float32 (top, left, bottom, right) in level pixels: dlib's crop there;
      a bilinear sample whose 2 x 2 neighbourhood leaves it reads 0, as dlib's does.
    shift: (2,) int32 (row, col) where the pyramid's input starts inside the window.
  """
  affine: jax.Array
  bounds: jax.Array
  shift: jax.Array


def geometry(transform: chips_lib.ChipTransform, window_top: int, window_left: int,
             window_hw: tuple[int, int]) -> ChipGeometry:
  """The chip geometry of a face (`Face.chip`) relative to a window of its photo.

  Args:
    transform: dlib's chip geometry on the whole photo (``faces.chip_transform``).
    window_top, window_left: the window's top-left pixel in the photo.
    window_hw: the window's (height, width); with ``transform.n_down`` levels the warp
      reads a sub-window of ``window_hw - 2**n_down`` pixels.

  Raises:
    ValueError: the chip does not fit in the window (the attack would not see it all).
  """
  n = transform.n_down
  step = 2 ** n
  c_top, c_left, c_bottom, c_right = transform.crop
  # The pyramid input starts `shift` pixels into the window, in phase with dlib's crop.
  sy, sx = (c_top - window_top) % step, (c_left - window_left) % step
  # dlib's crop origin in level-n pixels of our sub-window.
  oy, ox = (c_top - window_top - sy) / step, (c_left - window_left - sx) / step
  lh, lw = c_bottom - c_top + 1, c_right - c_left + 1
  for _ in range(n):
    lh, lw = (lh - 3) // 2, (lw - 3) // 2
  a, b, c, d, e, f = transform.affine
  affine = (a, b, c + ox, d, e, f + oy)
  # The window's level image, in level pixels (shape of the pyramid of the sub-window).
  wh, ww = window_hw[0] - (step if n else 0), window_hw[1] - (step if n else 0)
  for _ in range(n):
    wh, ww = (wh - 3) // 2, (ww - 3) // 2
  # Every sample dlib reads from its crop must lie inside the window's level image
  # (samples outside dlib's crop read 0, wherever they are).
  yy, xx = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE].astype(np.float64)
  px = affine[0] * xx + affine[1] * yy + affine[2]
  py = affine[3] * xx + affine[4] * yy + affine[5]
  fx, fy = np.floor(px), np.floor(py)
  read = (fx >= ox) & (fy >= oy) & (fx + 1 < ox + lw) & (fy + 1 < oy + lh)
  inside = (fx >= 0) & (fy >= 0) & (fx + 1 < ww) & (fy + 1 < wh)
  if np.any(read & ~inside):
    raise ValueError(f'the face chip reaches outside the {window_hw[0]} x {window_hw[1]} '
                     f'window at ({window_top}, {window_left}); use a larger window')
  return ChipGeometry(
      affine=jnp.asarray(affine, jnp.float32),
      bounds=jnp.asarray((oy, ox, oy + lh, ox + lw), jnp.float32),
      shift=jnp.asarray((sy, sx), jnp.int32))


def _floor_ste(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.floor(x + _FLOOR_SLACK) - x)


def _round_ste(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def level_image(window: jax.Array, shift: jax.Array, n_down: int,
                quantize: bool = True) -> jax.Array:
  """The window (float [0, 1], H x W x 3) as dlib's pyramid level ``n_down``, 0-255 units."""
  x = window.astype(jnp.float32) * 255.0
  if quantize:
    x = _round_ste(x)  # dlib reads the 8-bit photo
  if n_down == 0:
    return x
  step = 2 ** n_down
  h, w = x.shape[0] - step, x.shape[1] - step
  x = jax.lax.dynamic_slice(x, (shift[0], shift[1], 0), (h, w, x.shape[2]))
  for _ in range(n_down):
    x = chips_lib.pyramid_down2(x, quantize)
  return x


def sample_chip(level: jax.Array, affine: jax.Array, bounds: jax.Array,
                size: int = CHIP_SIZE, quantize: bool = True) -> jax.Array:
  """Bilinear samples of the level image (0-255) on the chip grid -> size x size x 3 [0, 1]."""
  lh, lw = level.shape[0], level.shape[1]
  yy, xx = jnp.mgrid[0:size, 0:size].astype(jnp.float32)
  px = affine[0] * xx + affine[1] * yy + affine[2]
  py = affine[3] * xx + affine[4] * yy + affine[5]
  left, top = jnp.floor(px), jnp.floor(py)
  valid = ((left >= bounds[1]) & (top >= bounds[0]) & (left + 1 < bounds[3])
           & (top + 1 < bounds[2]))
  lr = (px - left)[..., None]
  tb = (py - top)[..., None]
  c0 = jnp.clip(left, 0, lw - 2).astype(jnp.int32)
  r0 = jnp.clip(top, 0, lh - 2).astype(jnp.int32)
  tl, tr = level[r0, c0], level[r0, c0 + 1]
  bl, br = level[r0 + 1, c0], level[r0 + 1, c0 + 1]
  v = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
  v = jnp.where(valid[..., None], v, 0.0)
  if quantize:
    v = _floor_ste(v)  # assign_pixel(uint8, double) truncates
  return v / 255.0


def window_chip(window: jax.Array, geom: ChipGeometry, n_down: int,
                quantize: bool = True) -> jax.Array:
  """The chip dlib's recognizer would cut, from a window of the photo (differentiable).

  Args:
    window: float [0, 1], H x W x 3, a window of the photo.
    geom: from `geometry` for this face and window.
    n_down: ``transform.n_down`` (static: the number of pyramid levels).
    quantize: reproduce dlib's 8-bit reads and truncations (straight-through gradients).

  Returns:
    float32 [0, 1], 150 x 150 x 3.
  """
  return sample_chip(level_image(window, geom.shift, n_down, quantize), geom.affine,
                     geom.bounds, CHIP_SIZE, quantize)


def jitter_affine(affine: jax.Array, key: jax.Array, shift_px: float, rotate_deg: float,
                  scale: float, size: int = CHIP_SIZE) -> jax.Array:
  """The affine after a random similarity of the chip about its centre.

  The landmarks found on a protected photo move by a pixel or two; the chip moves with
  them. Shifts are normal with sd ``shift_px`` chip pixels per axis, the rotation normal
  with sd ``rotate_deg`` degrees, the log-scale normal with sd ``scale``.
  """
  k1, k2, k3 = jax.random.split(key, 3)
  t = shift_px * jax.random.normal(k1, (2,))
  th = math.radians(1.0) * rotate_deg * jax.random.normal(k2)
  s = jnp.exp(scale * jax.random.normal(k3))
  ca, sa = s * jnp.cos(th), s * jnp.sin(th)
  c = (size - 1) / 2.0
  # chip (x, y) -> J(x, y) = c + R_s ((x, y) - c) + t, then the face's affine.
  j = jnp.array([[ca, -sa, c - ca * c + sa * c + t[0]],
                 [sa, ca, c - sa * c - ca * c + t[1]],
                 [0.0, 0.0, 1.0]])
  a = jnp.concatenate([affine.reshape(2, 3), jnp.array([[0.0, 0.0, 1.0]])])
  return (a @ j)[:2].reshape(6)
