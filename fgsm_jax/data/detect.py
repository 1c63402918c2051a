"""Face boxes, dlib's HOG frontal detector, and cropping to a fixed-size face image.

`Box` and `hog_detector` are the package's one box type and one detector loader: the
dataset builders here, `fgsm_jax.faces.detect`, `fgsm_jax.protect.recognizer`,
`fgsm_jax.faces.regions` and `fgsm_jax.quality` all import them from this module (the
lowest layer that detects faces), so every box means the same pixels everywhere.

The original experiment cropped faces with MTCNN to 160 x 160 (one box per photo). We use
dlib's HOG + linear SVM detector instead (it ships with the dlib wheel, no model file to
fetch). Its boxes are square and tight -- roughly eyebrows to lower lip -- so `crop_face`
grows them by a margin to include forehead and chin, closer to an MTCNN crop.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from PIL import Image

# (left, top, right, bottom) in pixels, inclusive as dlib's rectangles: the box covers
# columns left..right and rows top..bottom, so it is right - left + 1 pixels wide.
Box = tuple[int, int, int, int]
# Finds the one face to use in an RGB uint8 H x W x 3 image, or None.
FaceFinder = Callable[[np.ndarray], 'Box | None']

# Fraction of the box's width (height) added on the left and right (top and bottom).
DEFAULT_MARGIN = 0.2
CROP_SIZE = 160


def box_size(box: Box) -> tuple[int, int]:
  """(width, height) in pixels of an inclusive box (both <= 0 for an empty box)."""
  left, top, right, bottom = box
  return right - left + 1, bottom - top + 1


def box_of_rect(rect) -> Box:
  """The Box of a dlib rectangle (same numbers: dlib's rectangles are inclusive too)."""
  return (int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom()))


@functools.cache
def hog_detector():
  """dlib's HOG + linear SVM frontal face detector, built once per process.

  Constructing it loads the SVM weights (~0.1 s); it ships inside the dlib wheel, so no
  model file can be missing. Called as ``hog_detector()(rgb_uint8, upsample)``.
  """
  import dlib  # pylint: disable=import-outside-toplevel
  return dlib.get_frontal_face_detector()


def _check_rgb(rgb: np.ndarray) -> None:
  if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
          and rgb.shape[2] == 3):
    raise ValueError(
        'expected an RGB image as uint8 array H x W x 3, got '
        f'{getattr(rgb, "dtype", type(rgb).__name__)} {getattr(rgb, "shape", "")}')


def detect_faces(rgb: np.ndarray, upsample: int = 1, *,
                 retry_upsample: int | None = 2) -> list[Box]:
  """Finds frontal faces with dlib's HOG detector.

  Args:
    rgb: uint8 H x W x 3 image.
    upsample: how many times dlib doubles the image before scanning (finds faces down to
      about 80 / 2**upsample pixels wide; each step costs ~4x time).
    retry_upsample: if nothing is found at `upsample`, scan again at this level (skipped
      when None or not above `upsample`).

  Returns:
    Boxes (left, top, right, bottom), inclusive pixels, clipped to the image, largest
    area first.
  """
  _check_rgb(rgb)
  if upsample < 0:
    raise ValueError(f'upsample must be >= 0, got {upsample}')
  rgb = np.ascontiguousarray(rgb)
  levels = [upsample]
  if retry_upsample is not None and retry_upsample > upsample:
    levels.append(retry_upsample)
  height, width = rgb.shape[:2]
  boxes: list[Box] = []
  for level in levels:
    for r in hog_detector()(rgb, level):
      left, top, right, bottom = box_of_rect(r)
      box = (max(0, left), max(0, top), min(width - 1, right), min(height - 1, bottom))
      if min(box_size(box)) > 0:
        boxes.append(box)
    if boxes:
      break
  return sorted(boxes, key=lambda b: box_size(b)[0] * box_size(b)[1], reverse=True)


def largest_face(rgb: np.ndarray) -> Box | None:
  """The largest face found by `detect_faces` (upsample 1, retry at 2), or None."""
  boxes = detect_faces(rgb)
  return boxes[0] if boxes else None


def crop_face(rgb: np.ndarray, box: Box, size: int = CROP_SIZE,
              margin: float = DEFAULT_MARGIN) -> np.ndarray:
  """Cuts out a face and resizes it to size x size.

  Args:
    rgb: uint8 H x W x 3 image.
    box: (left, top, right, bottom), inclusive pixels (a `Box`).
    size: output side in pixels.
    margin: fraction of the box's width added on each side horizontally, and of its
      height vertically, before clipping to the image (0.2: a 100 px box becomes 140 px).

  Returns:
    uint8 size x size x 3. The grown box is clipped to the image, not padded, so a face
    at the border is stretched slightly; resampling is bilinear with antialiasing.
  """
  _check_rgb(rgb)
  if size < 1:
    raise ValueError(f'size must be >= 1, got {size}')
  if margin < 0:
    raise ValueError(f'margin must be >= 0, got {margin}')
  left, top, right, bottom = box
  box_w, box_h = box_size(box)
  if box_w <= 0 or box_h <= 0:
    raise ValueError(f'expected box (left, top, right, bottom) with positive area, got {box}')
  dx, dy = margin * box_w, margin * box_h
  height, width = rgb.shape[:2]
  # Exclusive crop ends from here on: the box's last column is right, so its end is right + 1.
  l = max(0, int(round(left - dx)))
  t = max(0, int(round(top - dy)))
  r = min(width, int(round(right + 1 + dx)))
  b = min(height, int(round(bottom + 1 + dy)))
  if r <= l or b <= t:
    raise ValueError(f'box {box} lies outside the {width}x{height} image')
  face = Image.fromarray(np.ascontiguousarray(rgb[t:b, l:r]))
  # PIL's BILINEAR resize widens its kernel when shrinking, i.e. it antialiases.
  face = face.resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(face, dtype=np.uint8)
