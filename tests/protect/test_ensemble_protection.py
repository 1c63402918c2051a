"""The ensemble protection attack: every recognizer through its own alignment, each moved."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import quality
from fgsm_jax.data import images
from fgsm_jax.protect import attack, photo, presets, recognizer, registry

# Slow, left out of scripts/test.sh --quick: protection runs on real photos with both recognizers.
pytestmark = pytest.mark.slow

BOTH = ('dlib', 'mobileface')
CONFIG = attack.AttackConfig(step=0.3, eot_samples=1, jitter_px=0.0, jitter_deg=0.0,
                             jitter_scale=0.0)


@pytest.fixture(scope='module')
def face(gt_dir):
  """A GT face's window, budget (eps 6), both recognizers' geometry and references."""
  rgb = images.load_rgb(gt_dir / 's12' / '03.jpg')
  (clean,) = recognizer.describe(rgb, recognizers=BOTH)
  recs = photo.load_recognizers(BOTH)
  chip = photo._chip(clean.landmarks5, rgb.shape[:2])
  arc = registry.ARCFACE_112.transform(clean, rgb.shape[:2])
  aligned = {registry.DLIB_CHIP: chip, registry.ARCFACE_112: arc}
  region = photo._window(clean.box, chip, arc, rgb.shape[:2], 0.3, 0.2)
  t, l = region.top, region.left
  h, w = region.size
  window = jnp.asarray(rgb[t:t + h, l:l + w] / 255.0, jnp.float32)
  budget = jnp.asarray(np.asarray(photo.faces_lib.feather_mask(region)) * 6 / 255.0, jnp.float32)
  return dict(recs=recs, chip=chip, arc=arc, aligned=aligned, region=region, window=window,
              budget=budget,
              geoms=tuple(photo._geometry(r, aligned[r.spec.alignment], region) for r in recs),
              refs=tuple(jnp.asarray(clean.descriptor_of(r.name)) for r in recs))


def _members(face, weights=(1.0, 1.0)):
  return tuple(photo._surrogate(r, face['aligned'][r.spec.alignment], wt)
               for r, wt in zip(face['recs'], weights))


def _protect(face, steps, weights=(1.0, 1.0), config=CONFIG):
  return attack.protect_window(_members(face, weights), tuple(r.params for r in face['recs']),
                               face['window'], face['window'], face['budget'], face['geoms'],
                               face['refs'], jax.random.key(0), steps, config=config)


def test_each_members_loss_has_a_finite_gradient_on_the_face(face):
  members = _members(face)
  params = tuple(r.params for r in face['recs'])
  chip_index, chip_n_down = attack._chip_member(members)
  inside = np.asarray(face['budget'])[..., 0] > 0
  for i, member in enumerate(members):
    g = jax.grad(attack._member_loss, argnums=2)(member, params[i], face['window'],
                                                 face['window'], face['geoms'], face['refs'],
                                                 i, chip_index,
                                                 chip_n_down, jax.random.key(1), CONFIG)
    g = np.abs(np.asarray(g)).sum(-1)
    assert np.all(np.isfinite(g)), member.name
    # The gradient lands on the face (where the crop reads), not only on a few pixels.
    assert (g[inside] > 0).mean() > 0.2, (member.name, (g[inside] > 0).mean())


def test_both_recognizers_move_and_their_distances_come_back_per_member(face):
  adv0, d0 = _protect(face, 0)
  adv, d = _protect(face, 6)
  assert d.shape == (2,)
  # The clean window reproduces both clean descriptors (dlib 128-D L2, MobileFace cosine).
  assert float(d0[0]) < 0.05 and float(d0[1]) < 0.01
  # Measured after 6 steps at eps 6: dlib 0.47, MobileFace 0.39 (both from ~0).
  assert float(d[0]) > 0.3 and float(d[1]) > 0.25, np.asarray(d)
  change = np.abs(np.round(np.asarray(adv) * 255) - np.round(np.asarray(face['window']) * 255))
  assert change.max() <= 6 + 1e-3


def test_feature_dropout_reaches_inside_a_jitted_recognizer(face):
  # Model augmentation: each step drops 10% of every convolution's outputs. MobileFace's
  # apply is jitted: its cached trace must neither skip the dropout nor keep an old key.
  mf = (photo._surrogate(face['recs'][1], face['arc'], 1.0),)

  def run(config, key):
    return attack.protect_window(mf, (face['recs'][1].params,), face['window'],
                                 face['window'], face['budget'], face['geoms'][1:],
                                 face['refs'][1:], jax.random.key(key), 3, config=config)

  plain, _ = run(CONFIG, 0)
  config = dataclasses.replace(CONFIG, feature_dropout=0.1)
  a, da = run(config, 0)
  b, _ = run(config, 0)
  c, _ = run(config, 1)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the key decides
  assert np.mean(np.asarray(a) != np.asarray(plain)) > 0.01  # dropout changed the steps
  assert np.mean(np.asarray(a) != np.asarray(c)) > 0.01  # afresh for another key
  assert float(da[0]) > 0.1, np.asarray(da)


def test_the_intermediate_layer_loss_reads_the_middle_block_and_moves_it(face):
  # feature_weight adds ||F(x) - F(x0)|| / ||F(x0)|| of each member's FEATURE_LAYERS block:
  # 0 on the clean window, with a gradient; the attack then moves those features more.
  members = _members(face)
  params = tuple(r.params for r in face['recs'])
  chip_index, chip_n_down = attack._chip_member(members)
  config = dataclasses.replace(CONFIG, feature_weight=5.0)
  for i, member in enumerate(members):
    args = (member, params[i], face['window'], face['window'], face['geoms'], face['refs'], i,
            chip_index, chip_n_down, jax.random.key(1))
    plain, feat = attack._member_loss(*args, CONFIG), attack._member_loss(*args, config)
    assert abs(float(feat) - float(plain)) < 1e-4, member.name  # clean: no feature change
    g = np.asarray(jax.grad(attack._member_loss, argnums=2)(*args[:2], face['window'] + 0.01,
                                                             *args[3:], config))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
    _, captured = attack._describe(member, params[i], jnp.zeros((1,) + (
        (150, 150, 3) if member.crop == 'dlib_chip' else (112, 112, 3))), jax.random.key(0),
                                   config)
    # the middle of each network: dlib 17 x 17 x 64, MobileFace 14 x 14 x 32
    assert captured.shape == ((1, 17, 17, 64) if member.name == 'dlib' else (1, 14, 14, 32))

  def feature_change(cfg):
    adv, _ = _protect(face, 4, config=cfg)
    loss = lambda c: attack._member_loss(members[0], params[0], adv, face['window'],
                                         face['geoms'], face['refs'], 0, chip_index,
                                         chip_n_down, jax.random.key(1), c)
    return float(loss(config)) - float(loss(CONFIG))  # the weighted feature term alone

  assert feature_change(config) > 1.2 * feature_change(CONFIG)


def test_a_member_with_fewer_views_takes_the_first_of_them(face):
  # Surrogate.views = 1 under 2 jittered views a step: that member's loss is its loss under
  # the first view alone (same jitter), and differs from its 2-view loss.
  members = _members(face)
  params = tuple(r.params for r in face['recs'])
  chip_index, chip_n_down = attack._chip_member(members)
  two = dataclasses.replace(CONFIG, eot_samples=2, jitter_px=1.0, jitter_deg=1.5,
                            jitter_scale=0.02)
  one = dataclasses.replace(two, eot_samples=1)
  x = face['window'] + 0.02 * jnp.sin(jnp.arange(face['window'].size).reshape(
      face['window'].shape))
  for i, member in enumerate(members):
    loss = lambda m, c: float(attack._member_loss(
        m, params[i], x, face['window'], face['geoms'], face['refs'], i, chip_index,
        chip_n_down, jax.random.key(4), c))
    single = dataclasses.replace(member, views=1)
    assert loss(single, two) == pytest.approx(loss(member, one), abs=1e-6)
    assert abs(loss(member, two) - loss(member, one)) > 1e-4


def test_a_members_weight_sets_its_share_of_the_update(face):
  _, even = _protect(face, 6)
  _, dlib_heavy = _protect(face, 6, weights=(8.0, 1.0))
  _, mf_heavy = _protect(face, 6, weights=(1.0, 8.0))
  assert float(dlib_heavy[0]) > float(even[0]) > float(mf_heavy[0])
  assert float(mf_heavy[1]) > float(even[1]) > float(dlib_heavy[1])


@pytest.mark.parametrize('name, min_face_ssim', [('default', 0.93), ('transfer', 0.93)])
def test_preset_budget_and_quality_on_a_real_photo(gt_dir, name, min_face_ssim):
  # Fewer steps than the preset (time), everything else its own, its own recognizers
  # included (transfer: all five); the L-inf budget holds whatever the steps, the face SSIM
  # bound is the preset's measured mean on GT s26-s50 (BENCHMARKS.md) less a margin for one
  # photo.
  preset = dataclasses.replace(presets.PRESETS[name], steps=8, rounds=1)
  rgb = images.load_rgb(gt_dir / 's41' / '08.jpg')
  protected, results = photo.protect_photo(
      rgb, preset, jax.random.key(0), recognizers=photo.load_recognizers(preset.recognizers))
  assert len(results) == 1 and set(results[0].distances) == set(preset.recognizers)
  diff = np.abs(protected.astype(int) - rgb.astype(int))
  assert diff.max() <= np.ceil(preset.eps)
  assert diff.max() >= np.floor(preset.eps) - 1  # the budget is used where it is allowed
  q = quality.compare(rgb, protected, [results[0].box])
  assert q['face_ssim'] >= min_face_ssim, q['face_ssim']


def test_worst_member_weighting_moves_the_member_left_behind(face):
  # Weighted 8:1 for dlib, fixed shares leave MobileFace behind; with balance the step
  # shifts to whichever member still places the face nearest, so MobileFace moves further.
  _, fixed = _protect(face, 6, weights=(8.0, 1.0))
  _, balanced = _protect(face, 6, weights=(8.0, 1.0),
                         config=dataclasses.replace(CONFIG, balance=0.1))
  assert float(balanced[1]) > float(fixed[1])
