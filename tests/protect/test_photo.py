"""Whole-photo protection: every face, feathered regions, untouched pixels elsewhere."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fgsm_jax.data import images
from fgsm_jax.models.dlib_resnet import load_dlib_resnet
from fgsm_jax.protect import attack, photo, recognizer
from fgsm_jax.protect.presets import Preset

# Few steps, one round: enough to see the descriptor move, cheap to run.
QUICK = Preset(name='quick', summary='test', eps=6.0, steps=4, rounds=1,
               attack=attack.AttackConfig(step=0.4, eot_samples=1))


@pytest.fixture(scope='module')
def params():
  return load_dlib_resnet()


def _protect(rgb, params, preset=QUICK, key=0):
  return photo.protect_photo(rgb, preset, jax.random.key(key),
                             recognizers=[photo.Recognizer('dlib', params)])


@pytest.mark.slow
def test_pixels_outside_the_feathered_regions_are_unchanged(gt_dir, params):
  rgb = images.load_rgb(gt_dir / 's10' / '02.jpg')
  protected, results = _protect(rgb, params)
  assert len(results) == 1 and protected.dtype == np.uint8 and protected.shape == rgb.shape
  clean = recognizer.describe(rgb)
  chip = photo._chip(clean[0].landmarks5, rgb.shape[:2])
  region = photo._window(clean[0].box, chip, None, rgb.shape[:2], QUICK.margin,
                         QUICK.feather)
  budget = photo.budget_map(rgb, [region], QUICK)[..., 0]
  changed = np.any(protected != rgb, axis=-1)
  assert changed.sum() > 1000
  assert not np.any(changed & (budget == 0))  # bit-identical outside the region
  diff = np.abs(protected.astype(int) - rgb.astype(int)).max(axis=-1)
  assert np.all(diff <= np.ceil(budget * 255 + 0.5))
  # Feathered: the budget falls gradually to 0, with no hard square edge.
  assert budget.max() == pytest.approx(QUICK.eps / 255)
  step = max(np.abs(np.diff(budget, axis=0)).max(), np.abs(np.diff(budget, axis=1)).max())
  assert step < 0.15 * budget.max()
  t, l = region.top, region.left
  h, w = region.size
  border = np.concatenate([budget[t, l:l + w], budget[t + h - 1, l:l + w],
                           budget[t:t + h, l], budget[t:t + h, l + w - 1]])
  assert np.all(border == 0)


@pytest.mark.slow
def test_every_face_of_a_photo_is_protected(gt_dir, params):
  # Two people side by side in one 1280 x 480 photo.
  rgb = np.concatenate([images.load_rgb(gt_dir / 's04' / '01.jpg'),
                        images.load_rgb(gt_dir / 's22' / '01.jpg')], axis=1)
  clean = recognizer.describe(rgb)
  assert len(clean) == 2
  protected, results = _protect(rgb, params)
  assert len(results) == 2
  for face, res in zip(clean, results):
    assert res.box == face.box and res.rounds == 1
    assert res.distance is not None and res.distance > 0.3  # clean: 0
  # Both halves changed, each around its own face.
  assert np.any(protected[:, :640] != rgb[:, :640]) and np.any(protected[:, 640:] != rgb[:, 640:])


def test_a_photo_without_a_face_is_refused(params):
  flat = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3))
  with pytest.raises(photo.NoFaceError):
    _protect(flat, params)


@pytest.mark.slow
def test_same_key_same_result(gt_dir, params):
  rgb = images.load_rgb(gt_dir / 's10' / '02.jpg')
  a, _ = _protect(rgb, params, key=3)
  b, _ = _protect(rgb, params, key=3)
  np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_windows_of_one_bucket_share_one_compiled_attack(gt_dir, params):
  # GT's face windows run 240-432 px (s02: 288, s04: 352, s01: 432): 288 and 352 are padded
  # to the 384 bucket, 432 to 512, so three sizes compile the attack loop twice (before the
  # buckets: once per size, 7-14 s each). A config no other test uses: the count starts
  # from nothing.
  preset = dataclasses.replace(QUICK, steps=2,
                               attack=attack.AttackConfig(step=0.45, eot_samples=1))
  before = attack._run._cache_size()
  sizes = set()
  for person in ('s02', 's04', 's01'):
    rgb = images.load_rgb(gt_dir / person / '01.jpg')
    face = recognizer.describe(rgb)[0]
    chip = photo._chip(face.landmarks5, rgb.shape[:2])
    sizes.add(photo._window(face.box, chip, None, rgb.shape[:2], preset.margin,
                            preset.feather).size)
    _protect(rgb, params, preset)
  assert len(sizes) == 3
  assert {photo.bucket_side(*size) for size in sizes} == {384, 512}
  assert attack._run._cache_size() - before == 2


def test_bucket_ladder_is_coarse_but_wastes_at_most_about_half_the_area():
  # Every window side the fitting ladder can produce up to 8192 px lands in a bucket that
  # holds it, two buckets per doubling at most, and no bucket is more than 1.5x its
  # window's side past the smallest (256) -- the padded area is what a step pays for.
  sides = [s for s in photo.WINDOW_SIZES if s <= 8192]
  buckets = {photo.bucket_side(s, s) for s in sides}
  assert len(buckets) <= 11  # 256 ... 8192: 5 doublings, two rungs each
  assert all(photo.bucket_side(s, s - 16) >= s for s in sides)
  assert all(photo.bucket_side(s, s) <= max(256, 1.5 * s) for s in sides)
  with pytest.raises(ValueError, match='exceeds'):
    photo.bucket_side(10 ** 6, 1)
