"""Measuring protection: a real-dlib gallery recognizer, identification, and summaries.

The recognizer is what an adversary with a few clean photos of each person would run:
real dlib's descriptors of the first K photos of every identity form the gallery; a probe
photo's face is identified as the identity of the nearest gallery descriptor (closed set,
rank-1, no threshold -- the strict reading for protection). Also reported per probe: the
nearest distance (so rank-1 with dlib's 0.6 threshold can be derived) and the smallest
distance to the person's own gallery photos (verification: under 0.6 is a match).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from fgsm_jax.data import images as images_lib
from fgsm_jax.protect import recognizer, registry


@dataclasses.dataclass
class Gallery:
  """Clean reference descriptors: one row per gallery photo.

  Attributes:
    descriptors: M x D float32, by the recognizer ``recognizer`` (`registry.SPECS`).
    identities: M identity names, aligned with the rows.
    paths: M photo paths.
    skipped: one-line reasons for the gallery photos left out (unreadable, no face).
  """
  descriptors: np.ndarray
  identities: list[str]
  paths: list[Path]
  skipped: list[str]
  recognizer: str = 'dlib'


def largest(faces: Sequence[recognizer.FaceRecord]) -> recognizer.FaceRecord | None:
  """The face with the largest detector box (the photo's subject), or None."""
  if not faces:
    return None
  return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def build_galleries(photos: Iterable[tuple[str, Path]],
                    models: recognizer.RealDlib | None = None,
                    recognizers: Sequence[str] = ('dlib',)) -> dict[str, Gallery]:
  """Per recognizer, its descriptor of the largest face of each (identity, path) photo.

  Every recognizer sees the same face (real dlib's detector box), so the galleries hold
  the same photos.
  """
  names = registry.check_names(recognizers)
  models = models or recognizer.load_real_dlib()
  descs: dict[str, list[np.ndarray]] = {n: [] for n in names}
  ids, paths, skipped = [], [], []
  for identity, path in photos:
    try:
      rgb = images_lib.load_rgb(path)
    except images_lib.ImageError as e:
      skipped.append(str(e))
      continue
    face = largest(recognizer.describe(rgb, models, recognizers=names))
    if face is None:
      skipped.append(f'{path}: no face found')
      continue
    for n in names:
      descs[n].append(face.descriptor_of(n))
    ids.append(identity)
    paths.append(Path(path))
  if not ids:
    raise ValueError('no gallery photo has a face dlib can find')
  return {n: Gallery(np.stack(descs[n]).astype(np.float32), list(ids), list(paths),
                     list(skipped), n) for n in names}


def build_gallery(photos: Iterable[tuple[str, Path]],
                  models: recognizer.RealDlib | None = None) -> Gallery:
  """Real dlib's descriptor of the largest face of each (identity, path) photo."""
  return build_galleries(photos, models, ('dlib',))['dlib']


def identify(gallery: Gallery, descriptor: np.ndarray | None, identity: str
             ) -> dict[str, Any]:
  """How the gallery recognizer sees one probe face.

  Args:
    gallery: the clean gallery.
    descriptor: the probe face's descriptor by the gallery's recognizer, or None when no
      face was found.
    identity: who the probe really is.

  Returns:
    {'face_found', 'predicted' (nearest gallery identity or None), 'rank1' (predicted is
    identity), 'nearest_distance', 'own_distance' (to the closest gallery photo of
    identity; None if the gallery has none), 'verified' (own_distance under the
    recognizer's threshold, 0.6 for dlib), 'rank1_at_threshold' (rank1 and
    nearest_distance under it)}.
  """
  spec = registry.spec(gallery.recognizer)
  threshold = spec.threshold
  if descriptor is None:
    return {'face_found': False, 'predicted': None, 'rank1': False, 'nearest_distance': None,
            'own_distance': None, 'verified': False, 'rank1_at_threshold': False}
  d = registry.distance(gallery.descriptors, np.asarray(descriptor), spec.metric)
  best = int(np.argmin(d))
  own = [float(v) for v, who in zip(d, gallery.identities) if who == identity]
  own_d = min(own) if own else None
  predicted = gallery.identities[best]
  return {'face_found': True, 'predicted': predicted, 'rank1': predicted == identity,
          'nearest_distance': float(d[best]), 'own_distance': own_d,
          'verified': own_d is not None and own_d < threshold,
          'rank1_at_threshold': predicted == identity and float(d[best]) < threshold}


def _mean(values: Iterable[float | None]) -> float | None:
  vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  return float(np.mean(vals)) if vals else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Rates over probe records (each an `identify` dict, optionally with quality keys).

  Returns:
    {'probes', 'rank1', 'rank1_at_threshold', 'psr' (not identified as oneself, no face
    included), 'no_face' (fraction with no face found), 'psr_face_found' (PSR over the
    probes where a face was found), 'verification_failure' (no own gallery photo under
    0.6), and the means of any quality keys present}.
  """
  n = len(records)
  if n == 0:
    return {'probes': 0}
  found = [r for r in records if r['face_found']]
  out: dict[str, Any] = {
      'probes': n,
      'rank1': sum(r['rank1'] for r in records) / n,
      'rank1_at_threshold': sum(r['rank1_at_threshold'] for r in records) / n,
      'psr': sum(not r['rank1'] for r in records) / n,
      'no_face': (n - len(found)) / n,
      'psr_face_found': (sum(not r['rank1'] for r in found) / len(found)) if found else None,
      'verification_failure': sum(not r['verified'] for r in records) / n,
      'mean_own_distance': _mean(r['own_distance'] for r in records),
  }
  for key in ('psnr', 'ssim', 'max_change', 'face_psnr', 'face_ssim', 'face_max_change',
              'distance', 'seconds'):
    if any(key in r for r in records):
      out[f'mean_{key}'] = _mean(r.get(key) for r in records)
  if any('face_ssim' in r for r in records):
    vals = [r['face_ssim'] for r in records if r.get('face_ssim') is not None]
    out['min_face_ssim'] = float(min(vals)) if vals else None
  if any('max_change' in r for r in records):
    vals = [r['max_change'] for r in records if r.get('max_change') is not None]
    out['max_max_change'] = float(max(vals)) if vals else None
  return out


PROTOCOLS = ('whitebox', 'leave-one-out', 'one-to-one', 'both', 'all')


def attack_sets(names: Sequence[str], protocol: str) -> list[tuple[str, ...]]:
  """The recognizer sets to attack with, each judged by every one of ``names``:
  'whitebox' (all of ``names`` at once); 'leave-one-out' (all but R, for each R: R then
  judges an attack that never saw it); 'one-to-one' (each R alone: the others judge an
  attack on R alone, the matrix of transfer between pairs); 'both' (whitebox and
  leave-one-out); 'all' (the three). A set that two protocols share is attacked once."""
  names = registry.check_names(names)
  if protocol not in PROTOCOLS:
    raise ValueError(f'protocol must be one of {", ".join(PROTOCOLS)}, got {protocol!r}')
  sets = []
  if protocol in ('whitebox', 'both', 'all'):
    sets.append(names)
  if protocol in ('leave-one-out', 'both', 'all') and len(names) > 1:
    sets += [tuple(n for n in names if n != left) for left in names]
  if protocol in ('one-to-one', 'all'):
    sets += [(n,) for n in names]
  return list(dict.fromkeys(sets))


def judge_protected(original: np.ndarray, protected: np.ndarray,
                    subject: recognizer.FaceRecord, identity: str,
                    galleries: dict[str, Gallery], degradations: dict[str, Any],
                    models: recognizer.RealDlib | None = None) -> dict[str, Any]:
  """How every gallery's recognizer sees a protected probe, as saved and degraded.

  Args:
    original, protected: uint8 H x W x 3, the clean photo and the protected one.
    subject: the probe's face in the clean photo, with every judge's descriptor.
    identity: who the probe is.
    galleries: per judge (recognizer name), its clean gallery (`build_galleries`).
    degradations: name -> function on uint8 photos (``quality.DEGRADATIONS``; 'none' is
      the identity), applied to both photos before judging and comparing.

  Returns:
    {degradation: {'judges': {name: `identify` dict + 'distance' (from the clean face,
    the recognizer's own metric)}, and `quality.compare`'s keys}}.
  """
  from fgsm_jax import quality  # pylint: disable=import-outside-toplevel
  names = tuple(galleries)
  out = {}
  for deg, degrade in degradations.items():
    orig_d, prot_d = degrade(original), degrade(protected)
    found = recognizer.describe(prot_d, models, recognizers=names)
    match = recognizer.match_faces([subject], found)[0]
    judged = {}
    for n in names:
      desc = None if match is None else found[match].descriptor_of(n)
      r = identify(galleries[n], desc, identity)
      r['distance'] = None if desc is None else recognizer.distance(subject.descriptor_of(n),
                                                                    desc, n)
      judged[n] = r
    out[deg] = {'judges': judged, **quality.compare(orig_d, prot_d, [subject.box])}
  return out


def summarize_judged(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Per degradation and judge, `summarize` over probe records (each with 'judged' from
  `judge_protected` and 'seconds')."""
  if not records:
    return {}
  out: dict[str, Any] = {}
  for deg, first in records[0]['judged'].items():
    out[deg] = {}
    for n in first['judges']:
      rows = []
      for r in records:
        j = r['judged'][deg]
        rows.append({**j['judges'][n], 'seconds': r['seconds'],
                     **{k: v for k, v in j.items() if k != 'judges'}})
      out[deg][n] = summarize(rows)
  return out
