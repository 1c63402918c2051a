"""Helpers shared by the real-recognizer tests: GT photos detected and aligned to crops.

Crops are made at test time only, with a plain numpy/PIL alignment (dlib HOG detector, 68
landmarks, least-squares similarity onto the ArcFace template, bilinear, zero outside):
they are crops of real people and are never written to the repository.
"""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from fgsm_jax.data.detect import box_of_rect, hog_detector
from fgsm_jax.faces.arcface import arcface_crop_reference, arcface_points
from fgsm_jax.faces.detect import landmarks_68, load_landmarks_68


def gt_arcface_crops(gt_dir: pathlib.Path, people, shots) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
  """Crops of the largest HOG face of each GT photo: (uint8 N x 112 x 112 x 3, person, shot).

  Aligned by the package's NumPy reference (tests/faces/test_arcface.py checks it against
  PIL and OpenCV); what the tests using it check is the network, on real aligned faces.
  """
  detector, predictor = hog_detector(), load_landmarks_68()
  crops, who, which = [], [], []
  for person in people:
    for shot in shots:
      rgb = np.asarray(Image.open(gt_dir / f"s{person:02d}" / f"{shot:02d}.jpg").convert("RGB"))
      # As the project's judge: the photo at its size, twice the size only when nothing is found.
      faces = detector(rgb, 0) or detector(rgb, 1)
      if not faces:
        continue
      box = max(faces, key=lambda r: r.width() * r.height())
      pts = landmarks_68(rgb, box_of_rect(box), predictor)
      crops.append(arcface_crop_reference(rgb, arcface_points(pts), np.uint8))
      who.append(person)
      which.append(shot)
  return np.stack(crops), np.array(who), np.array(which)
