"""Named protection settings: budget, steps, and what the attack must survive.

Every preset attacks the Flax port of dlib's face ResNet through the differentiable
chip warp, with the dodging loss (distance from the face's own clean descriptor), on a
feathered region around each face, and re-aligns between rounds (landmarks found again on
the protected photo) until real dlib's distance exceeds ``target`` or ``rounds`` is spent.
"""
from __future__ import annotations

import dataclasses

from fgsm_jax.protect.attack import AttackConfig


@dataclasses.dataclass(frozen=True)
class Preset:
  """A protection setting (plain data).

  Attributes:
    name, summary: for --help and reports.
    eps: L-inf budget on the 0-255 scale (the largest change of any pixel).
    steps: attack steps of the first round.
    rounds: at most this many rounds; after each, real dlib re-finds the faces on the
      8-bit result and the faces not yet at ``target`` get ``extra_steps`` more steps with
      the new alignment.
    extra_steps: steps of each later round.
    target: real dlib distance from the clean descriptor that ends the rounds (> 0.6, the
      same-person threshold, with a margin so other photos of the person fall out too).
    margin, feather: the region around the detector's face box: full budget over the box
      grown by ``margin`` x its side, falling (raised cosine) to 0 over ``feather`` x side.
    texture: 0 spends eps everywhere in the region; t > 0 scales each pixel's budget by
      its local contrast (flat skin gets down to (1 - t) eps, edges and hair the full
      eps), which costs SSIM less for the same protection.
    attack: `AttackConfig` (momentum, EOT views, jitter, degradations, DI, TI).
  """
  name: str
  summary: str
  eps: float
  steps: int
  rounds: int = 3
  extra_steps: int = 10
  target: float = 0.75
  margin: float = 0.3
  feather: float = 0.2
  texture: float = 0.0
  attack: AttackConfig = AttackConfig()

  def __post_init__(self):
    if not 0 < self.eps <= 255:
      raise ValueError(f'eps must be in (0, 255] (0-255 scale), got {self.eps}')
    if self.steps < 0 or self.extra_steps < 0 or self.rounds < 1:
      raise ValueError(f'expected steps >= 0, extra_steps >= 0, rounds >= 1; got '
                       f'{self.steps}, {self.extra_steps}, {self.rounds}')
    if not 0 <= self.texture < 1:
      raise ValueError(f'texture must be in [0, 1), got {self.texture}')


PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset(
            name='fast',
            summary='eps 4, 10 steps MI-FGSM, 2 jittered views per step, up to 2 rounds',
            eps=4.0, steps=10, rounds=2, extra_steps=6, target=0.7,
            attack=AttackConfig(step=0.3, eot_samples=2)),
        Preset(
            name='default',
            summary=('eps 6, 16 steps MI-FGSM, 2 jittered views per step, texture-weighted '
                     'budget, up to 3 rounds of re-alignment'),
            eps=6.0, steps=16, rounds=3, extra_steps=8, target=0.8, texture=0.5,
            attack=AttackConfig(step=0.25, eot_samples=2)),
        Preset(
            name='strong',
            summary='eps 8, 30 steps MI-FGSM, 4 jittered views, up to 3 rounds',
            eps=8.0, steps=30, rounds=3, extra_steps=10, target=0.9, texture=0.3,
            attack=AttackConfig(step=0.2, eot_samples=4)),
        Preset(
            name='robust',
            summary=('eps 10, 40 steps MI-TI-FGSM, 6 views per step: plain, JPEG 75 '
                     '(differentiable) and resize to half and back, each jittered; survives '
                     'JPEG 75 and halving'),
            eps=10.0, steps=40, rounds=3, extra_steps=10, target=0.9, texture=0.3,
            attack=AttackConfig(step=0.15, eot_samples=6,
                                degradations=('none', 'jpeg75', 'resize_half'),
                                ti_kernel=5)),
    )
}
DEFAULT_PRESET = 'default'


# The base attacks an --attack override picks; each keeps the preset's views (EOT over
# jitter and degradations) and changes only the update rule.
ATTACKS: dict[str, str] = {
    'pgd': 'PGD with sign steps, no momentum (Madry et al. 2018)',
    'mifgsm': 'momentum, mu = 1 (Dong et al. 2018)',
    'difgsm': 'momentum + input diversity: chips randomly shrunk and padded, p = 0.5 '
              '(Xie et al. 2019)',
    'tifgsm': 'momentum + gradients smoothed by a 5 x 5 Gaussian (Dong et al. 2019)',
}


def attack_name(config: AttackConfig) -> str:
  """The base attack a config amounts to (for reports)."""
  if config.decay == 0:
    return 'pgd'
  if config.di_prob > 0:
    return 'difgsm'
  if config.ti_kernel:
    return 'tifgsm'
  return 'mifgsm'


def with_overrides(preset: Preset, *, eps: float | None = None, steps: int | None = None,
                   attack: str | None = None) -> Preset:
  """The preset with explicit overrides (eps on the 0-255 scale, first-round steps,
  base attack name from ATTACKS)."""
  changes: dict = {}
  if eps is not None:
    changes['eps'] = float(eps)
  if steps is not None:
    changes['steps'] = int(steps)
  if attack is not None:
    if attack not in ATTACKS:
      raise ValueError(f'unknown attack {attack!r}; expected one of {", ".join(ATTACKS)}')
    cfg = preset.attack
    base = dict(decay=1.0, di_prob=0.0, ti_kernel=0)
    if attack == 'pgd':
      base['decay'] = 0.0
    elif attack == 'difgsm':
      base['di_prob'] = 0.5
    elif attack == 'tifgsm':
      base['ti_kernel'] = 5
    changes['attack'] = dataclasses.replace(cfg, **base)
  return dataclasses.replace(preset, **changes) if changes else preset
