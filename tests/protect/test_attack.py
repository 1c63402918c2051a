"""The per-face protection attack: budgets, 8-bit output, both loop drivers, degradations."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import quality
from fgsm_jax.attacks import iterative
from fgsm_jax.models.dlib_resnet import dlib_resnet_apply
from fgsm_jax.protect import attack, photo, registry, warp

CONFIG = attack.AttackConfig(step=0.3, eot_samples=1)


def _dlib(fw):
  """dlib's port as the one member of the attack."""
  return (attack.Surrogate(registry.SPECS['dlib'], n_down=fw['n_down']),)


def _run(fw, steps, key=0):
  adv, d = attack.protect_window(_dlib(fw), (fw['params'],), fw['window'], fw['window'],
                                 fw['budget'], (fw['geom'],), (fw['ref'],),
                                 jax.random.key(key), steps, config=CONFIG)
  return adv, d[0]


@pytest.mark.slow
def test_attack_stays_in_budget_on_8_bits_and_moves_the_descriptor(face_window):
  fw = face_window
  clean, d0 = _run(fw, 0)
  adv, d = _run(fw, 4)
  x0 = np.round(np.asarray(fw['window']) * 255)
  np.testing.assert_allclose(np.asarray(clean) * 255, x0, atol=1e-3)
  levels = np.asarray(adv) * 255
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # whole grey levels
  change = np.abs(np.round(levels) - x0)
  budget = np.broadcast_to(np.asarray(fw['budget']) * 255, change.shape)
  assert np.all(change <= budget + 0.5 + 1e-3)
  assert np.all(change[budget == 0] == 0)  # outside the feathered region: untouched
  assert change.max() >= 3  # and inside it, the budget is used
  assert float(d0) < 0.05  # the port reproduces the clean descriptor
  assert float(d) > float(d0) + 0.2


@pytest.mark.slow
def test_the_step_count_is_traced_and_the_key_decides(face_window):
  # One compiled program serves every step count; the same key gives the same window.
  before = attack._run._cache_size()
  a, da = _run(face_window, 3, key=1)
  b, db = _run(face_window, 3, key=1)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert float(da) == float(db)
  c, _ = _run(face_window, 2, key=1)
  assert np.any(np.asarray(c) != np.asarray(a))
  assert attack._run._cache_size() - before <= 1


def test_config_is_checked():
  with pytest.raises(ValueError, match='degradations'):
    attack.AttackConfig(degradations=('gif',))
  # The update fields are the engine's, checked by the engine's own rules.
  with pytest.raises(ValueError, match='kernel_size'):
    attack.AttackConfig(kernel_size=4)
  with pytest.raises(ValueError, match='decay'):
    attack.AttackConfig(decay=-1.0)
  with pytest.raises(ValueError, match='soft'):
    attack.AttackConfig(soft=-1.0)


def test_the_update_is_the_engines_with_the_same_meanings():
  # MI and TI mean what they mean in fgsm_jax.attacks: None is "off" and the TI sigma
  # defaults to (size - 1) / 6 in both halves.
  config = attack.AttackConfig(decay=None, kernel_size=5, soft=2.0)
  update = config.update_config()
  assert update == iterative.Config(norm='linf', decay=None, kernel_size=5, kernel_sigma=None,
                                    soft=2.0, quantize=True)
  assert set(attack.UPDATE_FIELDS) <= {f.name for f in dataclasses.fields(iterative.Config)}


@pytest.mark.slow
def test_padding_to_a_compile_bucket_leaves_the_result_unchanged(face_window):
  # photo.py pads every window (edge pixels, budget 0) to a bucket side and passes its own
  # area as ``scope``; with gradient-scaled steps (soft) the step sizes depend on the mean
  # |gradient|, which must not count the padding.
  fw = face_window
  config = attack.AttackConfig(step=0.3, eot_samples=1, soft=2.0)
  h, w = fw['window'].shape[:2]
  side = photo.bucket_side(h, w)
  assert side > max(h, w)  # the fixture's window (352 px) really is padded
  pad = lambda a, mode='edge': jnp.asarray(photo.pad_to_bucket(np.asarray(a), side, mode))
  window = pad(fw['window'])
  scope = pad(np.ones((h, w, 1), np.float32), 'constant')
  args = (_dlib(fw), (fw['params'],))
  a, da = attack.protect_window(*args, fw['window'], fw['window'], fw['budget'], (fw['geom'],),
                                (fw['ref'],), jax.random.key(3), 4, config=config)
  b, db = attack.protect_window(*args, window, window, pad(fw['budget'], 'constant'),
                                (fw['geom'],), (fw['ref'],), jax.random.key(3), 4,
                                config=config, scope=scope)
  # Only the summation order of the means differs: at most a grey level, in a few pixels.
  diff = np.abs(np.asarray(b)[:h, :w] - np.asarray(a)) * 255
  assert diff.max() <= 1 + 1e-3 and np.mean(diff > 0.5) < 1e-3
  assert abs(float(da[0]) - float(db[0])) < 1e-3
  levels = lambda v: np.round(np.asarray(v) * 255)
  assert np.array_equal(levels(b)[h:], levels(window)[h:])  # padding untouched


