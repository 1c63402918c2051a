"""What a person sees: perceptual measures of a changed face against the original.

SSIM and PSNR (``fgsm_jax.quality``) are easy to optimise and blind to much of what people
notice -- colour shifts in flat skin and irises, blotches, texture that was not there. The
measures here track human judgement far better; every report of the project reads them on
the same **face region**: the detector's box grown by a quarter of its size on each side
(``quality.face_region``), cut from the photos as saved (uint8).

- **SSIMULACRA2** (Cloudinary's psychovisual metric, multi-scale SSIM and edge/blocking
  terms in the XYB colour space; 100 = identical, ~90 invisible, ~70 high quality, ~50
  medium): the PyPI package ``ssimulacra2`` (pure Python), fed the two crops as PNG.
- **LPIPS** (Zhang et al. 2018; ``fgsm_jax.models.lpips``): AlexNet by default, on the two
  crops resized to 224 x 224 (PIL bilinear); 0 = identical, lower is better.
- **CIEDE2000** colour difference (Sharma, Wu & Dalal 2005) per pixel in CIELAB (sRGB, D65):
  the mean and the 95th percentile over the region. It has no spatial filter, so it ranks
  fine noise worse than blotches: read it for colour shifts, not as the overall judge.
- SSIM and PSNR of the same region, for continuity with the older figures.

A figure reads against a reference people accept: the same photo re-saved as JPEG at quality
75 and 50 (``jpeg_reference``), scored by the same measures on the same region. Sets are
summarised by the mean and the worst tenth (the mean of the worst 10% of faces, at least
one): a tool is judged by its worst photos too.
"""
from __future__ import annotations

import io
import math
from typing import Any, Iterable, Sequence

import jax.numpy as jnp
import numpy as np
from PIL import Image

from fgsm_jax import quality
from fgsm_jax.data.detect import Box
from fgsm_jax.models import lpips as lpips_lib

LPIPS_SIZE = 224  # side the face crops are resized to before LPIPS
JPEG_REFERENCES = (75, 50)
# Measure -> True where higher is better (decides which end is the worst tenth).
HIGHER_IS_BETTER = {
    'ssimulacra2': True, 'lpips': False, 'ciede2000_mean': False, 'ciede2000_p95': False,
    'ssim': True, 'psnr': True,
}
MEASURES = tuple(HIGHER_IS_BETTER)

# sRGB (D65) -> CIE XYZ, IEC 61966-2-1; the D65 white for CIELAB.
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_D65 = np.array([0.95047, 1.0, 1.08883])


def _uint8_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
    raise ValueError(f'expected two RGB images H x W x 3 of one shape, got {a.shape} and {b.shape}')
  if a.dtype != np.uint8 or b.dtype != np.uint8:
    raise ValueError(f'expected uint8 images (as saved), got {a.dtype} and {b.dtype}')
  return a, b


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """CIELAB (D65, 2 degree observer) of 8-bit sRGB, H x W x 3 -> H x W x 3 float64."""
  c = np.asarray(rgb, np.float64) / 255.0
  linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
  xyz = linear @ _SRGB_TO_XYZ.T / _D65
  eps, kappa = 216 / 24389, 24389 / 27
  f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                   200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
  """CIEDE2000 colour difference of two CIELAB arrays (..., 3) -> (...), kL = kC = kH = 1.

  Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes,
  supplementary test data, and mathematical observations", Color Res. Appl. 2005 (hue
  angles in degrees, the mean hue taken on the shorter arc).
  """
  l1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
  l2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
  c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
  g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
  a1p, a2p = (1 + g) * a1, (1 + g) * a2
  c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
  h1p = np.degrees(np.arctan2(b1, a1p)) % 360
  h2p = np.degrees(np.arctan2(b2, a2p)) % 360
  both = c1p * c2p != 0
  dh = h2p - h1p
  dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
  dh = np.where(both, dh, 0.0)
  d_l, d_c = l2 - l1, c2p - c1p
  d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
  l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
  h_sum = h1p + h2p
  h_bar = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                   np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
  h_bar = np.where(both, h_bar, h_sum)
  t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
       + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
  d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
  r_c = 2 * np.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25.0 ** 7))
  s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
  s_c = 1 + 0.045 * cp_bar
  s_h = 1 + 0.015 * cp_bar * t
  r_t = -np.sin(np.radians(2 * d_theta)) * r_c
  return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2
                 + r_t * (d_c / s_c) * (d_h / s_h))


def colour_difference(original: np.ndarray, changed: np.ndarray) -> dict[str, float]:
  """{'ciede2000_mean', 'ciede2000_p95'} over every pixel of two uint8 RGB images."""
  a, b = _uint8_pair(original, changed)
  de = ciede2000(srgb_to_lab(a), srgb_to_lab(b))
  return {'ciede2000_mean': float(np.mean(de)), 'ciede2000_p95': float(np.percentile(de, 95))}


