"""Perceptual measures on real GT face regions: SSIMULACRA2 equals the package on saved
files, CIEDE2000 equals scikit-image's, and each ranks changes as a person would."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fgsm_jax import perceptual, quality


@pytest.fixture(scope='module')
def face(gt_dir) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """A GT photo (uint8) and its face box (from real dlib's detector)."""
  from fgsm_jax.protect import recognizer
  rgb = np.asarray(Image.open(gt_dir / 's05' / '03.jpg').convert('RGB'))
  faces = recognizer.describe(rgb, descriptors=False)
  assert faces, 'dlib finds the face of s05/03'
  return rgb, faces[0].box


def _sign_noise(rgb: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.clip(rgb.astype(int) + level * rng.choice([-1, 1], rgb.shape), 0, 255).astype(np.uint8)


def test_ssimulacra2_equals_the_package_on_saved_files(face, tmp_path):
  from ssimulacra2 import compute_ssimulacra2
  rgb, box = face
  a = perceptual.face_crop(rgb, box)
  b = perceptual.face_crop(_sign_noise(rgb, 3), box)
  Image.fromarray(a).save(tmp_path / 'a.png')
  Image.fromarray(b).save(tmp_path / 'b.png')
  assert perceptual.ssimulacra2(a, b) == compute_ssimulacra2(str(tmp_path / 'a.png'),
                                                              str(tmp_path / 'b.png'))
  assert perceptual.ssimulacra2(a, a) == pytest.approx(100.0)


def test_ciede2000_equals_scikit_image(face):
  from skimage import color
  rgb, box = face
  a = perceptual.face_crop(rgb, box)
  b = perceptual.face_crop(quality.jpeg_roundtrip(rgb, 50), box)
  lab_a, lab_b = color.rgb2lab(a), color.rgb2lab(b)
  np.testing.assert_allclose(perceptual.ciede2000(lab_a, lab_b),
                             color.deltaE_ciede2000(lab_a, lab_b), atol=1e-9)
  # Our sRGB -> CIELAB differs from scikit-image's only in the fourth digit of the constants.
  np.testing.assert_allclose(perceptual.srgb_to_lab(a), lab_a, atol=0.01)
  # Grey has no hue: the hue terms' special cases (C' = 0) hold.
  grey = np.array([[50.0, 0.0, 0.0]])
  assert perceptual.ciede2000(grey, np.array([[60.0, 0.0, 0.0]]))[0] == pytest.approx(
      float(color.deltaE_ciede2000(grey, np.array([[60.0, 0.0, 0.0]]))[0]))


def test_identical_faces_score_perfectly(face):
  rgb, box = face
  m = perceptual.face_measures(rgb, rgb.copy(), box)
  assert m['ssimulacra2'] == pytest.approx(100.0)
  assert m['lpips'] == pytest.approx(0.0, abs=1e-7)
  assert m['ciede2000_mean'] == 0.0 and m['ciede2000_p95'] == 0.0
  assert m['ssim'] == pytest.approx(1.0) and m['psnr'] is None


def test_measures_rank_jpeg75_above_8_level_noise_and_fall_with_noise(face):
  rgb, box = face
  jpeg75 = perceptual.jpeg_reference(rgb, box)['jpeg75']
  noisy = [perceptual.face_measures(rgb, _sign_noise(rgb, level), box) for level in (2, 4, 8)]
  # A JPEG 75 re-save is less visible than +-8 grey levels of noise, by both measures.
  assert jpeg75['ssimulacra2'] > noisy[2]['ssimulacra2']
  assert jpeg75['lpips'] < noisy[2]['lpips']
  # More noise reads worse on every measure.
  for m in ('ssimulacra2', 'ssim'):
    assert noisy[0][m] > noisy[1][m] > noisy[2][m]
  for m in ('lpips', 'ciede2000_mean', 'ciede2000_p95'):
    assert noisy[0][m] < noisy[1][m] < noisy[2][m]


def test_jpeg_references_of_the_face_region(face):
  rgb, box = face
  ref = perceptual.jpeg_reference(rgb, box)
  assert set(ref) == {'jpeg75', 'jpeg50'}
  # Quality 50 loses more than 75, and the input photo is left as it was.
  before = rgb.copy()
  assert ref['jpeg50']['ssimulacra2'] < ref['jpeg75']['ssimulacra2']
  assert ref['jpeg50']['lpips'] > ref['jpeg75']['lpips']
  assert np.array_equal(rgb, before)


def test_worst_tenth_and_summary():
  assert perceptual.worst_tenth([90, 80, 70, None], higher_is_better=True) == 70
  assert perceptual.worst_tenth(list(range(20)), higher_is_better=False) == 18.5
  assert perceptual.worst_tenth([], higher_is_better=True) is None
  s = perceptual.summarize([{'ssimulacra2': 80.0, 'lpips': 0.01}, {'ssimulacra2': 60.0, 'lpips': 0.03}])
  assert s['ssimulacra2'] == {'mean': 70.0, 'worst_tenth': 60.0, 'n': 2}
  assert s['lpips']['worst_tenth'] == 0.03 and 'ssim' not in s


def test_bad_inputs_are_refused_with_what_was_expected():
  with pytest.raises(ValueError, match='expected uint8 images'):
    perceptual.ssimulacra2(np.zeros((9, 9, 3)), np.zeros((9, 9, 3)))
  with pytest.raises(ValueError, match='of one shape'):
    perceptual.lpips(np.zeros((9, 9, 3), np.uint8), np.zeros((9, 8, 3), np.uint8))
  with pytest.raises(ValueError, match='at least 8 x 8'):
    perceptual.ssimulacra2(np.zeros((4, 9, 3), np.uint8), np.zeros((4, 9, 3), np.uint8))
