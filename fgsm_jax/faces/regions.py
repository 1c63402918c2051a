"""Where an attack may change a photo: one padded, feathered region per face.

A perturbation confined to a hard rectangle leaves a visible square seam, so each face
gets a `Region`: a window of the photo around the face's box, and a mask that is 1 over
the box grown by a margin and falls smoothly (raised cosine) to 0 over a feather band.
Crops and pastes go through ``lax.dynamic_slice`` / ``dynamic_update_slice``, so every
pixel outside the region is returned bit for bit, and where the mask is 0 inside it too.

`Region` is a pytree whose only static field is the window size; sizes are rounded up
to a bucket (multiples of 32 pixels by default), so jitted attack steps compile once per
bucket, not once per face, and faces of one bucket can be stacked and vmapped.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.data.detect import Box


@flax.struct.dataclass
class Region:
  """A window of the photo and its feathered mask geometry (window-relative pixels).

  Attributes:
    top, left: the window's top-left pixel in the photo (int32 scalars under jit).
    inner: (top, left, bottom, right) of the area where the mask is 1, window coordinates
      (the face box grown by the margin); pixel centres inside it, borders included.
    feather: width in pixels of the falloff from 1 to 0 outside `inner`.
    size: (height, width) of the window -- static (part of the pytree structure).
  """
  top: jax.Array | int
  left: jax.Array | int
  inner: jax.Array | tuple[float, float, float, float]
  feather: jax.Array | float
  size: tuple[int, int] = flax.struct.field(pytree_node=False)


def _bucket(n: float, bucket: int, limit: int) -> int:
  return int(min(limit, max(bucket, math.ceil(n / bucket) * bucket)))


def face_region(box: Box, photo_hw: tuple[int, int], margin: float = 0.3,
                feather: float = 0.2, bucket: int = 32) -> Region:
  """The region to perturb for one face.

  Args:
    box: the face box (left, top, right, bottom), inclusive pixels (`Face.box`; dlib's
      HOG boxes run roughly from the eyebrows to the lower lip).
    photo_hw: (height, width) of the photo.
    margin: the full-strength area is the box grown on every side by this fraction of the
      box's larger side (0.3 takes in forehead, chin and cheeks).
    feather: width of the falloff band, as a fraction of the box's larger side.
    bucket: window sides are rounded up to a multiple of this (capped at the photo size).

  Returns:
    A `Region` whose window holds the full-strength area plus the feather band and a
    pixel, clipped to the photo. The mask reaches 0 before every window edge that lies
    inside the photo; at the photo's own edge it may stay above 0 (there is no seam there).
  """
  h, w = int(photo_hw[0]), int(photo_hw[1])
  left, top, right, bottom = (float(v) for v in box)
  if h <= 0 or w <= 0 or right < left or bottom < top:
    raise ValueError(f'expected a box (left, top, right, bottom) with right >= left and bottom '
                     f'>= top and a positive photo size; got box {box}, photo {photo_hw}')
  if margin < 0 or feather < 0 or bucket <= 0:
    raise ValueError(f'expected margin >= 0, feather >= 0, bucket > 0; got {margin}, {feather}, '
                     f'{bucket}')
  side = max(right - left + 1, bottom - top + 1)
  grow = margin * side
  band = feather * side
  inner = (max(top - grow, 0.0), max(left - grow, 0.0),
           min(bottom + grow, h - 1.0), min(right + grow, w - 1.0))
  if inner[0] > inner[2] or inner[1] > inner[3]:
    raise ValueError(f'face box {box} lies outside the {h} x {w} photo')
  # Window: the inner area plus the band and one pixel on each side, bucketed.
  need_h = inner[2] - inner[0] + 1 + 2 * (math.ceil(band) + 1)
  need_w = inner[3] - inner[1] + 1 + 2 * (math.ceil(band) + 1)
  wh, ww = _bucket(need_h, bucket, h), _bucket(need_w, bucket, w)
  cy, cx = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
  wt = int(np.clip(round(cy - (wh - 1) / 2), 0, h - wh))
  wl = int(np.clip(round(cx - (ww - 1) / 2), 0, w - ww))
  rel = (inner[0] - wt, inner[1] - wl, inner[2] - wt, inner[3] - wl)
  return Region(top=wt, left=wl, inner=tuple(float(v) for v in rel), feather=float(band),
                size=(wh, ww))


def face_regions(boxes: Sequence[Box], photo_hw: tuple[int, int], **kwargs) -> list[Region]:
  """`face_region` for each box (kwargs: margin, feather, bucket)."""
  return [face_region(b, photo_hw, **kwargs) for b in boxes]


def feather_mask(region: Region) -> jax.Array:
  """The region's mask, window-sized: float32 size[0] x size[1] x 1 in [0, 1].

  1 inside ``region.inner``; outside it, a raised cosine of the distance to it (separably
  in rows and columns), reaching 0 at ``region.feather`` pixels and staying 0 beyond.
  """
  return _feather_mask(region.size, jnp.asarray(region.inner, jnp.float32),
                       jnp.asarray(region.feather, jnp.float32))


@functools.partial(jax.jit, static_argnums=0)
def _feather_mask(size: tuple[int, int], inner: jax.Array, feather: jax.Array) -> jax.Array:
  band = jnp.maximum(feather, 1e-6)

  def ramp(coord: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    d = jnp.maximum(jnp.maximum(lo - coord, coord - hi), 0.0)
    t = jnp.clip(d / band, 0.0, 1.0)
    return jnp.where(t >= 1.0, 0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * t)))  # exact 0 at the end

  ry = ramp(jnp.arange(size[0], dtype=jnp.float32), inner[0], inner[2])
  rx = ramp(jnp.arange(size[1], dtype=jnp.float32), inner[1], inner[3])
  return (ry[:, None] * rx[None, :])[..., None]


def _check_photo(photo: jax.Array, region: Region) -> None:
  if photo.ndim != 3:
    raise ValueError(f'expected a photo H x W x C, got shape {photo.shape}')
  if region.size[0] > photo.shape[0] or region.size[1] > photo.shape[1]:
    raise ValueError(f'region {region.size} is larger than the photo {photo.shape[:2]}')


def crop_region(photo: jax.Array, region: Region) -> jax.Array:
  """The region's window of an H x W x C photo: size[0] x size[1] x C."""
  _check_photo(photo, region)
  return jax.lax.dynamic_slice(photo, (region.top, region.left, 0),
                               (region.size[0], region.size[1], photo.shape[2]))