def test_distance_to_several_references_is_to_the_nearest():
  desc = jnp.asarray([[0.0, 0.0], [3.0, 4.0]])
  refs = jnp.asarray([[3.0, 4.0], [0.0, 1.0]])
  np.testing.assert_allclose(attack._distance('l2', desc, refs), [1.0, 0.0], atol=1e-5)
  cos = attack._distance('cosine', jnp.asarray([[1.0, 0.0]]), jnp.asarray([[0.0, 2.0], [1.0, 1.0]]))
  np.testing.assert_allclose(cos, [1 - np.sqrt(0.5)], atol=1e-6)


@pytest.mark.slow
def test_the_ssim_term_keeps_the_window_nearer_the_clean_one_in_ssim(face_window):
  fw = face_window

  def attack_with(weight):
    adv, d = attack.protect_window(
        _dlib(fw), (fw['params'],), fw['window'], fw['window'], fw['budget'] * 3,
        (fw['geom'],), (fw['ref'],), jax.random.key(4), 6,
        config=dataclasses.replace(CONFIG, ssim_weight=weight))
    return quality.ssim(np.asarray(fw['window']) * 255, np.asarray(adv) * 255), float(d[0])

  ssim_plain, d_plain = attack_with(0.0)
  ssim_held, d_held = attack_with(1.0)
  # The penalty buys SSIM (a term the step ignored would leave it equal) ...
  assert ssim_held > ssim_plain + 0.01
  # ... and the attack still moves the descriptor (the term does not simply cancel it).
  assert d_held > 0.2
  with pytest.raises(ValueError, match='ssim_weight'):
    attack.AttackConfig(ssim_weight=-1.0)


def test_the_lpips_term_keeps_the_window_nearer_the_clean_one_in_lpips(face_window):
  from fgsm_jax.models import lpips
  fw = face_window
  params = lpips.lpips_params('alexnet')

  def attack_with(weight):
    adv, d = attack.protect_window(
        _dlib(fw), (fw['params'],), fw['window'], fw['window'], fw['budget'] * 2,
        (fw['geom'],), (fw['ref'],), jax.random.key(4), 6,
        config=dataclasses.replace(CONFIG, soft=2.0, lpips_weight=weight),
        lpips_params=params if weight else None)
    seen = lpips.lpips_distance(fw['window'][None] * 2 - 1, adv[None] * 2 - 1, params=params)
    return float(seen[0]), float(d[0])

  lpips_plain, d_plain = attack_with(0.0)
  lpips_held, d_held = attack_with(1.0)
  # Measured on s07/04: LPIPS 0.029 without the term, 0.020 with it; dlib 0.90 and 0.78.
  assert lpips_held < 0.8 * lpips_plain  # a term the step ignored would leave it equal
  assert d_held > 0.5  # and the descriptor still moves
  with pytest.raises(ValueError, match='needs lpips_params'):
    attack.protect_window(_dlib(fw), (fw['params'],), fw['window'], fw['window'], fw['budget'],
                          (fw['geom'],), (fw['ref'],), jax.random.key(0), 1,
                          config=dataclasses.replace(CONFIG, lpips_weight=1.0))


