"""Protecting a whole photo: every face, a feathered region each, checked by real dlib.

`protect_photo` is the pipeline of experiments/protect_photos.py without the file
handling: find the faces with real dlib (boxes, 5 landmarks, clean descriptors), attack
each face's window with `attack.protect_window`, round to 8 bits, let real dlib find the
faces again on the result (``check``: the caller may save and reload the file there) and,
for faces whose distance from their clean descriptor is still under the preset's target,
attack again from where it stopped with the new alignment.

Budgets: each face's region (the detector box grown by ``margin``, then a raised-cosine
feather) gets eps, optionally weighted by local contrast; pixels outside every region
have budget 0 and come out bit-identical to the input.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import faces as faces_lib
from fgsm_jax import quality
from fgsm_jax.protect import attack as attack_lib
from fgsm_jax.protect import recognizer, warp
from fgsm_jax.protect.presets import Preset

ALIGN = 16  # window origins sit on the JPEG 16 x 16 macroblock grid where possible.


def _window_sizes(limit: int = 1 << 15) -> tuple[int, ...]:
  sizes = [128]
  while sizes[-1] < limit:
    sizes.append(int(math.ceil(sizes[-1] * 1.2 / ALIGN) * ALIGN))
  return tuple(sizes)


# Window sides (square, 16-multiples, ~20% apart: 128, 160, 192, 240, 288, 352, ...): the
# area a face's attack works on (its region, chip and jitter room; a photo smaller than
# that caps it).
WINDOW_SIZES = _window_sizes()
# What the attack is compiled for: each window is padded (edge pixels, budget 0) to the
# first of these sides that holds it. XLA compiles once per shape, 7-14 s each on a 2-core
# CPU, while a step's cost is the recognizer on the 150 x 150 chip and barely grows with the
# window; so the ladder is coarse (x2) and starts high: every face of a 640 x 480 photo
# (windows 240-432 on GT) shares the 512 program.
BUCKET_SIDES = tuple(512 * 2 ** k for k in range(8))


def bucket_side(height: int, width: int) -> int:
  """The compiled side for a height x width window: the first BUCKET_SIDES entry >= both."""
  need = max(int(height), int(width))
  for side in BUCKET_SIDES:
    if side >= need:
      return side
  raise ValueError(f'window {height} x {width} exceeds the largest bucket {BUCKET_SIDES[-1]}')


def pad_to_bucket(a: np.ndarray, side: int, mode: str = 'edge') -> np.ndarray:
  """An H x W x C window padded at the bottom and right to side x side (numpy.pad mode)."""
  pad = ((0, side - a.shape[0]), (0, side - a.shape[1]), (0, 0))
  if pad[0][1] < 0 or pad[1][1] < 0:
    raise ValueError(f'expected a window of at most {side} x {side}, got {a.shape[:2]}')
  return np.pad(a, pad, mode=mode)
CHIP_JITTER_ROOM = 0.08  # the window holds the chip grown by this fraction a side.
TEXTURE_REF = 6.0  # local contrast (0-255 sd) at which a pixel gets the full eps.

Check = Callable[[np.ndarray], Sequence[recognizer.FaceRecord]]


class NoFaceError(ValueError):
  """Real dlib finds no face in the photo (nothing to protect)."""


@dataclasses.dataclass
class FaceResult:
  """One face of the photo after protection.

  Attributes:
    box: the face's detector box in the original photo.
    distance: real dlib's distance between the clean descriptor and that of the face found
      at the same place in the protected photo; None when no face is found there.
    protected: distance > 0.6 (dlib's same-person threshold) or the face is not found.
    rounds: attack rounds this face received.
    model_distance: the Flax model's distance after its last round (attack-side view).
  """
  box: recognizer.Box
  distance: float | None
  protected: bool
  rounds: int
  model_distance: float | None = None


def _window(box: recognizer.Box, chip: faces_lib.ChipTransform, photo_hw: tuple[int, int],
            margin: float, feather: float) -> faces_lib.Region:
  """The face's window and mask geometry: box region + chip, bucketed, 16-aligned.

  The window holds the full-budget area (box grown by ``margin`` x side), the feather band
  and the chip's rotated rectangle with room for jitter; it is a square of a WINDOW_SIZES
  side (a photo smaller than that caps it), its origin on the 16-pixel grid when that
  still covers the face.
  """
  h, w = photo_hw
  left, top, right, bottom = (float(v) for v in box)
  side = max(right - left + 1, bottom - top + 1)
  grow, band = margin * side, feather * side
  inner = (max(top - grow, 0.0), max(left - grow, 0.0), min(bottom + grow, h - 1.0),
           min(right + grow, w - 1.0))
  # The chip's rotated rectangle, with room for the alignment jitter.
  l, t, r, b = chip.rect
  cx, cy, half = (l + r) / 2, (t + b) / 2, (r - l) / 2 * (1 + CHIP_JITTER_ROOM)
  ext = half * (abs(math.cos(chip.angle)) + abs(math.sin(chip.angle))) + 2
  need = (min(inner[0] - band - 1, cy - ext), min(inner[1] - band - 1, cx - ext),
          max(inner[2] + band + 1, cy + ext), max(inner[3] + band + 1, cx + ext))
  need = (max(need[0], 0.0), max(need[1], 0.0), min(need[2], h - 1.0), min(need[3], w - 1.0))

  want = max(need[2] - need[0], need[3] - need[1]) + 1 + ALIGN
  side = next(s for s in WINDOW_SIZES if s >= want)

  def place(lo: float, hi: float, limit: int) -> tuple[int, int]:
    size = min(side, limit)
    start = int(math.floor(lo / ALIGN) * ALIGN)
    start = min(start, limit - size)
    if start + size < hi + 1:  # alignment lost the far edge: centre instead
      start = int(np.clip(math.floor((lo + hi - size) / 2), 0, limit - size))
    return start, size

  wt, wh = place(need[0], need[2], h)
  wl, ww = place(need[1], need[3], w)
  rel = (inner[0] - wt, inner[1] - wl, inner[2] - wt, inner[3] - wl)
  return faces_lib.Region(top=wt, left=wl, inner=tuple(float(v) for v in rel),
                          feather=float(band), size=(wh, ww))


def texture_weight(rgb: np.ndarray, strength: float, radius: int = 2) -> np.ndarray:
  """Per-pixel budget weight in [1 - strength, 1] from local contrast, H x W x 1.

  The sd of luminance over a (2 radius + 1)^2 box, divided by TEXTURE_REF and clipped to
  1: flat areas (where SSIM sees any change) get the least, edges and texture the most.
  """
  if strength <= 0:
    return np.ones(rgb.shape[:2] + (1,), np.float32)
  y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  k = 2 * radius + 1

  def box_mean(v: np.ndarray) -> np.ndarray:
    p = np.pad(v, radius, mode='edge')
    c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), 0), 1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)

  mean = box_mean(y)
  sd = np.sqrt(np.maximum(box_mean(y * y) - mean * mean, 0.0))
  w = (1 - strength) + strength * np.clip(sd / TEXTURE_REF, 0.0, 1.0)
  return w[..., None].astype(np.float32)


def budget_map(rgb: np.ndarray, regions: Sequence[faces_lib.Region], preset: Preset
               ) -> np.ndarray:
  """Per-pixel L-inf budget, H x W x 1 in [0, 1] units: eps x max of the face masks x texture."""
  mask = np.asarray(faces_lib.full_mask(rgb.shape[:2], list(regions)))
  return (mask * (preset.eps / 255.0) * texture_weight(rgb, preset.texture)).astype(np.float32)


def _chip(landmarks: np.ndarray, photo_hw: tuple[int, int]) -> faces_lib.ChipTransform | None:
  try:
    return faces_lib.chip_transform(landmarks, photo_hw)
  except ValueError:
    return None


def protect_photo(rgb: np.ndarray, preset: Preset, key: jax.Array, *, params: Any,
                  apply_fn: Any, models: recognizer.RealDlib | None = None,
                  check: Check | None = None, clean: Sequence[recognizer.FaceRecord] | None = None
                  ) -> tuple[np.ndarray, list[FaceResult]]:
  """Protects every face real dlib finds in the photo.

  Args:
    rgb: uint8 H x W x 3, upright (EXIF orientation applied).
    preset: the settings (`presets.PRESETS`).
    key: PRNG key; the same key, photo and preset give the same result.
    params, apply_fn: the Flax recognizer (``load_dlib_resnet()``, a hashable
      ``apply_fn(params, chips) -> descriptors``).
    models: real dlib (``recognizer.load_real_dlib()``).
    check: ``check(protected uint8) -> faces`` run after each round; default real dlib's
      `recognizer.describe` on the array (the script saves the PNG, reloads it and
      describes the reloaded pixels, so the last check is of the file on disk).
    clean: the faces of ``rgb`` if already described (saves detecting them twice).

  Returns:
    (protected uint8 H x W x 3, one FaceResult per clean face, in detector order).

  Raises:
    NoFaceError: real dlib finds no face in ``rgb``.
  """
  models = models or recognizer.load_real_dlib()
  check = check or (lambda img: recognizer.describe(img, models))
  clean = list(clean) if clean is not None else recognizer.describe(rgb, models)
  hw = rgb.shape[:2]
  usable = [(f, _chip(f.landmarks, hw)) for f in clean]
  usable = [(f, c) for f, c in usable if c is not None]
  if not usable:
    raise NoFaceError('no face found')
  regions = [_window(f.box, c, hw, preset.margin, preset.feather) for f, c in usable]
  budget = budget_map(rgb, regions, preset)
  original = rgb.astype(np.float32) / 255.0
  adv = original.copy()
  chips = [c for _, c in usable]
  todo = list(range(len(usable)))
  rounds = [0] * len(usable)
  model_d: list[float | None] = [None] * len(usable)
  found: Sequence[recognizer.FaceRecord] = []
  matches: list[int | None] = [None] * len(usable)
  for rnd in range(preset.rounds):
    steps = preset.steps if rnd == 0 else preset.extra_steps
    for i in todo:
      region = regions[i]
      if rnd > 0 and matches[i] is not None:  # re-align on the protected photo's landmarks
        chips[i] = _chip(found[matches[i]].landmarks, hw) or chips[i]
      try:
        geom = warp.geometry(chips[i], region.top, region.left, region.size)
      except ValueError:
        geom = warp.geometry(usable[i][1], region.top, region.left, region.size)
        chips[i] = usable[i][1]
      t, l = region.top, region.left
      (wh, ww), side = region.size, bucket_side(*region.size)
      sl = (slice(t, t + wh), slice(l, l + ww))
      # Padded to the compile bucket: edge pixels (what the window's own filters repeat at
      # its border, so JPEG / resize views are unchanged) with budget 0; ``scope`` keeps the
      # step sizes those of the unpadded window. The chip never reads the padding
      # (`warp.geometry` checked it lies in the unpadded window).
      scope = pad_to_bucket(np.ones((wh, ww, 1), np.float32), side, 'constant')
      window, d = attack_lib.protect_window(
          apply_fn, params, jnp.asarray(pad_to_bucket(original[sl], side)),
          jnp.asarray(pad_to_bucket(adv[sl], side)),
          jnp.asarray(pad_to_bucket(budget[sl], side, 'constant')), geom,
          jnp.asarray(usable[i][0].descriptor),
          jax.random.fold_in(jax.random.fold_in(key, rnd), i), jnp.asarray(steps, jnp.int32),
          config=preset.attack, n_down=chips[i].n_down, scope=jnp.asarray(scope))
      adv[sl] = np.asarray(window)[:wh, :ww]
      rounds[i] += 1
      model_d[i] = float(d)
    protected = np.round(adv * 255.0).astype(np.uint8)
    found = check(protected)
    matches = recognizer.match_faces([f for f, _ in usable], found)
    dist = [None if m is None else recognizer.distance(usable[i][0].descriptor,
                                                       found[m].descriptor)
            for i, m in enumerate(matches)]
    # The preset may also ask for the target after JPEG / resizing (the robust one).
    worst = list(dist)
    for kind in preset.check_degradations:
      seen = recognizer.describe(quality.DEGRADATIONS[kind](protected), models)
      for i, m in enumerate(recognizer.match_faces([f for f, _ in usable], seen)):
        if m is not None:
          d = recognizer.distance(usable[i][0].descriptor, seen[m].descriptor)
          worst[i] = d if worst[i] is None else min(worst[i], d)
    todo = [i for i, d in enumerate(worst) if d is not None and d <= preset.target]
    if not todo:
      break
  results = []
  for i, (face, _) in enumerate(usable):
    d = dist[i]
    results.append(FaceResult(box=face.box, distance=d,
                              protected=d is None or d > recognizer.SAME_PERSON_THRESHOLD,
                              rounds=rounds[i], model_distance=model_d[i]))
  return protected, results
