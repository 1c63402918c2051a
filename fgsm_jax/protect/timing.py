"""The protection attack's compute for one face, per preset (experiments/protect_timing.py).

Runs `attack.protect_window` as `photo.protect_photo` does (one call per round, the window
padded to its compile bucket), on a synthetic window, so it needs neither real dlib nor a
photo: what it measures is the attack's cost on the device JAX runs on.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import faces as faces_lib
from fgsm_jax.faces import arcface
from fgsm_jax.protect import attack as attack_lib
from fgsm_jax.protect import photo, registry
from fgsm_jax.protect.presets import Preset


def synthetic_photo(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
  """A smooth random texture, uint8 H x W x 3 (no person; the attack's cost does not
  depend on what the pixels show)."""
  rng = np.random.default_rng(seed)
  low = rng.uniform(40, 215, (hw[0] // 16 + 2, hw[1] // 16 + 2, 3))
  big = np.kron(low, np.ones((16, 16, 1)))[:hw[0], :hw[1]]
  return np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)


def _transform(alignment: registry.Alignment, landmarks5: np.ndarray, arcface5: np.ndarray,
               photo_hw: tuple[int, int]) -> Any:
  """The alignment's crop geometry from the face's points (dlib's 5 landmarks for the chip,
  the five ArcFace points for the others)."""
  if alignment.kind == 'dlib_chip':
    return faces_lib.chip_transform(landmarks5, photo_hw)
  return arcface.arcface_transform(arcface5, photo_hw, np.asarray(alignment.template),
                                   alignment.size)


def time_preset(preset: Preset, recognizers: Sequence[registry.Recognizer],
                landmarks5: Any, arcface5: Any, box: tuple[int, int, int, int],
                photo_hw: tuple[int, int], repeats: int = 3) -> dict[str, Any]:
  """Seconds per face of the preset's worst case (all rounds), median of ``repeats``.

  Args:
    preset: the settings timed.
    recognizers: the ensemble (`registry.load`).
    landmarks5: dlib's 5 landmarks (x, y) of the face; arcface5: its five ArcFace points.
    box: the face's detector box (left, top, right, bottom); photo_hw: the photo's size.
    repeats: timed runs after one that compiles.
  """
  rgb = synthetic_photo(photo_hw)
  landmarks5 = np.asarray(landmarks5, np.float64)
  arcface5 = np.asarray(arcface5, np.float64)
  aligned = {a: _transform(a, landmarks5, arcface5, photo_hw)
             for a in dict.fromkeys([registry.DLIB_CHIP]
                                    + [r.spec.alignment for r in recognizers])}
  region = photo._window(box, aligned[registry.DLIB_CHIP],
                         [t for a, t in aligned.items() if a.kind == 'arcface'], photo_hw,
                         preset.margin, preset.feather)
  budget = photo.budget_map(rgb, [region], preset)
  (wh, ww), side = region.size, photo.bucket_side(*region.size)
  t, l = region.top, region.left
  sl = (slice(t, t + wh), slice(l, l + ww))
  window = jnp.asarray(photo.pad_to_bucket(rgb[sl].astype(np.float32) / 255.0, side))
  scope = jnp.asarray(photo.pad_to_bucket(np.ones((wh, ww, 1), np.float32), side, 'constant'))
  budget = jnp.asarray(photo.pad_to_bucket(budget[sl], side, 'constant'))
  members = tuple(photo._surrogate(r, aligned[r.spec.alignment], preset.weight(r.name),
                                   preset.views_of(r.name)) for r in recognizers)
  geoms = tuple(photo._geometry(r, aligned[r.spec.alignment], region) for r in recognizers)
  rng = np.random.default_rng(1)
  refs = tuple(jnp.asarray(rng.normal(size=r.spec.dim), jnp.float32) for r in recognizers)
  params = tuple(r.params for r in recognizers)
  rounds = [preset.steps] + [preset.extra_steps] * (preset.rounds - 1)

  def run(key):
    x = window
    for k, steps in enumerate(rounds):
      x, d = attack_lib.protect_window(members, params, window, x, budget, geoms, refs,
                                       jax.random.fold_in(key, k), steps,
                                       config=preset.attack, scope=scope)
    return jax.block_until_ready((x, d))

  start = time.perf_counter()
  run(jax.random.key(0))
  compile_s = time.perf_counter() - start
  seconds = []
  for r in range(repeats):
    start = time.perf_counter()
    run(jax.random.key(r + 1))
    seconds.append(time.perf_counter() - start)
  med = float(np.median(seconds))
  return {'preset': preset.name, 'recognizers': [r.name for r in recognizers],
          'window': list(region.size), 'bucket': side, 'rounds': len(rounds),
          'steps': int(sum(rounds)), 'seconds': seconds, 'seconds_median': med,
          'seconds_per_step': med / max(sum(rounds), 1),
          'compile_seconds': compile_s - med, 'device': str(jax.devices()[0])}
