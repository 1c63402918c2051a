"""dlib's aligned face chip, re-implemented: the geometry in NumPy, the warp in JAX.

dlib's recognizer sees a 150 x 150 chip cut by ``extract_image_chip(img,
get_face_chip_details(shape, 150, 0.25))``. This module reproduces that chip from the 5
landmarks of dlib's 5-point shape predictor, and the pixel warp is differentiable, so an
attack can take gradients w.r.t. the whole photo's pixels.

What dlib does, and we copy (each costs descriptor accuracy if missed):
  * a similarity transform (Umeyama) from a padded mean-face template to the landmarks,
    turned into a rotated rectangle whose corner pixels map to chip pixels 0 and size-1;
  * it crops the photo to the rectangle's bounding box grown by a few pixels, and, for
    faces much larger than the chip, shrinks that crop through ``pyramid_down<2>``
    (5-tap [1 4 6 4 1] Gaussian, drop every other row/column, integer division by 256)
    before sampling -- this is a dense low-pass, so gradients reach every pixel;
  * bilinear sampling that reads 0 wherever a 2 x 2 neighbourhood leaves the image, and
    stores samples as uint8 by truncation (round down), as do the pyramid levels.

The geometry depends only on the landmarks and the photo's size, so it is computed once
per face in float64 (NumPy): a `ChipTransform`, turned by `chip_plan` into index and weight
arrays that jitted code takes as data (only a bucketed window size is static, so new faces
do not recompile an attack step). Quantization (uint8 input, truncations) is applied in
the forward pass with a straight-through gradient, so attacks see dlib's exact chip and a
useful gradient.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's mean positions (x, y) of the 5-point shape predictor's landmarks, in a unit
# square around the face: outer and inner corner of the eye on the image's right, then of
# the eye on the image's left, then the base of the nose (get_face_chip_details).
MEAN_FACE_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])

# Floors are taken after adding this (0-255 units; ~2 float32 ulps at 255) so round-off just
# below an integer does not drop a whole grey level.
_FLOOR_SLACK = 3e-5


@dataclasses.dataclass(frozen=True)
class ChipTransform:
  """Where and how one face's chip is sampled from a photo (float64 geometry, hashable).

  Attributes:
    photo_hw: (height, width) of the photo this was computed for.
    size: chip side in pixels.
    rect: dlib's chip rectangle (left, top, right, bottom) in photo pixels, before
      rotation about its centre by `angle`.
    angle: rotation of the chip in the photo, radians.
    crop: (top, left, bottom, right), inclusive pixel bounds of the photo crop the
      warp reads (dlib's grown bounding box).
    n_down: number of pyramid_down<2> steps applied to the crop before sampling.
    affine: (a, b, c, d, e, f): chip pixel (col x, row y) samples the (pyramid-level)
      image at (a x + b y + c, d x + e y + f).
  """
  photo_hw: tuple[int, int]
  size: int
  rect: tuple[float, float, float, float]
  angle: float
  crop: tuple[int, int, int, int]
  n_down: int
  affine: tuple[float, float, float, float, float, float]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares similarity transform src -> dst (Umeyama, as dlib's).

  Args:
    src, dst: N x 2 points (x, y), N >= 2.

  Returns:
    (m, t): 2 x 2 matrix (scale times rotation) and 2-vector with dst ~= src @ m.T + t.
  """
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
    raise ValueError(f'expected two N x 2 point arrays, N >= 2; got {src.shape} and {dst.shape}')
  mean_src, mean_dst = src.mean(0), dst.mean(0)
  src_c, dst_c = src - mean_src, dst - mean_dst
  sigma_src = np.mean(np.sum(src_c ** 2, axis=1))
  cov = dst_c.T @ src_c / len(src)
  u, d, vt = np.linalg.svd(cov)
  s = np.ones(2)
  if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0
                                 and np.linalg.det(u) * np.linalg.det(vt) < 0):
    s[1] = -1.0  # flip the axis of the smaller singular value (numpy sorts them)
  r = u @ np.diag(s) @ vt
  c = float(np.sum(d * s) / sigma_src) if sigma_src != 0 else 1.0
  m = c * r
  return m, mean_dst - m @ mean_src


# --- dlib's rectangle arithmetic (drectangle: inclusive, width = right - left + 1) ---

def _area(rect) -> float:
  l, t, r, b = rect
  if t > b or l > r:
    return 0.0
  return (r - l + 1) * (b - t + 1)


