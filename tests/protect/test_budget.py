"""Budgets of the protection: the SSIM-shaped weight and the per-face eps ladder."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fgsm_jax import quality
from fgsm_jax.data import images
from fgsm_jax.protect import attack, photo, recognizer
from fgsm_jax.protect.presets import Preset

C2 = (0.03 * 255) ** 2


def _flat_and_textured(sd: float, seed: int = 0) -> np.ndarray:
  """96 x 192 x 3: left half flat grey, right half grey + Gaussian noise of sd ``sd``."""
  rng = np.random.default_rng(seed)
  img = np.full((96, 192, 3), 128.0)
  img[:, 96:] += rng.normal(0, sd, (96, 96, 3))
  return np.clip(np.round(img), 0, 255).astype(np.uint8)


def test_ssim_weight_respects_eps_and_grows_with_local_variance():
  img = _flat_and_textured(12.0)
  w = photo.ssim_weight(img, sd_full=30.0)
  assert w.shape == img.shape and w.dtype == np.float32
  assert w.max() <= 1.0 and w.min() > 0
  # Flat: exactly sqrt(C2 / (2 sd_full^2 + C2)), the formula's floor.
  assert np.allclose(w[20:-20, 10:80], np.sqrt(C2 / (2 * 30.0 ** 2 + C2)), rtol=1e-5)
  # Textured (sd 12 < sd_full): larger, by about sqrt((2 * 144 + C2) / C2) = 2.4 (sample
  # variance of 11 x 11 windows: within 25%), and below 1.
  ratio = w[20:-20, 120:-20].mean() / w[20:-20, 10:80].mean()
  assert 0.75 * np.sqrt((2 * 144 + C2) / C2) < ratio < 1.25 * np.sqrt((2 * 144 + C2) / C2)
  # Texture beyond sd_full gets the full eps, never more.
  assert np.all(photo.ssim_weight(_flat_and_textured(60.0), 10.0)[20:-20, 120:-20] > 0.97)
  preset = Preset(name='t', summary='t', eps=6.0, steps=1, texture_sd=30.0)
  region = photo.faces_lib.Region(top=0, left=0, inner=(10.0, 10.0, 85.0, 181.0),
                                  feather=5.0, size=(96, 192))
  budget = photo.budget_map(img, [region], preset)
  assert budget.shape == img.shape and budget.max() <= 6.0 / 255 + 1e-7


def test_ssim_weight_spends_ssim_evenly_where_a_flat_budget_does_not():
  # Random +-budget changes: with the SSIM-shaped budget the flat and the textured half
  # lose about the same SSIM (the weight's purpose); with one eps the flat half loses
  # several times more.
  img = _flat_and_textured(12.0)
  signs = np.random.default_rng(1).choice([-1.0, 1.0], img.shape)

  def loss_by_half(budget):
    changed = np.clip(img + signs * budget, 0, 255)  # unrounded: the weight alone
    m = 1 - quality.ssim_map(img, changed)
    return m[15:-15, 10:70].mean(), m[15:-15, 110:-15].mean()

  flat, textured = loss_by_half(8.0 * photo.ssim_weight(img, 30.0))
  assert 0.7 < flat / textured < 1.4, (flat, textured)
  flat, textured = loss_by_half(np.full(img.shape, 4.0))
  assert flat / textured > 3, (flat, textured)


def test_bad_ladders_and_texture_settings_are_refused():
  for bad in ((5.0,), (7.0, 6.5), (300.0,)):
    with pytest.raises(ValueError, match='eps_ladder'):
      Preset(name='t', summary='t', eps=5.0, steps=1, eps_ladder=bad)
  with pytest.raises(ValueError, match='texture_sd'):
    Preset(name='t', summary='t', eps=5.0, steps=1, texture=0.5, texture_sd=10.0)
  p = Preset(name='t', summary='t', eps=5.0, steps=1, eps_ladder=(6.0, 7.5))
  assert [p.eps_at(k) for k in range(5)] == [5.0, 6.0, 7.5, 7.5, 7.5]


def test_ladder_raises_eps_only_for_faces_still_matched(gt_dir, monkeypatch):
  # Two faces; the check says which are still near their clean descriptor after each
  # round. The attack is replaced by a recorder of the budget each face's window gets.
  rgb = np.concatenate([images.load_rgb(gt_dir / 's04' / '01.jpg'),
                        images.load_rgb(gt_dir / 's22' / '01.jpg')], axis=1)
  clean = recognizer.describe(rgb)
  assert len(clean) == 2
  left = int(np.argmin([f.center[0] for f in clean]))
  seen: list[float] = []  # the eps of each window attacked, in call order

  def fake_window(members, params, window0, start, budget, *args, **kwargs):
    seen.append(round(float(np.max(budget)) * 255, 3))
    return start, np.zeros(len(members), np.float32)

  monkeypatch.setattr(photo.attack_lib, 'protect_window', fake_window)
  # Per round, per face (left, right): still matched (near) or not (far).
  script = iter([(True, False), (True, True), (True, True), (False, False)])

  def check(protected, names, known):
    if known is not None:  # completing a round's check: the same pixels, the same verdict
      return known
    near = next(script)
    out = []
    for i, f in enumerate(clean):
      shift = 0.0 if near[0 if i == left else 1] else 1.0
      out.append(f.with_descriptors(dlib=f.descriptor_of('dlib') + shift))
    return out

  preset = Preset(name='t', summary='t', eps=6.0, steps=1, extra_steps=1, rounds=4,
                  eps_ladder=(7.0, 8.0), attack=attack.AttackConfig(eot_samples=1))
  _, results = photo.protect_photo(rgb, preset, jax.random.key(0),
                                   recognizers=[photo.Recognizer('dlib', None)],
                                   models=object(), check=check, clean=clean)
  # Round 1: both at eps 6. Round 2: only the left face (still matched), one rung up.
  # Round 3: the left face two rungs up, the right one (matched again) one rung.
  # Round 4: both capped at the ladder's top. Faces are attacked in detector order.
  eps = {left: [6.0, 7.0, 8.0, 8.0], 1 - left: [6.0, None, 7.0, 8.0]}
  want = [eps[i][r] for r in range(4) for i in (0, 1) if eps[i][r] is not None]
  assert seen == want
  assert results[left].rounds == 4 and results[1 - left].rounds == 3


def test_a_lower_ladder_target_lets_faces_near_the_line_go_on_without_climbing(gt_dir,
                                                                              monkeypatch):
  # ladder_target 0.5 under target 1.8: a face at 1.0 thresholds is attacked again (under
  # the target) at the same eps; only a face under 0.5 climbs.
  rgb = np.concatenate([images.load_rgb(gt_dir / 's04' / '01.jpg'),
                        images.load_rgb(gt_dir / 's22' / '01.jpg')], axis=1)
  clean = recognizer.describe(rgb)
  left = int(np.argmin([f.center[0] for f in clean]))
  seen: list[float] = []

  def fake_window(members, params, window0, start, budget, *args, **kwargs):
    seen.append(round(float(np.max(budget)) * 255, 3))
    return start, np.zeros(len(members), np.float32)

  monkeypatch.setattr(photo.attack_lib, 'protect_window', fake_window)
  dim = len(clean[0].descriptor_of('dlib'))
  at = lambda ratio: ratio * recognizer.THRESHOLDS['dlib'] / np.sqrt(dim)  # shift per value
  script = iter([(at(0.0), at(1.0)), (at(0.0), at(1.0)), (at(3.0), at(3.0))])

  def check(protected, names, known):
    if known is not None:
      return known
    shifts = next(script)
    return [f.with_descriptors(dlib=f.descriptor_of('dlib') + shifts[0 if i == left else 1])
            for i, f in enumerate(clean)]

  preset = Preset(name='t', summary='t', eps=6.0, steps=1, extra_steps=1, rounds=3,
                  target=1.8, eps_ladder=(7.0, 8.0), ladder_target=0.5,
                  attack=attack.AttackConfig(eot_samples=1))
  photo.protect_photo(rgb, preset, jax.random.key(0),
                      recognizers=[photo.Recognizer('dlib', None)], models=object(),
                      check=check, clean=clean)
  # Rounds 2 and 3: both faces are under the target; the left one (0 thresholds) climbs,
  # the right one (1.0 thresholds: under 1.8, over 0.5) keeps eps 6.
  eps = {left: [6.0, 7.0, 8.0], 1 - left: [6.0, 6.0, 6.0]}
  assert seen == [eps[i][r] for r in range(3) for i in (0, 1)]


def test_ssim_budget_on_the_regions_equals_the_whole_photos_weight():
  # budget_map computes the weight only around the regions: the same values as the weight
  # of the whole photo times the mask (textured noise, so the weight varies everywhere).
  img = np.random.default_rng(2).integers(0, 256, (160, 240, 3)).astype(np.uint8)
  img[:, :120] //= 8  # a low-contrast half
  preset = Preset(name='t', summary='t', eps=10.0, steps=1, texture_sd=20.0)
  regions = [photo.faces_lib.Region(top=30, left=90, inner=(20.0, 20.0, 60.0, 60.0),
                                    feather=10.0, size=(80, 80)),
             photo.faces_lib.Region(top=100, left=0, inner=(5.0, 5.0, 40.0, 50.0),
                                    feather=8.0, size=(60, 60))]
  mask = photo.faces_lib.full_mask(img.shape[:2], regions)
  want = mask * (10.0 / 255) * photo.ssim_weight(img, 20.0)
  got = photo.budget_map(img, regions, preset)
  assert got.shape == img.shape
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
  assert np.all(got[mask[..., 0] == 0] == 0)


def test_eye_budget_scales_the_budget_over_the_eyes_only():
  rgb = np.full((120, 160, 3), 128, np.uint8)
  # dlib's 5 points: the corners of one eye, of the other, the nose base.
  pts = np.array([[100, 50], [84, 50], [56, 50], [72, 50], [78, 80]], np.float64)
  mask = photo.eye_mask(rgb.shape[:2], [pts], inside=0.25)
  assert mask.shape == (120, 160, 1)
  assert mask[50, 92, 0] == pytest.approx(0.25) and mask[50, 64, 0] == pytest.approx(0.25)
  assert mask[80, 78, 0] == 1.0 and mask[10, 10, 0] == 1.0  # nose and background untouched
  assert mask[50, 78, 0] == 1.0  # between the eyes
  assert np.all((mask >= 0.25) & (mask <= 1.0))
  region = photo.faces_lib.Region(top=0, left=0, inner=(10.0, 20.0, 110.0, 140.0),
                                  feather=5.0, size=(120, 160))
  base = Preset(name='t', summary='', eps=8.0, steps=1)
  plain = photo.budget_map(rgb, [region], base, landmarks5=[pts])
  eyes = photo.budget_map(rgb, [region], dataclasses.replace(base, eye_budget=0.25),
                          landmarks5=[pts])
  assert plain[50, 92, 0] == pytest.approx(8 / 255)
  assert eyes[50, 92, 0] == pytest.approx(0.25 * plain[50, 92, 0])
  assert eyes[80, 78, 0] == plain[80, 78, 0]
  with pytest.raises(ValueError, match='eye_budget'):
    Preset(name='t', summary='', eps=8.0, steps=1, eye_budget=1.5)