def _png(rgb: np.ndarray) -> io.BytesIO:
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format='PNG')
  buf.seek(0)
  return buf


def ssimulacra2(original: np.ndarray, changed: np.ndarray) -> float:
  """SSIMULACRA2 of two uint8 RGB images (the ``ssimulacra2`` package on lossless PNGs).

  The package scores images of at least 8 x 8 pixels; 100 = identical.
  """
  a, b = _uint8_pair(original, changed)
  if min(a.shape[:2]) < 8:
    raise ValueError(f'SSIMULACRA2 needs images of at least 8 x 8 pixels, got {a.shape[:2]}')
  from ssimulacra2 import compute_ssimulacra2  # pylint: disable=import-outside-toplevel
  return float(compute_ssimulacra2(_png(a), _png(b)))


def _lpips_input(rgb: np.ndarray, size: int) -> np.ndarray:
  im = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(im, np.float32) / 127.5 - 1.0


def lpips(original: np.ndarray, changed: np.ndarray, net: str = 'alexnet',
          size: int = LPIPS_SIZE) -> float:
  """LPIPS (``net``) of two uint8 RGB crops, each resized to size x size first."""
  a, b = _uint8_pair(original, changed)
  x0 = jnp.asarray(_lpips_input(a, size)[None])
  x1 = jnp.asarray(_lpips_input(b, size)[None])
  return float(lpips_lib.lpips_distance(x0, x1, net)[0])


def region_measures(original: np.ndarray, changed: np.ndarray) -> dict[str, float | None]:
  """Every measure of ``MEASURES`` on two uint8 RGB crops of one region."""
  a, b = _uint8_pair(original, changed)
  out: dict[str, float | None] = {
      'ssimulacra2': ssimulacra2(a, b),
      'lpips': lpips(a, b),
      **colour_difference(a, b),
      'ssim': quality.ssim(a, b) if min(a.shape[:2]) >= quality.SSIM_WINDOW else None,
      'psnr': quality._finite(quality.psnr(a, b)),  # pylint: disable=protected-access
  }
  return out


def face_crop(rgb: np.ndarray, box: Box) -> np.ndarray:
  """The face region of ``rgb`` (the box grown by ``quality.FACE_REGION_GROW`` a side)."""
  rows, cols = quality.face_region(box, np.asarray(rgb).shape[:2])
  return np.asarray(rgb)[rows, cols]


def face_measures(original: np.ndarray, changed: np.ndarray, box: Box) -> dict[str, float | None]:
  """``region_measures`` of one face's region in two uint8 H x W x 3 photos."""
  a, b = _uint8_pair(original, changed)
  return region_measures(face_crop(a, box), face_crop(b, box))


def jpeg_reference(original: np.ndarray, box: Box,
                   qualities: Sequence[int] = JPEG_REFERENCES) -> dict[str, dict[str, float | None]]:
  """The measures of the same face after re-saving the original photo as JPEG at each
  quality (PIL, 4:2:0): {'jpeg75': {...}, 'jpeg50': {...}}."""
  a = np.asarray(original)
  return {f'jpeg{q}': face_measures(a, quality.jpeg_roundtrip(a, q), box) for q in qualities}


def worst_tenth(values: Iterable[float | None], higher_is_better: bool) -> float | None:
  """The mean of the worst 10% of ``values`` (at least one); None values are left out."""
  v = sorted(x for x in values if x is not None and math.isfinite(x))
  if not v:
    return None
  k = max(1, int(math.ceil(len(v) / 10)))
  worst = v[:k] if higher_is_better else v[-k:]
  return float(np.mean(worst))


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
  """Per measure present in ``rows``: {'mean', 'worst_tenth', 'n'} over the faces."""
  out = {}
  for m in MEASURES:
    vals = [r.get(m) for r in rows]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
      continue
    out[m] = {'mean': float(np.mean(vals)), 'worst_tenth': worst_tenth(vals, HIGHER_IS_BETTER[m]),
              'n': len(vals)}
  return out


def describe(m: dict[str, Any]) -> str:
  """One line: 'SSIMULACRA2 78.1, LPIPS 0.031, dE00 1.2 (p95 3.0), SSIM 0.970'."""
  def f(key: str, fmt: str) -> str:
    v = m.get(key)
    return 'n/a' if v is None else format(v, fmt)
  return (f"SSIMULACRA2 {f('ssimulacra2', '.1f')}, LPIPS {f('lpips', '.3f')}, "
          f"dE00 {f('ciede2000_mean', '.2f')} (p95 {f('ciede2000_p95', '.1f')}), "
          f"SSIM {f('ssim', '.3f')}")
