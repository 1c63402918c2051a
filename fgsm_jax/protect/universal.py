"""One change for all of a person's photos: a per-person universal perturbation.

OPOM (Zhong and Deng, "OPOM: Customized Invisible Cloak towards Face Privacy Protection",
TPAMI 2022) protects a person with one perturbation for all of their photos, optimised over
several of them at once. Here the change lives in the face window of the person's first
photo; each other photo sees it carried onto its own face by the similarity between the two
faces' five landmarks (`photo.sample`, as `photo.carry_perturbation` carries one),
clipped to that photo's own budget. One attack (the engine's `iterative.update_loop`, the
protection's ensemble loss of `attack._member_loss`) ascends the sum of every photo's loss:

  x_0 = window_0 + delta,   x_j = window_j + clip(sample(delta, coords_j), +-budget_j)
  loss = sum_j sum_m  w_m  * mean-|.|-normalised  d_m(x_j) / threshold_m

``universal_change`` returns it as a `photo.Carried`, which `photo.protect_photo(carry=...)`
applies to any photo of the person (checked before any step; rounds only where a recognizer
still finds the face).
"""
from __future__ import annotations

# The single photo's attack pieces (attack._member_loss, photo._budget, ...) are this
# module's too: one attack, over several photos.
# pylint: disable=protected-access

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import image_ops
from fgsm_jax.attacks import iterative
from fgsm_jax.protect import attack as attack_lib
from fgsm_jax.protect import photo as photo_lib
from fgsm_jax.protect import recognizer, registry
from fgsm_jax.protect.presets import Preset


def window_coords(src: photo_lib.FaceState, dst: photo_lib.FaceState, side: int
                  ) -> np.ndarray:
  """Where each pixel of ``dst``'s window (padded to ``side``) falls in ``src``'s window,
  through the similarity between the faces' landmarks: side x side x 2 (row, col), float32."""
  coords = photo_lib.similar_coords(dst.clean.landmarks5, src.clean.landmarks5,
                                    dst.region.top, dst.region.left, side, side)
  return coords - np.asarray([src.region.top, src.region.left], np.float32)


_STATIC = ('members', 'config')


@functools.partial(jax.jit, static_argnames=_STATIC)
def _run(members, params, windows0, budgets, scopes, geoms, refs, coords, key, steps, *,
         config):
  """The attack on the first window's change, every photo's loss summed (module docstring);
  members: per photo, the ensemble's `Surrogate`s (their pyramid depths are the photo's)."""
  w0, scope0 = windows0[0], scopes[0][None]
  total = sum(m.weight for m in members[0])
  clean_stats = (image_ops.ssim_clean_stats(w0) if config.ssim_weight > 0
                 else None)

  def seen_by(j, delta):
    if j == 0:
      return w0 + delta
    moved = jnp.clip(photo_lib.sample(delta, coords[j - 1]), -budgets[j], budgets[j])
    return jnp.clip(windows0[j] + moved, 0.0, 1.0)

  def gradient(x, keys):
    delta = x[0] - w0
    g = jnp.zeros_like(x)
    for j, ensemble in enumerate(members):
      chip_index, chip_n_down = attack_lib._chip_member(ensemble)
      for i, mem in enumerate(ensemble):
        def loss(d, j=j, i=i, mem=mem):
          return attack_lib._member_loss(
              mem, params[i], seen_by(j, d), windows0[j], geoms[j], refs[j], i, chip_index,
              chip_n_down, jax.random.fold_in(keys[0], j), config)
        gi = jax.grad(loss)(delta)[None]
        g = g + (mem.weight / total) * gi / iterative.mean_abs(gi, scope0)
    if config.ssim_weight > 0:  # the first photo's SSIM term, as a single photo's attack
      g = g + config.ssim_weight * image_ops.ssim_sum_grad(
          x[0], clean_stats)[None] * scope0
    if config.chroma < 1:
      g = attack_lib.keep_chroma(g, config.chroma)
    return g

  budget0 = budgets[0][None]
  return iterative.update_loop(
      gradient, w0[None], budget0, config.step * budget0, steps,
      config=config.update_config(), keys=key[None], start=w0[None], scope=scope0)[0]


