"""Presets: research overrides (--set) and what every preset promises."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fgsm_jax.protect import presets


def test_set_changes_preset_and_attack_fields():
  before = presets.PRESETS['default'].eps
  p = presets.with_fields(presets.PRESETS['default'],
                          ['eps=6', 'attack.kernel_size=9', 'weights=[["mobileface", 3]]',
                           'attack.degradations=["none", "jpeg75"]'])
  assert p.eps == 6 and p.attack.kernel_size == 9 and p.weight('mobileface') == 3
  assert p.weight('dlib') == 1.0 and p.attack.degradations == ('none', 'jpeg75')
  hash(p)  # still a compile key
  assert presets.PRESETS['default'].eps == before != 6  # the table is untouched


@pytest.mark.parametrize('setting, message', [
    ('nope=1', 'unknown setting'), ('eps', 'FIELD=VALUE'), ('attack.kernel_size=4', 'odd'),
    ('eps=-1', 'eps must be'), ('attack.degradations=["gif"]', 'degradations')])
def test_bad_settings_are_one_line_errors(setting, message):
  with pytest.raises(ValueError, match=message) as e:
    presets.with_fields(presets.PRESETS['default'], [setting])
  assert '\n' not in str(e.value)


C2 = (0.03 * 255) ** 2  # SSIM's C2 on the 0-255 scale


def test_every_preset_attacks_within_a_sane_budget():
  for p in presets.PRESETS.values():
    assert 0 < p.eps <= 16 and p.target > 1 and p.rounds >= 1, p.name
    # Over 8 grey levels only with the SSIM-shaped budget (full eps where the local sd is
    # texture_sd or more), and flat skin then gets at most 4 grey levels; over 12 only with
    # the SSIM term pulling back what costs SSIM.
    flat = p.eps * np.sqrt(C2 / (2 * p.texture_sd ** 2 + C2)) if p.texture_sd else p.eps
    assert p.eps <= 8 or (p.texture_sd >= 16 and flat <= 4), p.name
    assert p.eps <= 12 or p.attack.ssim_weight > 0, p.name


def test_per_recognizer_views_are_read_and_checked():
  base = presets.PRESETS['default']
  p = presets.with_fields(base, ['views=[["dlib", 1]]'])
  assert p.views_of('dlib') == 1 and p.views_of('mobileface') == 0
  with pytest.raises(ValueError, match='views must be between 1 and attack.eot_samples'):
    presets.with_fields(base, [f'views=[["dlib", {base.attack.eot_samples + 1}]]'])


@pytest.mark.parametrize('name', sorted(presets.PRESETS))
def test_eps_is_a_ceiling_for_every_rung(name):
  base = presets.PRESETS[name]
  capped = presets.with_overrides(base, eps=0.5 * base.max_eps)
  assert capped.max_eps == pytest.approx(0.5 * base.max_eps)
  assert capped.eps == pytest.approx(0.5 * base.eps)  # the ladder keeps its shape
  assert all(a < b for a, b in zip((capped.eps,) + capped.eps_ladder, capped.eps_ladder))
  # A tiny budget stays tiny: no rung climbs past it.
  assert presets.with_overrides(base, eps=0.01).max_eps == pytest.approx(0.01)


@pytest.mark.parametrize('name', sorted(presets.ATTACKS))
def test_an_attack_override_is_what_it_names(name):
  preset = presets.with_overrides(presets.PRESETS['default'], attack=name)
  config = preset.attack
  assert presets.attack_name(config) == name
  # The engine's conventions: no momentum is None, TI's sigma the library's default.
  assert (config.decay is None) == (name == 'pgd')
  assert config.kernel_sigma is None
  assert (config.kernel_size == 5) == (name == 'tifgsm')
  # Only the update rule changes: the preset's views stay.
  assert config.eot_samples == presets.PRESETS['default'].attack.eot_samples


def test_each_preset_names_registered_recognizers_and_transfer_all_five():
  from fgsm_jax.protect import registry
  for p in presets.PRESETS.values():
    assert set(p.recognizers) <= set(registry.NAMES), p.name
  assert presets.PRESETS['default'].recognizers == registry.DEFAULT
  assert presets.PRESETS['transfer'].recognizers == registry.NAMES  # all five
  # `transfer` is the default's settings with every recognizer: BENCHMARKS.md section 9's
  # leave-one-out runs (the default against four) are its leave-one-out figures.
  default, transfer = presets.PRESETS['default'], presets.PRESETS['transfer']
  same = lambda p: dataclasses.replace(p, name='', summary='', recognizers=('dlib',))
  assert same(default) == same(transfer)


@pytest.mark.parametrize('names', [(), ('dlib', 'dlib'), ('dlib', '')])
def test_a_preset_needs_distinct_recognizers(names):
  with pytest.raises(ValueError, match='recognizers must be distinct'):
    dataclasses.replace(presets.PRESETS['default'], recognizers=names)


def test_recognizers_are_the_command_lines_not_a_setting():
  with pytest.raises(ValueError, match="unknown setting 'recognizers'"):
    presets.with_fields(presets.PRESETS['default'], ['recognizers=["dlib"]'])


@pytest.mark.parametrize('app', ['protect_photos', 'privacy_eval'])
def test_recognizers_default_to_the_presets_own(app, tmp_path):
  import importlib
  module = importlib.import_module(f'fgsm_jax.apps.{app}')
  base = (['x.jpg', '--out-dir', str(tmp_path)] if app == 'protect_photos' else
          ['--dataset-dir', str(tmp_path), '--workdir', str(tmp_path / 'w')])
  assert module.parse_args(base).recognizers == ('dlib', 'mobileface')
  assert module.parse_args(base + ['--preset', 'transfer']).recognizers == (
      'dlib', 'mobileface', 'facenet', 'mobilefacenet', 'mfn512')
  named = ['--preset', 'transfer', '--recognizers', 'facenet,dlib']
  assert module.parse_args(base + named).recognizers == ('facenet', 'dlib')
