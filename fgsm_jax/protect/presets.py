"""Named protection settings: budget, steps, and what the attack must survive.

Every preset attacks the Flax ports of its recognizers (dlib's ResNet and MobileFace, all
five for `transfer`; ``--recognizers`` names others) through their differentiable warps,
with the dodging loss (distance from the face's own clean descriptor), on a feathered
region around each face, and re-aligns between rounds (landmarks found again on the
protected photo) until every recognizer's distance exceeds ``target`` or ``rounds`` is
spent.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

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
    target: distance from the clean descriptor that ends the rounds, in units of each
      attacked recognizer's same-person threshold (> 1, with a margin so other photos of
      the person fall out too; dlib: 1.417 is 0.85 in its units).
    margin, feather: the region around the detector's face box: full budget over the box
      grown by ``margin`` x its side, falling (raised cosine) to 0 over ``feather`` x side.
    texture: 0 spends eps everywhere in the region; t > 0 scales each pixel's budget by
      its local contrast (flat skin gets down to (1 - t) eps, edges and hair the full
      eps), which costs SSIM less for the same protection.
    eps_ladder: larger eps values (0-255 scale, rising) a face climbs, one rung a round,
      while some attacked recognizer keeps it under ``ladder_target``; () : off.
    ladder_target: the distance (in thresholds) under which a face climbs the ladder, by
      the judges a round's check computed (MobileFace alone where it decided the round:
      `photo.protect_photo`'s cheapest-first checks); 0: ``target``.
    check_degradations: names in fgsm_jax.quality.DEGRADATIONS ('jpeg75', 'resize_half')
      whose result must also reach ``target`` before the rounds end (real dlib checks the
      8-bit result after each); the saved file is always checked as is.
    attack: `AttackConfig` (the engine's update -- momentum, TI, soft steps -- and the views:
      EOT over jitter, degradations, DI).
    weights: (recognizer name, weight) pairs: each attacked recognizer's share of the
      ensemble's update (unlisted: 1).
    views: (recognizer name, n) pairs: that recognizer's gradient takes only the first n of
      the attack's views a step (unlisted: all ``attack.eot_samples``).
    eye_budget: the share of the budget kept over the eyes (`photo.eye_mask`, from dlib's
      5 landmarks); 1: no special case.
    recognizers: the recognizers (`fgsm_jax.protect.registry.NAMES`) the preset attacks
      and checks with unless the command line names others (``--recognizers``).
  """
  name: str
  summary: str
  eps: float
  steps: int
  rounds: int = 3
  extra_steps: int = 10
  target: float = 1.25
  margin: float = 0.3
  feather: float = 0.2
  texture: float = 0.0
  texture_sd: float = 0.0
  eps_ladder: tuple[float, ...] = ()
  ladder_target: float = 0.0
  check_degradations: tuple[str, ...] = ()
  attack: AttackConfig = AttackConfig()
  weights: tuple[tuple[str, float], ...] = ()
  views: tuple[tuple[str, int], ...] = ()
  eye_budget: float = 1.0
  recognizers: tuple[str, ...] = ('dlib', 'mobileface')

  @property
  def max_eps(self) -> float:
    """The largest change any pixel may get (0-255 scale): the ladder's top rung."""
    return float(max((self.eps,) + tuple(self.eps_ladder)))

  def weight(self, name: str) -> float:
    """The ensemble weight of recognizer ``name``."""
    return dict(self.weights).get(name, 1.0)

  def views_of(self, name: str) -> int:
    """How many of the attack's views recognizer ``name`` takes a step (0: all)."""
    return int(dict(self.views).get(name, 0))

  def eps_at(self, level: int) -> float:
    """The eps of a face that has climbed ``level`` rungs of the ladder (0: ``eps``)."""
    if level <= 0 or not self.eps_ladder:
      return self.eps
    return float(self.eps_ladder[min(level, len(self.eps_ladder)) - 1])

  def __post_init__(self):
    ladder = (self.eps,) + tuple(self.eps_ladder)
    if any(not isinstance(v, (int, float)) for v in ladder[1:]) or any(
        not a < b <= 255 for a, b in zip(ladder, ladder[1:])):
      raise ValueError(f'eps_ladder must rise from eps ({self.eps}) and stay <= 255, got '
                       f'{self.eps_ladder}')
    if self.ladder_target < 0:
      raise ValueError(f'ladder_target must be >= 0 (0: target), got {self.ladder_target}')
    if self.texture_sd < 0 or (self.texture_sd > 0 and self.texture > 0):
      raise ValueError(f'texture_sd must be >= 0 and texture 0 when it is set; got '
                       f'texture_sd {self.texture_sd}, texture {self.texture}')
    if not 0 < self.eps <= 255:
      raise ValueError(f'eps must be in (0, 255] (0-255 scale), got {self.eps}')
    if self.steps < 0 or self.extra_steps < 0 or self.rounds < 1:
      raise ValueError(f'expected steps >= 0, extra_steps >= 0, rounds >= 1; got '
                       f'{self.steps}, {self.extra_steps}, {self.rounds}')
    if any(int(n) < 1 or int(n) > self.attack.eot_samples for _, n in self.views):
      raise ValueError(f'views must be between 1 and attack.eot_samples '
                       f'({self.attack.eot_samples}), got {self.views}')
    if not 0 <= self.eye_budget <= 1:
      raise ValueError(f'eye_budget must be in [0, 1], got {self.eye_budget}')
    if not 0 <= self.texture < 1:
      raise ValueError(f'texture must be in [0, 1), got {self.texture}')
    names = tuple(self.recognizers)
    if not names or len(set(names)) != len(names) or not all(
        isinstance(n, str) and n for n in names):
      raise ValueError(f'recognizers must be distinct names, at least one; got '
                       f'{self.recognizers}')
    if not set(self.check_degradations) <= {'jpeg75', 'resize_half'}:
      raise ValueError(f"check_degradations must be among 'jpeg75', 'resize_half'; got "
                       f'{self.check_degradations}')