def _rect_down(rect):
  # pyramid_down<2>::rect_down: p / 2 - (1.25, 0.75), as dlib maps points.
  l, t, r, b = rect
  return (l / 2 - 1.25, t / 2 - 0.75, r / 2 - 1.25, b / 2 - 0.75)


def _rotate(center, p, angle):
  ca, sa = math.cos(angle), math.sin(angle)
  dx, dy = p[0] - center[0], p[1] - center[1]
  return (ca * dx - sa * dy + center[0], sa * dx + ca * dy + center[1])


def _round_half_up(v: float) -> int:
  # drectangle -> rectangle conversion.
  return int(math.floor(v + 0.5))


def _pyramid_shape(h: int, w: int) -> tuple[int, int]:
  return (h - 3) // 2, (w - 3) // 2


Rect = tuple[float, float, float, float]


def face_chip_rect(landmarks: np.ndarray, size: int = CHIP_SIZE,
                   padding: float = CHIP_PADDING) -> tuple[Rect, float]:
  """dlib's get_face_chip_details for a 5-point shape.

  Args:
    landmarks: 5 x 2 (x, y) in photo pixels, in the order of dlib's 5-point predictor.
    size: chip side in pixels.
    padding: fraction of the mean face added on each side.

  Returns:
    (rect, angle): the chip rectangle (left, top, right, bottom) and its rotation (rad).
  """
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.shape != (5, 2):
    raise ValueError(f'expected 5 x 2 landmarks (x, y), got shape {landmarks.shape}')
  if size <= 0 or padding < 0:
    raise ValueError(f'expected size > 0 and padding >= 0, got {size}, {padding}')
  template = (padding + MEAN_FACE_5) / (2 * padding + 1) * size
  m, t = similarity_transform(template, landmarks)
  angle = math.atan2(m[1, 0], m[0, 0])
  scale = math.hypot(m[0, 0], m[1, 0])
  cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
  half = (size * scale - 1) / 2  # centered_drect(p, w, h): width-- then +- w/2
  return (cx - half, cy - half, cx + half, cy + half), angle


def chip_transform(landmarks: np.ndarray, photo_hw: tuple[int, int], size: int = CHIP_SIZE,
                   padding: float = CHIP_PADDING) -> ChipTransform:
  """How dlib's extract_image_chip would cut this face's chip from an H x W photo.

  Args:
    landmarks: 5 x 2 (x, y) from dlib's 5-point shape predictor, photo pixels.
    photo_hw: (height, width) of the photo.
    size, padding: as get_face_chip_details (the recognizer uses 150 and 0.25).

  Raises:
    ValueError: bad shapes, or the chip lies too far outside the photo to sample.
  """
  h, w = int(photo_hw[0]), int(photo_hw[1])
  if h <= 0 or w <= 0:
    raise ValueError(f'expected a positive photo size (height, width), got {photo_hw}')
  rect, angle = face_chip_rect(landmarks, size, padding)
  n_pix = size * size

  # Pyramid depth and how much the crop is grown (extract_image_chips).
  depth, grow = 0, 2.0
  down = _rect_down(rect)
  while _area(down) > n_pix:
    down = _rect_down(down)
    depth += 1
    grow = grow * 2 + 2
  center = ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
  corners = [_rotate(center, p, angle) for p in
             ((rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3]), (rect[2], rect[3]))]
  xs, ys = [p[0] for p in corners], [p[1] for p in corners]
  grown = (min(xs) - grow, min(ys) - grow, max(xs) + grow, max(ys) + grow)
  clipped = (max(grown[0], 0), max(grown[1], 0), min(grown[2], w - 1), min(grown[3], h - 1))
  left, top, right, bottom = (_round_half_up(v) for v in clipped)
  if left > right or top > bottom:
    raise ValueError(f'face chip rectangle {rect} lies outside the {h} x {w} photo')

  # Pyramid level to sample from, and the rectangle in that level's coordinates.
  level_rect = (rect[0] - left, rect[1] - top, rect[2] - left, rect[3] - top)
  n_down = 0
  while _area(_rect_down(level_rect)) > n_pix:
    n_down += 1
    level_rect = _rect_down(level_rect)
  lh, lw = bottom - top + 1, right - left + 1
  for _ in range(n_down):
    if lh <= 8 or lw <= 8:
      raise ValueError(f'face chip crop of {lh} x {lw} pixels is too small for its pyramid')
    lh, lw = _pyramid_shape(lh, lw)

  # Chip pixels (0,0), (size-1,0), (0,size-1) -> rotated rect corners tl, tr, bl.
  lc = ((level_rect[0] + level_rect[2]) / 2, (level_rect[1] + level_rect[3]) / 2)
  tl = _rotate(lc, (level_rect[0], level_rect[1]), angle)
  tr = _rotate(lc, (level_rect[2], level_rect[1]), angle)
  bl = _rotate(lc, (level_rect[0], level_rect[3]), angle)
  n = size - 1
  affine = ((tr[0] - tl[0]) / n, (bl[0] - tl[0]) / n, tl[0],
            (tr[1] - tl[1]) / n, (bl[1] - tl[1]) / n, tl[1])
  return ChipTransform(photo_hw=(h, w), size=int(size), rect=tuple(float(v) for v in rect),
                       angle=float(angle), crop=(top, left, bottom, right), n_down=n_down,
                       affine=tuple(float(v) for v in affine))


