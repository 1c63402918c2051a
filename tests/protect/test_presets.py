"""Presets: documented, valid, and overridable from the command line."""
from __future__ import annotations

import pytest

from fgsm_jax.protect import presets


def test_presets_include_default_and_robust():
  assert presets.DEFAULT_PRESET in presets.PRESETS
  robust = presets.PRESETS['robust']
  assert {'jpeg75', 'resize_half'} <= set(robust.attack.degradations)
  assert set(robust.check_degradations) == {'jpeg75', 'resize_half'}
  for p in presets.PRESETS.values():
    assert p.summary and 0 < p.eps <= 16 and p.steps > 0


def test_overrides():
  base = presets.PRESETS['default']
  p = presets.with_overrides(base, eps=3, steps=7, attack='pgd')
  assert (p.eps, p.steps, p.attack.decay) == (3.0, 7, 0.0)
  assert presets.attack_name(p.attack) == 'pgd'
  assert presets.attack_name(presets.with_overrides(base, attack='difgsm').attack) == 'difgsm'
  assert presets.attack_name(presets.with_overrides(base, attack='tifgsm').attack) == 'tifgsm'
  assert presets.with_overrides(base) is base
  with pytest.raises(ValueError, match='unknown attack'):
    presets.with_overrides(base, attack='cw')


def test_bad_values_are_refused():
  with pytest.raises(ValueError, match='eps'):
    presets.Preset(name='x', summary='', eps=0, steps=1)
  with pytest.raises(ValueError, match='check_degradations'):
    presets.Preset(name='x', summary='', eps=4, steps=1, check_degradations=('gif',))