# One view per step, no jitter: on GT, re-aligning between rounds (landmarks found again
# on the 8-bit result) protected more per second than jittered views did (2 views
# with sd 1 px / 1 degree / 1.5% scale: rank-1 4-8% against 0-2% at the same eps).
# Gradient-scaled steps (soft 2) instead of sign steps: at equal face SSIM (0.957 on 45
# GT probes) rank-1 0/45 and after JPEG 75 1/45, against 1/45 and 5/45.
_ONE_VIEW = AttackConfig(step=0.25, eot_samples=1, jitter_px=0.0, jitter_deg=0.0,
                         jitter_scale=0.0)
# MobileFace reads a 112 x 112 crop whose alignment moves by ~0.5 px when the landmarks are
# found again on the protected photo, and a perturbation fitted to one exact crop loses
# most of its effect then (model distance 1.14, judged 0.64 on a GT probe). Two views a
# step, jittered (sd 1 chip px, 1.5 degrees, 2% scale), and TI smoothing made it hold: on
# GT s01-s08, MobileFace alone at eps 5, PSR 0.75 either way.
_JITTERED = AttackConfig(step=0.25, eot_samples=2, jitter_px=1.0, jitter_deg=1.5,
                         jitter_scale=0.02)
# TI as tuned for `default` and `transfer`: a 5 x 5 Gaussian of sd 5 / 6 px, a little wider
# than the library's default sd for that size ((5 - 1) / 6).
_TI_5 = dict(kernel_size=5, kernel_sigma=5 / 6)

