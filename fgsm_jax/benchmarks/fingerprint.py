"""What a change did to the compiled attacks and to protected photos: fingerprints to compare.

Two checkouts give the same ``program_fingerprint`` when an attack lowers to the same
StableHLO operations (locations stripped), so a refactor that keeps it changes neither the
results' arithmetic nor the speed; ``protect_fingerprints`` protects photos with the given
presets, to compare pixel for pixel (``compare_protected``).
"""
from __future__ import annotations

import collections
import hashlib
import re
from typing import Any, Sequence

import numpy as np


def program_fingerprint(attack: str, batch: int = 8, eps: float = 8 / 255
                        ) -> dict[str, Any]:
  """{'lines', 'ops' (operation -> count), 'hash'} of ``attack`` (an ``attacks`` name) lowered
  on the fast original CNN (50 classes, 160 x 160) at ``batch``."""
  import jax
  import jax.numpy as jnp
  from fgsm_jax import attacks
  from fgsm_jax.models import ApplyFn, fast_original_cnn
  module = fast_original_cnn(50)
  params = module.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
  apply_fn, fn = ApplyFn(module), getattr(attacks, attack)
  x, y = jnp.zeros((batch, 160, 160, 3)), jnp.zeros((batch,), jnp.int32)
  text = jax.jit(lambda p, xs, ys: fn(apply_fn, p, xs, ys, eps, key=jax.random.key(0))
                 ).lower(params, x, y).as_text()
  text = re.sub(r'loc\(.*?\)|#loc\d*', '', text)
  ops = collections.Counter(re.findall(r'stablehlo\.\w+', text))
  digest = hashlib.sha256(repr(sorted(ops.items())).encode()).hexdigest()[:12]
  return {'lines': len(text.splitlines()), 'ops': dict(sorted(ops.items())), 'hash': digest}


def protect_fingerprints(photos: Sequence[str], presets: Sequence[str], seed: int = 0
                         ) -> dict[str, np.ndarray]:
  """``{'<photo>|<preset>': protected uint8}`` for every photo and preset, both recognizers
  attacked (``photo.protect_photo``, PRNG key ``seed``)."""
  import jax
  from fgsm_jax.data import images
  from fgsm_jax.protect import photo, presets as presets_lib, recognizer
  recognizers = photo.load_recognizers(recognizer.RECOGNIZERS)
  models = recognizer.load_real_dlib()
  out = {}
  for path in photos:
    rgb = images.load_rgb(path)
    clean = recognizer.describe(rgb, models, recognizers=recognizer.RECOGNIZERS)
    for name in presets:
      adv, _ = photo.protect_photo(rgb, presets_lib.PRESETS[name], jax.random.key(seed),
                                   recognizers=recognizers, models=models, clean=clean)
      out[f'{path}|{name}'] = adv
  return out


def compare_protected(before: dict[str, np.ndarray], after: dict[str, np.ndarray]
                      ) -> dict[str, str]:
  """Per key of both: 'identical', or how many pixels differ and by how many levels."""
  out = {}
  for key in sorted(set(before) & set(after)):
    d = np.abs(before[key].astype(int) - after[key].astype(int))
    out[key] = ('identical' if not d.any()
                else f'{int((d > 0).sum())} values differ, by at most {int(d.max())} levels')
  return out