def universal_change(rgbs: Sequence[np.ndarray], faces: Sequence[recognizer.FaceRecord],
                     preset: Preset, key: jax.Array, *,
                     recognizers: Sequence[registry.Recognizer], steps: int | None = None
                     ) -> photo_lib.Carried:
  """One change for the person whose face ``faces[j]`` is in photo ``rgbs[j]``.

  Args:
    rgbs: uint8 H x W x 3 photos of one person (sizes may differ).
    faces: the person's face in each (real dlib's record, with the attacked recognizers'
      descriptors: `recognizer.describe`).
    preset: budget (its top rung, ``max_eps``), region, views and update (`AttackConfig`;
      its ``target_weight`` is not applied here: the change only moves the person away
      from their own descriptors, and each photo's own rounds pull towards a target).
    key: PRNG key (jitter, input diversity).
    recognizers: the ensemble (`registry.load`).
    steps: attack steps (default: every step the preset's rounds could take).

  Returns:
    `photo.Carried`: the change over the first photo, with its face's landmarks.

  Raises:
    ValueError: no photos, or a face whose crops cannot be placed.
  """
  # The top rung of the eps ladder: one change must hold on photos it never saw (tried on
  # one GT person, a change made at the first rung left every unseen photo identified).
  preset = dataclasses.replace(preset, eps=preset.max_eps, eps_ladder=())
  if not rgbs or len(rgbs) != len(faces):
    raise ValueError(f'expected one face per photo, at least one; got {len(rgbs)} photos '
                     f'and {len(faces)} faces')
  attacked = registry.check_names([r.name for r in recognizers])
  states, windows0, budgets, scopes, geoms, members = [], [], [], [], [], []
  for rgb, face in zip(rgbs, faces):
    state = photo_lib.start_face(face, (), rgb.shape[:2], attacked, attacked, preset)
    if state is None:
      raise ValueError('a face whose crops cannot be placed on its landmarks')
    side = photo_lib.bucket_side(*state.region.size)
    wh, ww = state.region.size
    budget = photo_lib._budget(rgb, [state], preset)
    original = rgb.astype(np.float32) / 255.0
    sl = state.slices
    windows0.append(jnp.asarray(photo_lib.pad_to_bucket(original[sl], side)))
    budgets.append(jnp.asarray(photo_lib.pad_to_bucket(budget[sl], side, 'constant')))
    scopes.append(jnp.asarray(photo_lib.pad_to_bucket(np.ones((wh, ww, 1), np.float32), side,
                                                      'constant')))
    geoms.append(tuple(photo_lib._geometry(r, state.start[r.spec.alignment], state.region)
                       for r in recognizers))
    members.append(tuple(photo_lib._surrogate(
        r, state.start[r.spec.alignment], preset.weight(r.name), preset.views_of(r.name))
        for r in recognizers))
    states.append(state)
  coords = tuple(jnp.asarray(window_coords(states[0], s, photo_lib.bucket_side(*s.region.size)))
                 for s in states[1:])
  if steps is None:
    steps = preset.steps + (preset.rounds - 1) * preset.extra_steps
  window = _run(tuple(members), tuple(r.params for r in recognizers), tuple(windows0),
                tuple(budgets), tuple(scopes), tuple(geoms),
                tuple(tuple(jnp.asarray(v) for v in s.refs) for s in states), coords, key,
                jnp.asarray(steps, jnp.int32), config=preset.attack)
  first = states[0]
  wh, ww = first.region.size
  delta = np.zeros(rgbs[0].shape[:2] + (3,), np.float32)
  delta[first.slices] = np.asarray(window)[:wh, :ww] - np.asarray(windows0[0])[:wh, :ww]
  return photo_lib.Carried(delta=delta, landmarks5=np.asarray(first.clean.landmarks5))