def paste_region(photo: jax.Array, patch: jax.Array, region: Region) -> jax.Array:
  """The photo with the region's window replaced by `patch` (size[0] x size[1] x C).

  Every pixel outside the window is returned unchanged (bit for bit).
  """
  _check_photo(photo, region)
  if patch.shape != (region.size[0], region.size[1], photo.shape[2]):
    raise ValueError(f'expected a patch {region.size[0]} x {region.size[1]} x {photo.shape[2]}, '
                     f'got {patch.shape}')
  return jax.lax.dynamic_update_slice(photo, patch.astype(photo.dtype),
                                      (region.top, region.left, 0))


def add_masked(photo: jax.Array, delta: jax.Array, region: Region) -> jax.Array:
  """photo + feather_mask * delta inside the region, clipped to [0, 1].

  Args:
    photo: float [0, 1], H x W x C.
    delta: window-sized perturbation, size[0] x size[1] x C (same units as the photo).
    region: where to add it.

  Returns:
    The perturbed photo; pixels outside the window, and inside it where the mask is 0,
    are exactly the input's.
  """
  window = crop_region(photo, region)
  if delta.shape != window.shape:
    raise ValueError(f'expected delta of shape {window.shape}, got {delta.shape}')
  mask = feather_mask(region)
  out = jnp.clip(window + mask * delta, 0.0, 1.0)
  # Where the mask is 0 keep the window itself (clip would alter out-of-range inputs).
  out = jnp.where(mask > 0, out, window)
  return paste_region(photo, out, region)


def _ramp_np(n: int, lo: float, hi: float, band: float) -> np.ndarray:
  coord = np.arange(n, dtype=np.float32)
  d = np.maximum(np.maximum(np.float32(lo) - coord, coord - np.float32(hi)), 0.0)
  t = np.clip(d / np.float32(max(band, 1e-6)), 0.0, 1.0)
  return np.where(t >= 1.0, 0.0, 0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def full_mask(photo_hw: tuple[int, int], regions: Sequence[Region]) -> np.ndarray:
  """Union of the regions' masks on the whole photo: H x W x 1, the max where they overlap.

  0 outside every region's window. Computed in numpy (float32, the same formula as
  `feather_mask`): a jitted mask would compile once per window size and photo size, the
  wait a first photo should not have.
  """
  mask = np.zeros((int(photo_hw[0]), int(photo_hw[1]), 1), np.float32)
  for r in regions:
    t, l = int(r.top), int(r.left)
    h, w = r.size
    inner = [float(v) for v in np.asarray(r.inner)]
    band = float(r.feather)
    own = (_ramp_np(h, inner[0], inner[2], band)[:, None]
           * _ramp_np(w, inner[1], inner[3], band)[None, :])[..., None]
    view = mask[t:t + h, l:l + w]
    np.maximum(view, own[:view.shape[0], :view.shape[1]], out=view)
  return mask
