"""Image quality of a protected photo against its original: PSNR, SSIM, max change, regions.

All functions take uint8 (or float on the 0-255 scale) arrays H x W x C (or H x W) and work
in NumPy float64; nothing here is jitted (it runs once per photo, on the host).

SSIM follows Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
visibility to structural similarity", IEEE TIP 2004: an 11 x 11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, dynamic range L = 255, statistics over 'valid' window positions only
(no padding, as the authors' reference code). Colour images are scored per RGB channel and
the channel scores averaged -- stricter than scoring luminance alone, which ignores
perturbations that change colour but not brightness.

The degradations (`DEGRADATIONS`: JPEG re-saves at quality 75 and 50, halving and back, a
3 x 3 median filter, a Gaussian blur of sigma 1) are what the robustness figures apply to a
protected photo before recognising it again: cheap defences an observer may apply.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter

from fgsm_jax.data.detect import Box, box_size

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0
# The face region of the figures: the detector's box grown by this fraction of its width
# (height) on the left and right (top and bottom).
FACE_REGION_GROW = 0.25


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  a = np.asarray(a)
  b = np.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f'expected two images of one shape, got {a.shape} and {b.shape}')
  if a.ndim not in (2, 3) or a.size == 0:
    raise ValueError(f'expected images H x W or H x W x C, got shape {a.shape}')
  return a.astype(np.float64), b.astype(np.float64)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
  """Largest absolute pixel change, 0-255 units."""
  a, b = _pair(a, b)
  return float(np.max(np.abs(a - b)))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
  """Peak signal-to-noise ratio in dB, 10 log10(L^2 / MSE); inf for identical images."""
  a, b = _pair(a, b)
  mse = float(np.mean((a - b) ** 2))
  if mse == 0.0:
    return math.inf
  return 10.0 * math.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """Normalised 1-D Gaussian of `size` taps (the 2-D window is its outer product)."""
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  w = np.exp(-x ** 2 / (2 * sigma ** 2))
  return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """Separable 'valid' correlation of H x W x C with the window w (n,) on both axes."""
  n = len(w)
  rows = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ w  # (H-n+1) x W x C
  return np.lib.stride_tricks.sliding_window_view(rows, n, axis=1) @ w


def local_mean(x: np.ndarray, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA
               ) -> np.ndarray:
  """SSIM's local mean of H x W x C: the Gaussian-weighted mean over each 'valid' window
  position, (H - window + 1) x (W - window + 1) x C (pad first for a same-size map)."""
  return _filter_valid(np.asarray(x, np.float64), gaussian_window(window, sigma))


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE,
             window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """Local SSIM at each valid window position, (H - 10) x (W - 10) x C.

  Raises:
    ValueError: shapes differ, or the image is smaller than the window.
  """
  a, b = _pair(a, b)
  if a.ndim == 2:
    a, b = a[..., None], b[..., None]
  if a.shape[0] < window or a.shape[1] < window:
    raise ValueError(f'SSIM needs images of at least {window} x {window}, got {a.shape[:2]}')
  w = gaussian_window(window, sigma)
  c1 = (SSIM_K1 * data_range) ** 2
  c2 = (SSIM_K2 * data_range) ** 2
  mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
  var_a = _filter_valid(a * a, w) - mu_a ** 2
  var_b = _filter_valid(b * b, w) - mu_b ** 2
  cov = _filter_valid(a * b, w) - mu_a * mu_b
  return (((2 * mu_a * mu_b + c1) * (2 * cov + c2))
          / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
  """Mean SSIM (Wang et al. 2004), averaged over window positions and channels; 1 = equal."""
  return float(np.mean(ssim_map(a, b, data_range)))


def face_region(box: Box, image_hw: tuple[int, int],
                grow: float = FACE_REGION_GROW) -> tuple[slice, slice]:
  """(rows, cols) slices of a face box grown by `grow` of its size on each side, clipped.

  Args:
    box: (left, top, right, bottom), inclusive pixel coordinates (dlib's rectangles).
    image_hw: (height, width) of the photo.
  """
  left, top, right, bottom = box
  w, h = box_size(box)
  if w <= 0 or h <= 0:
    raise ValueError(f'expected a box (left, top, right, bottom) with positive area, got {box}')
  l = max(0, int(math.floor(left - grow * w)))
  t = max(0, int(math.floor(top - grow * h)))
  r = min(image_hw[1], int(math.ceil(right + 1 + grow * w)))
  b = min(image_hw[0], int(math.ceil(bottom + 1 + grow * h)))
  if r <= l or b <= t:
    raise ValueError(f'box {box} lies outside the {image_hw[0]} x {image_hw[1]} image')
  return slice(t, b), slice(l, r)


def compare(original: np.ndarray, changed: np.ndarray,
            boxes: list[Box] | tuple[Box, ...] = ()) -> dict[str, float | None]:
  """PSNR, SSIM and max change over the whole photo and over the face regions.

  Args:
    original, changed: uint8 H x W x 3 photos.
    boxes: face boxes in the original; the face figures pool every face region (box grown
      by 25% a side; regions under 11 pixels a side are skipped).

  Returns:
    {'psnr', 'ssim', 'max_change', 'face_psnr', 'face_ssim', 'face_max_change'}; PSNR is
    None where the images are equal (infinite), face figures None without a usable box.
  """
  out: dict[str, float | None] = {
      'psnr': _finite(psnr(original, changed)),
      'ssim': ssim(original, changed),
      'max_change': max_abs_diff(original, changed),
      'face_psnr': None, 'face_ssim': None, 'face_max_change': None,
  }
  regions = []
  for box in boxes:
    rows, cols = face_region(box, original.shape[:2])
    if rows.stop - rows.start >= SSIM_WINDOW and cols.stop - cols.start >= SSIM_WINDOW:
      regions.append((rows, cols))
  if regions:
    # Pool the per-pixel statistics over the faces (weighted by area), not the means.
    sq, n, smaps, peak = 0.0, 0, [], 0.0
    for rows, cols in regions:
      a = original[rows, cols].astype(np.float64)
      b = changed[rows, cols].astype(np.float64)
      sq += float(np.sum((a - b) ** 2))
      n += a.size
      smaps.append(ssim_map(a, b).ravel())
      peak = max(peak, float(np.max(np.abs(a - b))))
    mse = sq / n
    out['face_psnr'] = None if mse == 0 else 10 * math.log10(DATA_RANGE ** 2 / mse)
    out['face_ssim'] = float(np.mean(np.concatenate(smaps)))
    out['face_max_change'] = peak
  return out


def _finite(v: float) -> float | None:
  return v if math.isfinite(v) else None


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
  """The photo after saving as JPEG at `quality` (PIL/libjpeg, 4:2:0 chroma) and decoding."""
  if not 1 <= quality <= 100:
    raise ValueError(f'JPEG quality must be in [1, 100], got {quality}')
  buf = io.BytesIO()
  Image.fromarray(_as_uint8_rgb(rgb)).save(buf, format='JPEG', quality=quality)
  buf.seek(0)
  with Image.open(buf) as im:
    return np.asarray(im.convert('RGB'), dtype=np.uint8)


def resize_half_roundtrip(rgb: np.ndarray) -> np.ndarray:
  """The photo shrunk to half its size and enlarged back, both with PIL's bilinear filter.

  Shrinking antialiases (PIL widens the bilinear kernel to 4 taps, weights 1 3 3 1 / 8);
  the half-size photo is 8-bit, as a re-shared photo would be. Odd sizes: the half is
  rounded down and the way back restores the original size.
  """
  rgb = _as_uint8_rgb(rgb)
  h, w = rgb.shape[:2]
  half = Image.fromarray(rgb).resize((max(1, w // 2), max(1, h // 2)),
                                     Image.Resampling.BILINEAR)
  return np.asarray(half.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def median3(rgb: np.ndarray) -> np.ndarray:
  """The photo through a 3 x 3 median filter per channel (PIL's ``MedianFilter(3)``): the
  cheapest denoiser an observer may run before recognition."""
  return np.asarray(Image.fromarray(_as_uint8_rgb(rgb)).filter(ImageFilter.MedianFilter(3)),
                    dtype=np.uint8)


def blur1(rgb: np.ndarray) -> np.ndarray:
  """The photo blurred by a Gaussian of sigma 1 pixel (PIL's ``GaussianBlur(radius=1)``, whose
  radius is the standard deviation; PIL approximates it by repeated box blurs)."""
  return np.asarray(Image.fromarray(_as_uint8_rgb(rgb)).filter(ImageFilter.GaussianBlur(1)),
                    dtype=np.uint8)


# What an observer may do to a photo before recognising it (name -> uint8 photo -> uint8
# photo of the same size): re-saves, resizing and cheap filters. 'none': the file as saved.
DEGRADATIONS = {
    'none': lambda rgb: rgb,
    'jpeg75': lambda rgb: jpeg_roundtrip(rgb, 75),
    'resize_half': resize_half_roundtrip,
    'jpeg50': lambda rgb: jpeg_roundtrip(rgb, 50),
    'median3': median3,
    'blur1': blur1,
}


def _as_uint8_rgb(rgb: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f'expected a uint8 image H x W x 3, got {rgb.dtype} {rgb.shape}')
  return np.ascontiguousarray(rgb)
