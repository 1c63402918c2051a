"""The ArcFace 112 x 112 face crop from five landmarks, as a differentiable JAX warp.

The template and the crop size are parameters: FaceNet's 160 x 160 crop is the same
template scaled about its centre (`scaled_template`, `FACENET_TEMPLATE`); everything below
holds for either, with ``size`` in place of 112.

MobileFace, like most recognizers of the ArcFace family (insightface's ``norm_crop``), sees
a 112 x 112 RGB crop aligned by a least-squares similarity transform (Umeyama) that maps
five landmarks -- the two eye centres, the nose tip and the two mouth corners -- onto a
fixed template (`ARCFACE_TEMPLATE`), sampled bilinearly, zero outside the photo. Here the
five points come from dlib's 68-point shape predictor (`arcface_points`), as in
``../shared/models/README.md``.

Conventions (OpenCV's ``warpAffine``, insightface's): pixel (col x, row y) has its centre
at the integer coordinates (x, y); a crop pixel samples the photo at ``A (x, y, 1)`` where
A is the inverse of the fitted landmarks -> template transform; each of the 2 x 2
neighbours of a sample that lies outside the photo reads 0 (zero padding), so the crop
fades to black over one pixel at the photo's edge.

Three ways to cut the same crop:
  * `arcface_crop_reference` (NumPy, float64): for evaluation code and as the exact value;
  * `arcface_crop` (JAX, whole photo) and `window_crop` (JAX, a window of the photo, the
    geometry `ArcFaceGeometry` as traced arrays so one compiled attack serves every face
    of a window size -- as `fgsm_jax.protect.warp.window_chip` does for dlib's chip).

Gradients: plain bilinear sampling reads only the 2 x 2 pixels around each of the 112^2
sample points; when the face is much larger than the crop (``scale`` photo pixels per crop
pixel > 2) those form a sparse lattice and a perturbation built from such gradients lives on
it (a resize erases it). With ``n_down`` > 0 the forward value stays the exact bilinear
crop, but the gradient is taken through the same crop sampled from the window after
``n_down`` levels of a [1 4 6 4 1] Gaussian pyramid (straight-through), so it reaches every
pixel of the face. `arcface_n_down` picks the levels as dlib does for its chip (stop when
the scale is at most 2).
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.faces import chips as chips_lib

ARCFACE_SIZE = 112
# (x, y) in the 112 x 112 crop: eye centre on the image's left, eye centre on the image's
# right, nose tip, mouth corner on the image's left, mouth corner on the image's right.
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
])


def scaled_template(size: int, zoom: float = 1.0) -> np.ndarray:
  """`ARCFACE_TEMPLATE` scaled to a ``size`` crop, zoomed by ``zoom`` about the centre.

  ``(ARCFACE_TEMPLATE - 56) * zoom * size / 112 + size / 2``, the formula of
  ``../shared/models/README.md`` (centre 56, not the pixel-centre 55.5, as measured there).
  zoom < 1 shows more around the face.
  """
  if not size > 0 or not zoom > 0:
    raise ValueError(f'expected a positive size and zoom, got {size}, {zoom}')
  return (ARCFACE_TEMPLATE - ARCFACE_SIZE / 2) * zoom * size / ARCFACE_SIZE + size / 2


# FaceNet (Inception-ResNet-v1, `fgsm_jax.models.facenet`): a 160 x 160 crop on the ArcFace
# template zoomed by 0.9 (the best of the zooms tried on GT, ../shared/models/README.md).
FACENET_SIZE = 160
FACENET_ZOOM = 0.9
FACENET_TEMPLATE = scaled_template(FACENET_SIZE, FACENET_ZOOM)


def arcface_points(landmarks68: np.ndarray) -> np.ndarray:
  """The five ArcFace points from dlib's 68 landmarks (iBUG 300-W numbering, 0-based).

  Args:
    landmarks68: 68 x 2 (x, y) photo pixels from ``shape_predictor_68_face_landmarks``.

  Returns:
    5 x 2 float64, in `ARCFACE_TEMPLATE`'s order: mean of points 36-41 (the eye on the
    image's left), mean of 42-47 (the other eye), 30 (nose tip), 48 and 54 (mouth corners).
  """
  lm = np.asarray(landmarks68, np.float64)
  if lm.shape != (68, 2):
    raise ValueError(f"expected 68 x 2 landmarks (x, y) from dlib's 68-point predictor, "
                     f'got shape {lm.shape}')
  return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def arcface_n_down(scale: float) -> int:
  """Pyramid levels for the gradient: halve until at most 2 photo pixels per crop pixel."""
  if not scale > 0:
    raise ValueError(f'expected a positive scale (photo pixels per crop pixel), got {scale}')
  return max(0, math.ceil(math.log2(scale / 2.0) - 1e-9))


@dataclasses.dataclass(frozen=True)
class ArcFaceTransform:
  """Where one face's ArcFace crop is sampled from its photo (float64, hashable).

  Attributes:
    photo_hw: (height, width) of the photo.
    affine: (a, b, c, d, e, f): crop pixel (x, y) samples the photo at
      (a x + b y + c, d x + e y + f), photo pixels (integer = pixel centre).
    scale: photo pixels per crop pixel.
    n_down: suggested pyramid levels for the gradient (`arcface_n_down(scale)`).
    size: the crop's side, pixels (112 for the ArcFace template).
  """
  photo_hw: tuple[int, int]
  affine: tuple[float, float, float, float, float, float]
  scale: float
  n_down: int
  size: int = ARCFACE_SIZE


def arcface_transform(points5: np.ndarray, photo_hw: tuple[int, int],
                      template: np.ndarray = ARCFACE_TEMPLATE,
                      size: int = ARCFACE_SIZE) -> ArcFaceTransform:
  """The ArcFace crop's geometry for five points (`arcface_points`) in an H x W photo.

  Fits the similarity points -> template by least squares (Umeyama, as insightface's
  ``norm_crop`` does) and inverts it exactly, so the crop is the photo warped by that fit.
  ``template`` (5 x 2, crop pixels) and ``size`` (the crop's side): ArcFace's 112 by
  default; ``FACENET_TEMPLATE``, ``FACENET_SIZE`` for FaceNet.
  """
  pts = np.asarray(points5, np.float64)
  if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
    raise ValueError(f'expected 5 x 2 finite points (x, y), got shape {pts.shape}')
  dst = np.asarray(template, np.float64)
  if dst.shape != (5, 2) or not np.all(np.isfinite(dst)):
    raise ValueError(f'expected a 5 x 2 finite template (x, y), got shape {dst.shape}')
  if int(size) != size or not size > 0:
    raise ValueError(f'expected a positive integer crop size, got {size}')
  h, w = int(photo_hw[0]), int(photo_hw[1])
  if h <= 0 or w <= 0:
    raise ValueError(f'expected a positive photo size (height, width), got {photo_hw}')
  # Coincident points leave the scale undefined (similarity_transform would take 1).
  spread = float(np.mean(np.sum((pts - pts.mean(0)) ** 2, axis=1)))
  m, t = chips_lib.similarity_transform(pts, dst)
  if not spread > 1e-6 or not float(np.linalg.det(m)) > 1e-12:
    raise ValueError(f'five points {pts.tolist()} do not fix a similarity transform')
  inv = np.linalg.inv(m)
  off = -inv @ t
  scale = math.sqrt(abs(float(np.linalg.det(inv))))
  return ArcFaceTransform(photo_hw=(h, w),
                          affine=(inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                          scale=scale, n_down=arcface_n_down(scale), size=int(size))


def _grid(affine: np.ndarray, size: int = ARCFACE_SIZE) -> tuple[np.ndarray, np.ndarray]:
  a, b, c, d, e, f = affine
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  return a * xx + b * yy + c, d * xx + e * yy + f


def arcface_crop_reference(rgb: np.ndarray, points5: np.ndarray,
                           dtype: type = np.float32, template: np.ndarray = ARCFACE_TEMPLATE,
                           size: int = ARCFACE_SIZE) -> np.ndarray:
  """The ArcFace crop in plain NumPy (float64 bilinear, zero outside), for evaluation.

  Args:
    rgb: H x W x 3 photo, uint8 (or float in 0-255 units).
    points5: 5 x 2 (x, y) photo pixels (`arcface_points`).
    dtype: np.float32 (exact bilinear values, 0-255 units: what MobileFace takes) or
      np.uint8 (rounded to nearest, as OpenCV's ``warpAffine`` stores 8-bit images).
    template, size: as `arcface_transform` (ArcFace's 112 by default).

  Returns:
    size x size x 3 of ``dtype``.
  """
  img = np.asarray(rgb)
  if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
    raise ValueError(f'expected a photo H x W x 3, got shape {img.shape}')
  h, w = img.shape[:2]
  px, py = _grid(arcface_transform(points5, (h, w), template, size).affine, size)
  pad = np.pad(img.astype(np.float64), ((1, 2), (1, 2), (0, 0)))  # zeros around the photo
  # Samples far outside read the zero border: clip into it (their 4 neighbours are all 0).
  px, py = np.clip(px, -1.0, float(w)), np.clip(py, -1.0, float(h))
  x0, y0 = np.floor(px), np.floor(py)
  fx, fy = (px - x0)[..., None], (py - y0)[..., None]
  c, r = x0.astype(np.int64) + 1, y0.astype(np.int64) + 1  # +1: the padding
  v = ((1 - fy) * ((1 - fx) * pad[r, c] + fx * pad[r, c + 1])
       + fy * ((1 - fx) * pad[r + 1, c] + fx * pad[r + 1, c + 1]))
  if np.dtype(dtype) == np.uint8:
    return np.clip(np.round(v), 0, 255).astype(np.uint8)
  return v.astype(dtype)


class ArcFaceGeometry(NamedTuple):
  """Where one face's ArcFace crop lies in a window of its photo (arrays, traceable).

  Attributes:
    affine: (6,) float32 (a, b, c, d, e, f): crop pixel (x, y) samples the window at
      (a x + b y + c, d x + e y + f), window pixels. Same layout as
      `fgsm_jax.protect.warp.ChipGeometry.affine`, so ``warp.jitter_affine(affine, key,
      ..., size=ARCFACE_SIZE)`` jitters it.
    valid_hw: (2,) int32, the window's own height and width, or None (all of the image
      sampled): samples past them read 0, as outside the photo, even when the window was
      padded (e.g. to a compile bucket) with pixels of its own.
  """
  affine: jax.Array
  valid_hw: jax.Array | None = None


def arcface_geometry(transform: ArcFaceTransform, window_top: int, window_left: int,
                     window_hw: tuple[int, int]) -> ArcFaceGeometry:
  """The crop's geometry relative to a window of the photo (e.g. ``photo._window``'s).

  Raises:
    ValueError: a photo pixel the crop reads lies outside the window (the window would
      read 0 there where the photo does not); photo edges that are window edges are fine.
  """
  h, w = transform.photo_hw
  wh, ww = int(window_hw[0]), int(window_hw[1])
  px, py = _grid(np.asarray(transform.affine), transform.size)
  x0, y0 = np.floor(px), np.floor(py)
  for dx in (0, 1):
    for dy in (0, 1):
      x, y = x0 + dx, y0 + dy
      in_photo = (x >= 0) & (x < w) & (y >= 0) & (y < h)
      in_window = ((x >= window_left) & (x < window_left + ww) & (y >= window_top)
                   & (y < window_top + wh))
      if np.any(in_photo & ~in_window):
        raise ValueError(f'the ArcFace crop reaches outside the {wh} x {ww} window at '
                         f'({window_top}, {window_left}); use a larger window')
  a, b, c, d, e, f = transform.affine
  # Where the window is cut by the photo's bottom or right edge, the crop may read past it:
  # zeros there, as in the reference, whatever padding the window gets later.
  return ArcFaceGeometry(affine=jnp.asarray((a, b, c - window_left, d, e, f - window_top),
                                            jnp.float32),
                         valid_hw=jnp.asarray((wh, ww), jnp.int32))


def _round_ste(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def _sample(img: jax.Array, affine: jax.Array, size: int,
            valid_hw: jax.Array | None = None) -> jax.Array:
  """Bilinear samples of img (H x W x C) on the crop grid, zero-padded: size x size x C
  (zero also past ``valid_hw``, the rows and columns of img that are photo)."""
  h, w = img.shape[0], img.shape[1]
  vh, vw = (h, w) if valid_hw is None else (valid_hw[0], valid_hw[1])
  yy, xx = jnp.mgrid[0:size, 0:size].astype(jnp.float32)
  px = affine[0] * xx + affine[1] * yy + affine[2]
  py = affine[3] * xx + affine[4] * yy + affine[5]
  # Far-away samples read only zeros; clipping keeps the integer casts in range.
  px, py = jnp.clip(px, -2.0, w + 1.0), jnp.clip(py, -2.0, h + 1.0)
  x0, y0 = jnp.floor(px), jnp.floor(py)
  fx, fy = (px - x0)[..., None], (py - y0)[..., None]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)

  def tap(r: jax.Array, c: jax.Array) -> jax.Array:
    ok = (r >= 0) & (r < vh) & (c >= 0) & (c < vw)
    return jnp.where(ok[..., None], img[jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)], 0.0)

  return ((1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1))
          + fy * ((1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)))


def level_affine(affine: jax.Array, n_down: int) -> jax.Array:
  """The affine in pyramid level ``n_down``'s pixels (level pixel q sits at 2q + 2 below)."""
  for _ in range(n_down):
    affine = jnp.stack([affine[0], affine[1], affine[2] - 2.0,
                        affine[3], affine[4], affine[5] - 2.0]) / 2.0
  return affine


def crop_pyramid(window: jax.Array, n_down: int, quantize: bool = False
                 ) -> tuple[jax.Array, jax.Array | None]:
  """(window in 0-255 units, its level ``n_down`` or None): what `sample_crop` reads.

  Computed once per window, so several jittered crops (EOT) share the pyramid.
  """
  x = window.astype(jnp.float32) * 255.0
  if quantize:
    x = _round_ste(x)  # the photo a recognizer reads is 8-bit
  if n_down == 0:
    return x, None
  low = x
  for _ in range(n_down):
    low = chips_lib.pyramid_down2(low, quantize=False)
  return x, low


def sample_crop(pyramid: tuple[jax.Array, jax.Array | None], affine: jax.Array,
                n_down: int, size: int = ARCFACE_SIZE, valid_hw: jax.Array | None = None
                ) -> jax.Array:
  """The crop (size x size x 3, [0, 1]) from `crop_pyramid`'s output.

  Forward: exact bilinear samples of the window (0 past ``valid_hw``, see
  `ArcFaceGeometry`). Gradient: through the samples of the pyramid level ``n_down`` when
  n_down > 0 (straight-through), dense on the face.
  """
  full, low = pyramid
  exact = _sample(full, affine, size, valid_hw)
  if n_down == 0:
    return exact / 255.0
  smooth = _sample(low, level_affine(affine, n_down), size)
  return (smooth + jax.lax.stop_gradient(exact - smooth)) / 255.0


def window_crop(window: jax.Array, geom: ArcFaceGeometry, n_down: int = 0,
                quantize: bool = False, size: int = ARCFACE_SIZE) -> jax.Array:
  """The ArcFace crop from a window of the photo, differentiable w.r.t. its pixels.

  Args:
    window: float [0, 1], H x W x 3, the photo's window (`arcface_geometry`'s).
    geom: the face's geometry in this window.
    n_down: pyramid levels for the gradient (static; ``transform.n_down`` is dlib's rule;
      0: plain bilinear gradient). The forward value does not depend on it.
    quantize: round the window to 8 bits first (straight-through), as a saved photo is.
    size: the crop's side (static): the ``size`` of the transform the geometry came from.

  Returns:
    float32 [0, 1], size x size x 3 (multiply by 255 for MobileFace's input).
  """
  if window.ndim != 3 or window.shape[-1] != 3:
    raise ValueError(f'expected a window H x W x 3, got shape {window.shape}')
  return sample_crop(crop_pyramid(window, n_down, quantize), geom.affine, n_down, size,
                     valid_hw=geom.valid_hw)


def arcface_crop(photo: jax.Array, transform: ArcFaceTransform, n_down: int = 0,
                 quantize: bool = False) -> jax.Array:
  """The crop from the whole photo (float [0, 1], H x W x 3) -> size x size x 3 [0, 1].

  ``n_down`` and ``quantize`` as `window_crop`.
  """
  photo = jnp.asarray(photo)
  if photo.ndim != 3 or photo.shape[-1] != 3:
    raise ValueError(f'expected a photo H x W x 3, got shape {photo.shape}')
  if tuple(photo.shape[:2]) != tuple(transform.photo_hw):
    raise ValueError(f'photo is {photo.shape[0]} x {photo.shape[1]} but the ArcFace transform '
                     f'was computed for {transform.photo_hw[0]} x {transform.photo_hw[1]}')
  geom = ArcFaceGeometry(affine=jnp.asarray(transform.affine, jnp.float32))
  return window_crop(photo, geom, n_down, quantize, transform.size)


def _mat(affine: jax.Array) -> jax.Array:
  return jnp.concatenate([affine.reshape(2, 3), jnp.array([[0.0, 0.0, 1.0]])])


def follow_chip_jitter(affine: jax.Array, chip_affine: jax.Array, jittered_chip_affine: jax.Array,
                       chip_n_down: int, chip_shift: jax.Array) -> jax.Array:
  """The ArcFace affine moved in the photo exactly as a jitter moved dlib's chip.

  The landmarks found again on a protected photo move once, and both recognizers' crops
  move with them; so, rather than jittering the two crops independently, apply to the
  ArcFace crop the photo-space similarity ``J' J^-1`` that took the chip's affine J to
  its jittered J' (``warp.jitter_affine``).

  Args:
    affine: (6,) this face's `ArcFaceGeometry.affine` (window pixels).
    chip_affine, jittered_chip_affine: (6,) the dlib chip's affine in its pyramid level
      (``warp.ChipGeometry.affine``) before and after jitter.
    chip_n_down: the chip's pyramid levels (static); chip_shift: ``ChipGeometry.shift``
      (row, col), where that pyramid starts in the window.
  """
  step = 2.0 ** chip_n_down
  off = 2.0 * step - 2.0  # level pixel q sits at window pixel step * q + off + shift
  shift = chip_shift.astype(jnp.float32)
  to_window = jnp.array([[step, 0.0, 0.0], [0.0, step, 0.0], [0.0, 0.0, 1.0]])
  to_window = to_window.at[0, 2].set(off + shift[1]).at[1, 2].set(off + shift[0])
  move = _mat(jittered_chip_affine) @ jnp.linalg.inv(_mat(chip_affine))  # in level pixels
  move = to_window @ move @ jnp.linalg.inv(to_window)
  return (move @ _mat(affine))[:2].reshape(6)
