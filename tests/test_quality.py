"""Image quality metrics: SSIM against a direct implementation of Wang et al. 2004, PSNR,
face regions, and the degradations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fgsm_jax import quality


def _ssim_direct(a: np.ndarray, b: np.ndarray) -> float:
  """SSIM by its definition, one window position and channel at a time."""
  w2 = np.outer(quality.gaussian_window(), quality.gaussian_window())
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  a, b = a.astype(np.float64), b.astype(np.float64)
  vals = []
  for c in range(a.shape[2]):
    for i in range(a.shape[0] - 10):
      for j in range(a.shape[1] - 10):
        x, y = a[i:i + 11, j:j + 11, c], b[i:i + 11, j:j + 11, c]
        mx, my = np.sum(w2 * x), np.sum(w2 * y)
        vx, vy = np.sum(w2 * (x - mx) ** 2), np.sum(w2 * (y - my) ** 2)
        cov = np.sum(w2 * (x - mx) * (y - my))
        vals.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
  return float(np.mean(vals))


def test_ssim_equals_the_definition():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (20, 23, 3)).astype(np.uint8)
  b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
  assert quality.ssim(a, b) == pytest.approx(_ssim_direct(a, b), abs=1e-9)
  assert quality.ssim_map(a, b).shape == (10, 13, 3)


def test_ssim_of_constant_images_is_the_luminance_term():
  a = np.full((16, 16, 3), 100, np.uint8)
  b = np.full((16, 16, 3), 120, np.uint8)
  c1 = (0.01 * 255) ** 2
  assert quality.ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1))


def test_identical_images_score_perfectly_and_noise_lowers_ssim():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
  assert quality.ssim(a, a) == pytest.approx(1.0)
  assert math.isinf(quality.psnr(a, a))
  assert quality.max_abs_diff(a, a) == 0
  small = np.clip(a.astype(int) + rng.integers(-2, 3, a.shape), 0, 255).astype(np.uint8)
  large = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
  assert 1.0 > quality.ssim(a, small) > quality.ssim(a, large)
  assert quality.ssim(a, large) == pytest.approx(quality.ssim(large, a))


def test_psnr_and_max_change_values():
  a = np.zeros((8, 8, 3), np.uint8)
  b = a.copy()
  b[0, 0, 0] = 16  # MSE = 256 / 192
  assert quality.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (256 / 192)))
  assert quality.max_abs_diff(a, b) == 16


def test_shapes_are_checked():
  with pytest.raises(ValueError, match='one shape'):
    quality.ssim(np.zeros((20, 20, 3)), np.zeros((20, 21, 3)))
  with pytest.raises(ValueError, match='at least 11'):
    quality.ssim(np.zeros((8, 20, 3)), np.zeros((8, 20, 3)))


def test_face_region_grows_the_box_and_clips_to_the_photo():
  rows, cols = quality.face_region((100, 50, 199, 149), (480, 640))
  assert (rows.start, rows.stop, cols.start, cols.stop) == (25, 175, 75, 225)
  rows, cols = quality.face_region((0, 0, 99, 99), (90, 640))
  assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 90, 0, 125)


def test_compare_pools_face_regions_and_reports_none_for_equal_images():
  rng = np.random.default_rng(2)
  a = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
  b = a.copy()
  b[20:30, 30:40] ^= 8  # a change inside the face region only
  out = quality.compare(a, b, [(30, 20, 39, 29)])
  assert out['face_ssim'] < out['ssim'] < 1.0
  assert out['face_max_change'] == out['max_change'] == 8
  same = quality.compare(a, a, [(30, 20, 39, 29)])
  assert same['psnr'] is None and same['face_psnr'] is None and same['face_ssim'] == 1.0
  assert quality.compare(a, b)['face_ssim'] is None


def test_degradations_keep_the_size_and_change_the_pixels():
  rng = np.random.default_rng(3)
  a = rng.integers(0, 256, (31, 42, 3)).astype(np.uint8)
  for name, fn in quality.DEGRADATIONS.items():
    out = fn(a)
    assert out.shape == a.shape and out.dtype == np.uint8, name
    assert (name == 'none') == np.array_equal(out, a), name
  flat = np.full((16, 16, 3), 77, np.uint8)
  assert np.array_equal(quality.resize_half_roundtrip(flat), flat)


def test_the_cheap_defences_are_what_they_are_named():
  assert set(quality.DEGRADATIONS) == {'none', 'jpeg75', 'resize_half', 'jpeg50', 'median3',
                                       'blur1'}
  flat = np.full((16, 16, 3), 77, np.uint8)
  for name in ('median3', 'blur1'):
    assert np.array_equal(quality.DEGRADATIONS[name](flat), flat), name
  # A 3 x 3 median removes an isolated speck and keeps a straight edge where it is.
  speck = flat.copy()
  speck[8, 8] = 255
  assert np.array_equal(quality.median3(speck), flat)
  edge = flat.copy()
  edge[:, 8:] = 200
  assert np.array_equal(quality.median3(edge), edge)
  # Blur of sigma 1: an impulse spreads to a bump whose spatial variance is 1 per axis
  # (measured 0.94 across, 0.87 down: PIL's box-blur approximation, rounded to 8 bits after
  # each pass; sigma 0.5 or 1.5 would give 0.25 or 2.25).
  dot = np.zeros((21, 21, 3), np.uint8)
  dot[10, 10] = 255
  w = quality.blur1(dot)[..., 0].astype(np.float64)
  yy, xx = np.mgrid[0:21, 0:21]
  for axis in (xx, yy):
    mean = (w * axis).sum() / w.sum()
    assert abs(mean - 10) < 1e-6
    assert 0.75 < (w * (axis - 10) ** 2).sum() / w.sum() < 1.25
  # JPEG 50 loses more than JPEG 75.
  rng = np.random.default_rng(4)
  img = np.clip(128 + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
  err = {q: np.abs(quality.DEGRADATIONS[q](img).astype(int) - img).mean()
         for q in ('jpeg75', 'jpeg50')}
  assert err['jpeg50'] > err['jpeg75'] > 0
