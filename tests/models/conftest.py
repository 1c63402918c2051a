"""Helpers shared by the real-recognizer tests: GT photos detected and aligned to crops.

Crops are made at test time only, with a plain numpy/PIL alignment (dlib HOG detector, 68
landmarks, least-squares similarity onto the ArcFace template, bilinear, zero outside):
they are crops of real people and are never written to the repository.
"""
from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np
from PIL import Image

from fgsm_jax.data.detect import box_of_rect, hog_detector
from fgsm_jax.faces.arcface import arcface_crop_reference, arcface_points
from fgsm_jax.faces.detect import landmarks_68, load_landmarks_68


def gt_faces(gt_dir: pathlib.Path, people, shots
             ) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
  """(photo uint8 RGB, five ArcFace points, person, shot) of the largest HOG face of each GT
  photo; photos where no face is found are left out."""
  detector, predictor = hog_detector(), load_landmarks_68()
  out = []
  for person in people:
    for shot in shots:
      rgb = np.asarray(Image.open(gt_dir / f's{person:02d}' / f'{shot:02d}.jpg').convert('RGB'))
      # As the project's judge: the photo at its size, twice the size only when nothing is found.
      found = detector(rgb, 0) or detector(rgb, 1)
      if not found:
        continue
      box = max(found, key=lambda r: r.width() * r.height())
      out.append((rgb, arcface_points(landmarks_68(rgb, box_of_rect(box), predictor)),
                  person, shot))
  return out


def gt_arcface_crops(gt_dir: pathlib.Path, people, shots) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
  """Crops of the largest HOG face of each GT photo: (uint8 N x 112 x 112 x 3, person, shot).

  Aligned by the package's NumPy reference (tests/faces/test_arcface.py checks it against
  PIL and OpenCV); what the tests using it check is the network, on real aligned faces.
  """
  found = gt_faces(gt_dir, people, shots)
  crops = [arcface_crop_reference(rgb, pts, np.uint8) for rgb, pts, _, _ in found]
  return (np.stack(crops), np.array([f[2] for f in found]), np.array([f[3] for f in found]))


def write_tarball(path: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
  """A gzipped tarball at ``path`` holding ``members`` (name -> bytes), as npm packs one."""
  with tarfile.open(path, 'w:gz') as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path