def _floor_ste(x: jax.Array) -> jax.Array:
  """floor(x) in the forward pass, identity gradient (straight-through)."""
  return x + jax.lax.stop_gradient(jnp.floor(x + _FLOOR_SLACK) - x)


def _round_ste(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def pyramid_down2(img: jax.Array, quantize: bool = True) -> jax.Array:
  """dlib's pyramid_down<2> on an H x W x C image in 0-255 units.

  Separable [1 4 6 4 1] filter, keeping every other row and column starting at the
  filter centred on pixel 2; output ((H-3)//2) x ((W-3)//2). dlib sums integers and
  divides by 256 with truncation; `quantize` reproduces the truncation (straight-through).
  """
  h, w = img.shape[0], img.shape[1]
  ho, wo = _pyramid_shape(h, w)
  if ho <= 0 or wo <= 0:
    raise ValueError(f'pyramid_down2 needs an image of at least 5 x 5, got {h} x {w}')
  taps = (1.0, 4.0, 6.0, 4.0, 1.0)
  rows = sum(k * img[:, a:a + 2 * wo - 1:2] for a, k in enumerate(taps))
  out = sum(k * rows[a:a + 2 * ho - 1:2] for a, k in enumerate(taps)) / 256.0
  return _floor_ste(out) if quantize else out


def _level_shape(h: int, w: int, n_down: int) -> tuple[int, int]:
  for _ in range(n_down):
    h, w = _pyramid_shape(h, w)
  return h, w


@flax.struct.dataclass
class ChipPlan:
  """A `ChipTransform` as arrays: what jitted code takes, so faces don't force recompiles.

  The warp reads a fixed-size window of the photo at a dynamic origin; only the window
  size, the pyramid depth and the chip size are static (part of the pytree structure),
  so faces of one window bucket share one compiled attack step, and plans of one bucket
  can be stacked and vmapped.

  Attributes:
    origin: int32 (top, left) of the window in the photo (dlib's crop origin).
    rows, cols: int32 size x size, top-left pixel of each sample's 2 x 2 neighbourhood,
      in the pyramid level's coordinates.
    frac_y, frac_x: float32 size x size x 1, bilinear weights of the bottom/right pixels.
    valid: float32 size x size x 1, 0 where dlib reads the black background.
    photo_hw, window, n_down, size: static.
  """
  origin: jax.Array
  rows: jax.Array
  cols: jax.Array
  frac_y: jax.Array
  frac_x: jax.Array
  valid: jax.Array
  photo_hw: tuple[int, int] = flax.struct.field(pytree_node=False)
  window: tuple[int, int] = flax.struct.field(pytree_node=False)
  n_down: int = flax.struct.field(pytree_node=False)
  size: int = flax.struct.field(pytree_node=False)


def chip_plan(transform: ChipTransform, window_hw: tuple[int, int] | None = None,
              bucket: int = 64) -> ChipPlan:
  """The sampling plan of a chip transform, in float64 as dlib computes it.

  Args:
    transform: from `chip_transform`.
    window_hw: static (height, width) of the photo window the warp reads; must hold the
      transform's crop. None: the crop's size rounded up to a multiple of `bucket`.
      Pass one common value to give every face the same compiled code.
    bucket: rounding of the default window size.
  """
  top, left, bottom, right = transform.crop
  ch, cw = bottom - top + 1, right - left + 1
  if window_hw is None:
    window_hw = (-(-ch // bucket) * bucket, -(-cw // bucket) * bucket)
  wh, ww = int(window_hw[0]), int(window_hw[1])
  if wh < ch or ww < cw:
    raise ValueError(f"window {window_hw} is smaller than the chip's crop of {ch} x {cw}")
  lh, lw = _level_shape(ch, cw, transform.n_down)  # the level dlib samples
  wlh, wlw = _level_shape(wh, ww, transform.n_down)  # the same level of the window
  a, b, c, d, e, f = transform.affine
  yy, xx = np.mgrid[0:transform.size, 0:transform.size].astype(np.float64)
  px = a * xx + b * yy + c
  py = d * xx + e * yy + f
  col = np.floor(px)
  row = np.floor(py)
  valid = (col >= 0) & (row >= 0) & (col + 1 < lw) & (row + 1 < lh)
  return ChipPlan(
      origin=jnp.asarray([top, left], jnp.int32),
      rows=jnp.asarray(np.clip(row, 0, max(wlh - 2, 0)), jnp.int32),
      cols=jnp.asarray(np.clip(col, 0, max(wlw - 2, 0)), jnp.int32),
      frac_y=jnp.asarray((py - row)[..., None], jnp.float32),
      frac_x=jnp.asarray((px - col)[..., None], jnp.float32),
      valid=jnp.asarray(valid[..., None], jnp.float32),
      photo_hw=tuple(transform.photo_hw), window=(wh, ww), n_down=transform.n_down,
      size=transform.size)


@functools.partial(jax.jit, static_argnames=('quantize',))
def _extract_chip(photo: jax.Array, plan: ChipPlan, quantize: bool) -> jax.Array:
  x = photo.astype(jnp.float32) * 255.0
  if quantize:
    x = _round_ste(x)  # dlib reads a uint8 photo
  wh, ww = plan.window
  # Zero rows/columns below and right so a window near the edge is never shifted inward
  # (dynamic_slice clamps); they only feed samples the plan marks invalid.
  x = jnp.pad(x, ((0, wh), (0, ww), (0, 0)))
  x = jax.lax.dynamic_slice(x, (plan.origin[0], plan.origin[1], 0), (wh, ww, x.shape[2]))
  for _ in range(plan.n_down):
    x = pyramid_down2(x, quantize)
  r0, c0, ty, tx = plan.rows, plan.cols, plan.frac_y, plan.frac_x
  tl, tr = x[r0, c0], x[r0, c0 + 1]
  bl, br = x[r0 + 1, c0], x[r0 + 1, c0 + 1]
  v = (1 - ty) * ((1 - tx) * tl + tx * tr) + ty * ((1 - tx) * bl + tx * br)
  v = v * plan.valid
  if quantize:
    v = _floor_ste(v)  # assign_pixel(uint8, double) truncates
  return v / 255.0


def extract_chip(photo: jax.Array, chip: ChipTransform | ChipPlan, size: int | None = None,
                 quantize: bool = True) -> jax.Array:
  """The face chip dlib's recognizer sees, differentiable w.r.t. the photo's pixels.

  Args:
    photo: float [0, 1], H x W x 3 (or N x H x W x 3: the same face geometry for each).
    chip: the face's `ChipTransform` (`Face.chip`), or its `chip_plan` -- pass a plan
      as an argument of jitted code so that other faces reuse the compiled function.
    size: chip side; must equal the transform's when given (None: take it from there).
    quantize: reproduce dlib's uint8 rounding of the photo and truncations of the pyramid
      and the samples in the forward pass (gradients pass straight through them).

  Returns:
    float32 [0, 1], size x size x 3 (or N x size x size x 3). Its gradient reaches the
    pixels of dlib's crop around the face, densely (through the pyramid's low-pass).
  """
  plan = chip_plan(chip) if isinstance(chip, ChipTransform) else chip
  if size is not None and size != plan.size:
    raise ValueError(f"size {size} differs from the transform's chip size {plan.size}; "
                     'build the transform with chip_transform(..., size=size)')
  photo = jnp.asarray(photo)
  if photo.ndim not in (3, 4) or photo.shape[-1] != 3:
    raise ValueError(f'expected a photo H x W x 3 or N x H x W x 3, got shape {photo.shape}')
  if tuple(photo.shape[-3:-1]) != tuple(plan.photo_hw):
    raise ValueError(f'photo is {photo.shape[-3]} x {photo.shape[-2]} but the chip transform '
                     f'was computed for {plan.photo_hw[0]} x {plan.photo_hw[1]}')
  if photo.ndim == 4:
    return jax.vmap(lambda p: _extract_chip(p, plan, quantize))(photo)
  return _extract_chip(photo, plan, quantize)
