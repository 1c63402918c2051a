"""Target identities: where a protected face is pulled towards (`AttackConfig.target_weight`).

Moving a face away from its own descriptor (dodging) is what every preset does; the
targeted form also pulls it towards another identity's descriptor, far from the person's
own, as Fawkes (Shan et al. 2020) and TIP-IM (Yang et al. 2021) do: recognizers trained
apart tend to agree on where a given identity lies, so a pull towards one place may move a
recognizer the attack never saw the same way.

The project ships no target: a target is the photos of someone the user chooses (a
consenting friend, or a portrait free to use), never a real person of the research sets.
The experiments take candidates from a dataset folder the gallery does not hold (ORL
against the GT gallery) and give each probe the candidate farthest from it.

  faces = [recognizer.describe(rgb, models, recognizers=names)[0] for rgb in their_photos]
  target = identity_descriptors(faces, names)   # {name: (D,)}
  protect_photo(rgb, preset_with_target_weight, key, recognizers=..., target=target)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from fgsm_jax.protect import recognizer, registry


def identity_descriptors(faces: Sequence[recognizer.FaceRecord], names: Sequence[str]
                         ) -> dict[str, np.ndarray]:
  """One identity's descriptor per recognizer: the mean of its faces' (re-normalised to
  unit length for 'cosine' recognizers, whose descriptors live on the sphere).

  Args:
    faces: faces of one person (`recognizer.describe`), each with ``names``' descriptors.
    names: recognizer names (`registry.NAMES`).

  Returns:
    {name: float32 (D,)}.

  Raises:
    ValueError: no face, or a face lacks a descriptor asked for.
  """
  if not faces:
    raise ValueError('a target identity needs at least one face')
  out = {}
  for name in registry.check_names(names):
    rows = [f.descriptor_of(name) for f in faces]
    if any(r is None for r in rows):
      raise ValueError(f'a target face lacks its {name} descriptor')
    mean = np.mean(np.stack(rows).astype(np.float32), axis=0)
    if registry.spec(name).metric == 'cosine':
      mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    out[name] = mean.astype(np.float32)
  return out


def separation(face: recognizer.FaceRecord, target: Mapping[str, np.ndarray],
               names: Sequence[str]) -> float:
  """How far ``target`` is from ``face`` for the least convinced of ``names``: the smallest
  distance over them, each in units of its recognizer's threshold."""
  return min(recognizer.distance(face.descriptor_of(n), target[n], n)
             / registry.spec(n).threshold for n in names)


def farthest(face: recognizer.FaceRecord, candidates: Mapping[str, Mapping[str, np.ndarray]],
             names: Sequence[str]) -> str:
  """The candidate identity whose `separation` from ``face`` by ``names`` is the largest
  (Fawkes's choice: a target far from the person for every model attacked, so the pull
  goes a long way before it meets the person's own region). Judge with ``names`` the
  attacked recognizers only: a left-out one must not pick the target.

  Raises:
    ValueError: no candidate.
  """
  if not candidates:
    raise ValueError('no candidate target')
  return max(candidates, key=lambda who: separation(face, candidates[who], names))
