"""fgsm_jax.data.detect: dlib HOG face boxes and face crops."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fgsm_jax.data import detect
from fgsm_jax.data.detect import crop_face, detect_faces, largest_face
from fgsm_jax.data.images import load_rgb


def test_finds_the_face_in_real_photos(gt_dir):
  for name in ['s01/01.jpg', 's25/08.jpg']:
    rgb = load_rgb(gt_dir / name)
    boxes = detect_faces(rgb)
    assert boxes, name
    areas = [(r - l) * (b - t) for l, t, r, b in boxes]
    assert areas == sorted(areas, reverse=True)
    left, top, right, bottom = boxes[0]
    assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480
    # GT faces fill a good part of the 640 x 480 frame.
    assert 60 <= right - left <= 400, boxes[0]
    assert largest_face(rgb) == boxes[0]
    face = crop_face(rgb, boxes[0])
    assert face.dtype == np.uint8 and face.shape == (160, 160, 3)


def test_no_face_in_a_blank_image():
  rgb = np.full((120, 160, 3), 128, np.uint8)
  assert detect_faces(rgb) == []
  assert detect_faces(rgb, upsample=0, retry_upsample=None) == []
  assert largest_face(rgb) is None


def test_retry_at_higher_upsample(monkeypatch):
  calls = []

  class FakeRect:

    def __init__(self, l, t, r, b):
      self.l, self.t, self.r, self.b = l, t, r, b

    def left(self): return self.l

    def top(self): return self.t

    def right(self): return self.r

    def bottom(self): return self.b

  def fake_detector(rgb, upsample):
    calls.append(upsample)
    # Found only at upsample 2: a small box and a big one partly outside the image.
    return [FakeRect(1, 2, 10, 12), FakeRect(-5, 20, 60, 70)] if upsample == 2 else []

  monkeypatch.setattr(detect, 'hog_detector', lambda: fake_detector)
  rgb = np.zeros((50, 40, 3), np.uint8)
  # dlib rectangles are inclusive, and so are ours, clipped to the image (last column 39,
  # last row 49).
  assert detect_faces(rgb) == [(0, 20, 39, 49), (1, 2, 10, 12)]
  assert calls == [1, 2]
  calls.clear()
  assert detect_faces(rgb, retry_upsample=None) == []
  assert calls == [1]


def test_crop_without_margin_is_the_box_resized():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
  box = (20, 10, 79, 69)  # inclusive: columns 20..79, rows 10..69
  expected = np.asarray(Image.fromarray(rgb[10:70, 20:80]).resize((32, 32), Image.BILINEAR))
  np.testing.assert_array_equal(crop_face(rgb, box, size=32, margin=0), expected)


def test_crop_margin_grows_the_box_and_clips_to_the_image():
  rgb = np.zeros((100, 100, 3), np.uint8)
  rgb[40:60, 40:60] = 255  # The 'face': a white square.
  # margin 0.5 on a 20 px box: 40 px wide crop, the white square is its middle half.
  face = crop_face(rgb, (40, 40, 59, 59), size=40, margin=0.5)
  assert face[15:25, 15:25].min() == 255
  assert face[:8].max() == 0 and face[:, -8:].max() == 0
  # At the corner, the grown box is clipped: from 0 to 60 + 0.5 * 60 = 90.
  rgb = np.zeros((100, 100, 3), np.uint8)
  rgb[:60, :60] = 255
  face = crop_face(rgb, (0, 0, 59, 59), size=90, margin=0.5)
  assert face[:55, :55].min() == 255 and face[:, 65:].max() == 0


@pytest.mark.parametrize('rgb,box,words', [
    (np.zeros((10, 10, 3), np.float32), (0, 0, 5, 5), 'uint8'),
    (np.zeros((10, 10), np.uint8), (0, 0, 5, 5), 'H x W x 3'),
    (np.zeros((10, 10, 3), np.uint8), (5, 5, 4, 8), 'positive area'),
    (np.zeros((10, 10, 3), np.uint8), (20, 20, 30, 30), 'outside'),
])
def test_crop_rejects_bad_input(rgb, box, words):
  with pytest.raises(ValueError, match=words):
    crop_face(rgb, box)


def test_detect_rejects_bad_input():
  with pytest.raises(ValueError, match='uint8'):
    detect_faces(np.zeros((10, 10, 3), np.float32))
  with pytest.raises(ValueError, match='upsample'):
    detect_faces(np.zeros((10, 10, 3), np.uint8), upsample=-1)


def test_box_is_dlibs_inclusive_rectangle():
  dlib = pytest.importorskip('dlib')
  rect = dlib.rectangle(3, 4, 12, 20)
  box = detect.box_of_rect(rect)
  assert box == (3, 4, 12, 20)
  # dlib counts both end pixels: width() is right - left + 1.
  assert detect.box_size(box) == (rect.width(), rect.height()) == (10, 17)
  assert detect.box_size((5, 5, 4, 8)) == (0, 4)


def test_crop_of_inclusive_box_is_the_old_exclusive_crop():
  """The boxes became inclusive; the crops (and so the built datasets) stay the same: the
  crop of an inclusive box equals the crop the old exclusive code cut from right + 1."""
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)
  for left, top, right, bottom in [(10, 5, 49, 60), (0, 0, 109, 89), (33, 20, 34, 21)]:
    w, h = right + 1 - left, bottom + 1 - top
    dx, dy = 0.2 * w, 0.2 * h
    l, t = max(0, int(round(left - dx))), max(0, int(round(top - dy)))
    r, b = min(110, int(round(right + 1 + dx))), min(90, int(round(bottom + 1 + dy)))
    expected = np.asarray(Image.fromarray(rgb[t:b, l:r]).resize((16, 16), Image.BILINEAR))
    np.testing.assert_array_equal(crop_face(rgb, (left, top, right, bottom), size=16),
                                  expected)