# The default's budget (issue 11, tuned on GT s01-s25, BENCHMARKS.md section 6): the
# SSIM-shaped weight with texture_sd 20 and soft 6 steps (the change gathers on fewer,
# textured pixels) bought more distance per unit of face SSIM than the contrast weight
# (texture 0.8, eps 5.5, soft 2) did; eps is the largest change, reached only where the local
# sd is 20 grey levels or more (hair, eyebrows, the edges of the eyes). The SSIM term
# (ssim_weight 0.15) then let eps rise from 10 to 13 at a higher face SSIM (face PSNR -0.15 dB
# on the tuning people, -0.4 to -0.5 dB on s26-s50); a heavier term with a larger eps scored
# higher SSIM still but looked worse (red eyes, colour blotches) and lost 1-2 dB of PSNR.
# Issue 21 (what a person sees, BENCHMARKS.md section 8): half the budget over the eyes and
# half the gradient's chroma: on s01-s12 face SSIMULACRA2 54.0 -> 56.8, CIEDE2000 1.91 ->
# 1.58, PSR dlib / MobileFace 1.00 / 0.92 -> 1.00 / 1.00. No uniform, luminance-only,
# LPIPS-penalised or smoother budget tried reached its protection at a lower visibility.
_DEFAULT_SETTINGS = dict(
    eps=13.0, steps=10, rounds=4, extra_steps=8, target=1.8, texture_sd=20.0,
    eps_ladder=(15.5, 18.0), ladder_target=1.0, eye_budget=0.5, weights=(('mobileface', 2.0),),
    attack=dataclasses.replace(_JITTERED, soft=6.0, ssim_weight=0.15, chroma=0.5, **_TI_5))
# `transfer` (issue 19): the default's settings against all five recognizers. With two
# (dlib, MobileFace) no budget or ingredient moved the one left out (0.00-0.02, BENCHMARKS.md
# section 6), the earlier `transfer` (eps 8, texture-weighted, 24 steps) included; attacking
# four of the five, the default's settings left the fifth at PSR 0.83-1.00 for four of them
# (section 9), and no ingredient screened on top raised it (section 12).
PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset(
            name='fast',
            summary=('eps 4, MI-FGSM, 8 steps + up to 1 re-aligned round of 4 (target 0.7), '
                     'texture-weighted budget; plain photos only, and too weak for MobileFace: '
                     'on ten GT photos it still matched every one (BENCHMARKS.md section 5)'),
            eps=4.0, steps=8, rounds=2, extra_steps=4, target=0.7 / 0.6, texture=0.5,
            attack=dataclasses.replace(_ONE_VIEW, step=0.35)),
        Preset(
            name='default',
            summary=('eps 13 on textured pixels, less where the face is flat (SSIM-shaped '
                     'budget: a change costs about the same SSIM everywhere; flat skin gets '
                     'about a quarter of eps), and an SSIM term in every step (weight 0.15) '
                     'that pulls back the changes that cost SSIM and move no recognizer much; '
                     'against dlib and MobileFace at once (MobileFace weighted 2:1), MI-FGSM '
                     'with gradient-scaled steps (soft 6), each step averaged over 2 jittered '
                     'alignments and smoothed (TI 5 x 5), 10 steps + up to 3 re-aligned rounds '
                     'of 8 until each is 1.8 thresholds away; a face some recognizer still '
                     'places within its threshold after a round gets eps 15.5, then 18, for the '
                     'next (the others keep 13); half the budget over the eyes and half the '
                     "gradient's colour (off the grey axis), which people see first; visible "
                     'beside the original (face SSIMULACRA2 about 56, a JPEG 50 re-save of the '
                     'same photo about 73); plain photos'),
            **_DEFAULT_SETTINGS),
        Preset(
            name='robust',
            summary=('eps 6, MI-FGSM with EOT over 4 views per step -- as is, JPEG 75 (4:2:0, '
                     'differentiable) and twice resized to half and back -- 24 steps + up to 3 '
                     're-aligned rounds of 8 until real dlib is 0.9 away on the file as is, '
                     'after JPEG 75 and after halving; made to survive JPEG 75 and halving'),
            eps=6.0, steps=24, rounds=4, extra_steps=8, target=0.9 / 0.6, texture=0.5,
            check_degradations=('jpeg75', 'resize_half'),
            attack=AttackConfig(step=0.2, eot_samples=4,
                                degradations=('none', 'resize_half', 'jpeg75', 'resize_half'),
                                jitter_px=0.0, jitter_deg=0.0, jitter_scale=0.0)),
        Preset(
            name='transfer',
            summary=("for recognizers nobody tuned against: the default's budget, update and "
                     'checks against all five recognizers at once (dlib, MobileFace, FaceNet, '
                     'MobileFaceNet, MFN-512). Attacking four of them, the fifth, never seen, '
                     'failed to identify 0.83-1.00 of GT faces for four of the five and none '
                     'for MobileFace (BENCHMARKS.md section 9); as visible as the default '
                     '(face SSIMULACRA2 about 52-56) and about 3x its time'),
            recognizers=('dlib', 'mobileface', 'facenet', 'mobilefacenet', 'mfn512'),
            **_DEFAULT_SETTINGS),
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
    'tifgsm': 'momentum + gradients smoothed by a 5 x 5 Gaussian of sd 4 / 6 px, the '
              "library's TI (Dong et al. 2019)",
}


