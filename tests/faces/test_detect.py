"""find_faces: dlib's detector and 5-point landmarks, and the empty cases."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fgsm_jax import faces

dlib = pytest.importorskip('dlib')


def test_finds_the_face_with_five_landmarks_inside_its_box(gt_dir):
  img = np.asarray(Image.open(gt_dir / 's02' / '01.jpg').convert('RGB'))
  found = faces.find_faces(img)
  assert len(found) == 1
  face = found[0]
  left, top, right, bottom = face.box
  assert face.landmarks.shape == (5, 2)
  assert ((face.landmarks[:, 0] > left) & (face.landmarks[:, 0] < right)).all()
  assert ((face.landmarks[:, 1] > top) & (face.landmarks[:, 1] < bottom)).all()
  # Eye corners above the nose; the image-right eye (points 0, 1) right of the other.
  assert (face.landmarks[:4, 1] < face.landmarks[4, 1]).all()
  assert face.landmarks[1, 0] > face.landmarks[3, 0]
  assert face.chip.photo_hw == img.shape[:2]
  # The same landmarks dlib's own predictor gives on dlib's box.
  models = faces.load_face_models()
  shape = models.predictor(img, dlib.rectangle(*face.box))
  np.testing.assert_array_equal(face.landmarks,
                                [(shape.part(i).x, shape.part(i).y) for i in range(5)])


def test_grey_photo_is_accepted(orl_dir):
  grey = np.asarray(Image.open(orl_dir / 's1' / '1.pgm'))
  assert grey.ndim == 2
  found = faces.find_faces(grey, upsample=2)
  # One face, found exactly where it is found on the same photo as RGB.
  assert len(found) == 1
  (rgb_face,) = faces.find_faces(np.stack([grey] * 3, axis=-1), upsample=2)
  assert found[0].chip.photo_hw == grey.shape
  assert found[0].box == rgb_face.box
  np.testing.assert_array_equal(found[0].landmarks, rgb_face.landmarks)


@pytest.mark.parametrize('kind', ['flat', 'ramp', 'noise'])
def test_photo_without_a_face_gives_an_empty_list(kind):
  rng = np.random.default_rng(0)
  if kind == 'flat':
    img = np.full((240, 320, 3), 128, np.uint8)
  elif kind == 'ramp':
    img = np.broadcast_to(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None],
                          (240, 320, 3)).copy()
  else:
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
  assert faces.find_faces(img) == []


def test_bad_input_raises_a_one_line_value_error():
  with pytest.raises(ValueError, match='uint8'):
    faces.find_faces(np.zeros((50, 50, 3), np.float32))
  with pytest.raises(ValueError, match='H x W x 3'):
    faces.find_faces(np.zeros((50, 50, 4), np.uint8))
  with pytest.raises(ValueError, match='upsample'):
    faces.find_faces(np.zeros((50, 50, 3), np.uint8), upsample=-1)