def test_chroma_zero_changes_brightness_only(face_window):
  fw = face_window
  g = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 3)), jnp.float32)
  grey = attack.keep_chroma(g, 0.0)
  assert np.allclose(grey, grey[..., :1]) and np.allclose(grey.mean(-1), g.mean(-1), atol=1e-6)
  assert np.allclose(attack.keep_chroma(g, 1.0), g)

  def chroma_share(chroma):
    adv, d = attack.protect_window(_dlib(fw), (fw['params'],), fw['window'], fw['window'],
                                   fw['budget'], (fw['geom'],), (fw['ref'],), jax.random.key(1),
                                   4, config=dataclasses.replace(CONFIG, chroma=chroma))
    delta = np.asarray(adv, np.float64) - np.asarray(fw['window'], np.float64)
    off_grey = delta - delta.mean(axis=-1, keepdims=True)
    return np.sum(off_grey ** 2) / np.sum(delta ** 2), float(d[0])

  # The share of the change's energy off the grey axis: with chroma 0 only the 8-bit
  # rounding of ties and the clips to [0, 1] put any there.
  rgb_share, _ = chroma_share(1.0)
  grey_share, d_grey = chroma_share(0.0)
  assert grey_share < 0.1 * rgb_share and d_grey > 0.05
  with pytest.raises(ValueError, match='chroma'):
    attack.AttackConfig(chroma=1.5)


def test_worst_member_shares_go_to_the_member_still_nearest():
  losses = jnp.asarray([0.2, 1.4, 0.8])
  shares = np.asarray(attack.worst_member_shares(losses, [1.0, 1.0, 2.0], 0.5))
  assert shares.sum() == pytest.approx(1.0, abs=1e-6)
  assert shares[0] > shares[2] > shares[1]   # nearest first; the weight 2 still counts
  # Equal losses: the fixed weights; a large temperature: back towards them.
  np.testing.assert_allclose(attack.worst_member_shares(jnp.zeros(3), [1.0, 1.0, 2.0], 0.5),
                             [0.25, 0.25, 0.5], atol=1e-6)
  np.testing.assert_allclose(attack.worst_member_shares(losses, [1.0, 1.0, 2.0], 1e4),
                             [0.25, 0.25, 0.5], atol=1e-3)
  # The shares steer the step; no gradient flows through them.
  g = jax.grad(lambda l: jnp.sum(attack.worst_member_shares(l, [1.0, 1.0, 1.0], 0.5) * l))(losses)
  np.testing.assert_allclose(g, attack.worst_member_shares(losses, [1.0, 1.0, 1.0], 0.5))
  with pytest.raises(ValueError, match='balance'):
    attack.AttackConfig(balance=-1.0)


def _other_person(gt_dir) -> jax.Array:
  """dlib's descriptor of another GT person's face (s08/04): a target identity."""
  from fgsm_jax.data import images
  from fgsm_jax.protect import recognizer
  return jnp.asarray(recognizer.describe(images.load_rgb(gt_dir / 's08' / '04.jpg'))[0]
                     .descriptor_of('dlib'))


def _dlib_of(fw, window) -> jax.Array:
  chip = warp.window_chip(window, fw['geom'], fw['n_down'])
  return dlib_resnet_apply(fw['params'], chip[None])[0]


@pytest.mark.slow
def test_the_target_term_pulls_the_face_towards_the_target(face_window, gt_dir):
  fw, toward = face_window, _other_person(gt_dir)
  config = dataclasses.replace(CONFIG, target_weight=1.0)
  args = (_dlib(fw), (fw['params'],), fw['window'], fw['window'], fw['budget'], (fw['geom'],),
          (fw['ref'],), jax.random.key(0), 4)
  dodged, _ = attack.protect_window(*args, config=CONFIG)
  pulled, d = attack.protect_window(*args, config=config, targets=(toward,))
  dist = lambda w, r: float(jnp.linalg.norm(_dlib_of(fw, w) - r))
  # Nearer the target than the plain dodge gets, and still away from its own descriptor.
  assert dist(pulled, toward) < dist(dodged, toward) - 0.02
  assert float(d[0]) > 0.2
  # Without the weight, targets are ignored: the program and result are the plain one's.
  same, _ = attack.protect_window(*args, config=CONFIG, targets=(toward,))
  np.testing.assert_array_equal(np.asarray(same), np.asarray(dodged))


def test_the_target_term_needs_one_target_descriptor_per_member(face_window):
  fw = face_window
  config = dataclasses.replace(CONFIG, target_weight=1.0)
  args = (_dlib(fw), (fw['params'],), fw['window'], fw['window'], fw['budget'], (fw['geom'],),
          (fw['ref'],), jax.random.key(0), 1)
  with pytest.raises(ValueError, match='one target descriptor per member'):
    attack.protect_window(*args, config=config)
  with pytest.raises(ValueError, match=r'dlib: expected a target descriptor of shape \(128,\)'):
    attack.protect_window(*args, config=config, targets=(jnp.zeros(64),))
  with pytest.raises(ValueError, match='target_weight'):
    attack.AttackConfig(target_weight=-0.5)
