"""Shared fixtures of the protection tests."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.data import images
from fgsm_jax.models.dlib_resnet import load_dlib_resnet
from fgsm_jax.protect import photo, recognizer, warp


@pytest.fixture(scope='module')
def face_window(gt_dir):
  """One GT face's window (s07/04) with a 4-level feathered budget, its dlib chip geometry,
  clean descriptor and dlib's port parameters."""
  rgb = images.load_rgb(gt_dir / 's07' / '04.jpg')
  face = recognizer.describe(rgb)[0]
  chip = photo._chip(face.landmarks5, rgb.shape[:2])
  region = photo._window(face.box, chip, None, rgb.shape[:2], 0.3, 0.2)
  t, l = region.top, region.left
  window = jnp.asarray(rgb[t:t + region.size[0], l:l + region.size[1]] / 255.0, jnp.float32)
  mask = np.asarray(photo.faces_lib.feather_mask(region))
  budget = jnp.asarray(mask * 4 / 255.0, jnp.float32)
  return dict(window=window, budget=budget, geom=warp.geometry(chip, t, l, region.size),
              ref=jnp.asarray(face.descriptor_of('dlib')), n_down=chip.n_down,
              params=load_dlib_resnet())