def attack_name(config: AttackConfig) -> str:
  """The base attack a config amounts to (for reports)."""
  if config.decay is None:
    return 'pgd'
  if config.di_prob > 0:
    return 'difgsm'
  if config.kernel_size is not None:
    return 'tifgsm'
  return 'mifgsm'


def with_overrides(preset: Preset, *, eps: float | None = None, steps: int | None = None,
                   attack: str | None = None) -> Preset:
  """The preset with explicit overrides (eps on the 0-255 scale, first-round steps,
  base attack name from ATTACKS).

  ``eps`` is a ceiling: no pixel changes by more. A preset with an eps ladder keeps its
  shape, scaled so that its top rung is ``eps`` (default 13, 15.5, 18 with ``eps=9`` gives
  6.5, 7.75, 9).
  """
  changes: dict = {}
  if eps is not None:
    scale = float(eps) / preset.max_eps
    changes['eps'] = preset.eps * scale
    changes['eps_ladder'] = tuple(v * scale for v in preset.eps_ladder)
  if steps is not None:
    changes['steps'] = int(steps)
  if attack is not None:
    if attack not in ATTACKS:
      raise ValueError(f'unknown attack {attack!r}; expected one of {", ".join(ATTACKS)}')
    cfg = preset.attack
    base = dict(decay=1.0, di_prob=0.0, kernel_size=None, kernel_sigma=None)
    if attack == 'pgd':
      base['decay'] = None
    elif attack == 'difgsm':
      base['di_prob'] = 0.5
    elif attack == 'tifgsm':
      base['kernel_size'] = 5
    changes['attack'] = dataclasses.replace(cfg, **base)
  return dataclasses.replace(preset, **changes) if changes else preset


def with_fields(preset: Preset, settings: Sequence[str]) -> Preset:
  """The preset with 'field=value' settings applied, for research runs (``--set``).

  ``field`` is a `Preset` field (``eps=6``, ``texture=0.8``, ``weights=[["mobileface", 2]]``)
  or ``attack.<field>`` of its `AttackConfig` (``attack.kernel_size=9``); ``value`` is read as
  JSON (numbers, lists), else as a string. Lists become tuples (the settings are hashable).

  Raises:
    ValueError: an unknown field, a malformed setting, or a value the dataclass refuses
      (one line).
  """
  changes: dict[str, Any] = {}
  attack_changes: dict[str, Any] = {}
  # The recognizers are the command line's --recognizers, not a setting.
  preset_fields = {f.name for f in dataclasses.fields(Preset)} - {
      'name', 'summary', 'attack', 'recognizers'}
  attack_fields = {f.name for f in dataclasses.fields(AttackConfig)}
  for text in settings:
    name, sep, raw = text.partition('=')
    name = name.strip()
    if not sep or not name:
      raise ValueError(f'expected FIELD=VALUE, got {text!r}')
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    value = _tuples(value)
    if name.startswith('attack.') and name[7:] in attack_fields:
      attack_changes[name[7:]] = value
    elif name in preset_fields:
      changes[name] = value
    else:
      raise ValueError(f'unknown setting {name!r}; expected one of '
                       f'{", ".join(sorted(preset_fields))} or attack.<field> '
                       f'({", ".join(sorted(attack_fields))})')
  try:
    if attack_changes:
      changes['attack'] = dataclasses.replace(preset.attack, **attack_changes)
    return dataclasses.replace(preset, **changes) if changes else preset
  except (TypeError, ValueError) as e:
    raise ValueError(f'bad setting: {e}') from None


def _tuples(value: Any) -> Any:
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
