"""Protecting a whole photo: every face, a feathered region each, checked by the judges.

`protect_photo` is the pipeline of experiments/protect_photos.py without the file
handling: find the faces with real dlib (boxes, landmarks, clean descriptors of every
recognizer involved), then rounds of a small loop over a frozen per-face state
(`FaceState`, one per face, replaced by each step):

  attack_face   attack the face's window with `attack.protect_window` against the ensemble
                of `registry.Recognizer`s (each through its own alignment, re-aligned on the
                landmarks the last check found), from where the last round stopped;
  check_faces   the 8-bit result is checked: the judges find the faces again (``check``: the
                caller may save and reload the file there) and each face gets its distances,
                and per attacked recognizer its distance in units of its threshold;
  decide        per face: go on (some attacked recognizer still places it under the
                preset's target), climb the eps ladder for the next round, or stop.

Recognizers that judge but are not attacked (leave-one-out) never steer the rounds: they
see only the final result.

Budgets: each face's region (the detector box grown by ``margin``, then a raised-cosine
feather) gets its eps (``Preset.eps``, raised round by round for faces still under the
target when the preset has an ``eps_ladder``), weighted by local contrast (``texture``) or
by SSIM's own local variance (``texture_sd``: `ssim_weight`); pixels outside every region
have budget 0 and come out bit-identical to the input.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import faces as faces_lib
from fgsm_jax import quality
from fgsm_jax.faces import arcface
from fgsm_jax.models import lpips as lpips_lib
from fgsm_jax.protect import attack as attack_lib
from fgsm_jax.protect import recognizer, registry
from fgsm_jax.protect.presets import Preset
from fgsm_jax.protect.registry import Recognizer  # noqa: F401  (re-exported)

# Rows of a face's references when photos of the same person are given (`protect_photo`'s
# ``person``): the clean descriptor, then up to PERSON_REFS - 1 others, padded by repeating
# it, so one compiled program serves any number of them.
PERSON_REFS = 16
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
# first of these sides that holds it. XLA compiles once per shape (7-14 s on a 2-core CPU;
# the compiled and the exported programs are then cached across runs), while a step's
# window-wide work (image pyramids of both crops, TI, the update) grows with the padded
# area: with both recognizers a step on a 288 px window took 88 ms padded to 512 and 42 ms
# padded to 384. So the ladder steps by 1.5 and 1.33 (256, 384, 512, 768, ...): GT's
# windows (240-432 px) use three programs.
BUCKET_SIDES = tuple(sorted(base * 2 ** k for k in range(8) for base in (256, 384)))


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


# check(protected uint8, recognizer names, known) -> faces with those names' descriptors;
# ``known``: faces it returned for these same pixels, to complete (no new detection).
Check = Callable[[np.ndarray, Sequence[str], Sequence[recognizer.FaceRecord] | None],
                 Sequence[recognizer.FaceRecord]]


class NoFaceError(ValueError):
  """Real dlib finds no face in the photo (nothing to protect)."""


@dataclasses.dataclass
class FaceResult:
  """One face of the photo after protection.

  Attributes:
    box: the face's detector box in the original photo.
    distances: per judge (recognizer name), its distance between the clean descriptor and
      that of the face found at the same place in the protected photo (its own metric);
      None when no face is found there.
    protected: every judge is past its same-person threshold, or the face is not found.
    rounds: attack rounds this face received.
    model_distances: per attacked recognizer, the Flax model's distance after the last
      round (attack-side view).
    landmarks5: dlib's 5 landmarks of the clean face ((x, y) five times; a tuple, so
      results compare with ==).
  """
  box: recognizer.Box
  distances: dict[str, float | None]
  protected: bool
  rounds: int
  model_distances: dict[str, float] = dataclasses.field(default_factory=dict)
  landmarks5: tuple[tuple[float, float], ...] | None = None

  @property
  def distance(self) -> float | None:
    """Real dlib's distance (None: not judged by dlib, or the face is not found)."""
    return self.distances.get('dlib')

  def fools(self, name: str) -> bool:
    """Whether the judge ``name`` no longer matches this face to its clean self."""
    d = self.distances.get(name)
    return d is None or d > registry.spec(name).threshold


def load_recognizers(names: Sequence[str], paths: Mapping[str, Any] | None = None
                     ) -> list[Recognizer]:
  """The Flax ports of the named recognizers (`registry.NAMES`), loaded once per process
  (`registry.load`; ``paths``: name -> weights file, default each loader's own)."""
  return registry.load(names, paths)

def _window(box: recognizer.Box, chip: faces_lib.ChipTransform,
            crops: Sequence[arcface.ArcFaceTransform] | arcface.ArcFaceTransform | None,
            photo_hw: tuple[int, int], margin: float, feather: float) -> faces_lib.Region:
  """The face's window and mask geometry: box region + chip + crops, bucketed, 16-aligned.

  The window holds the full-budget area (box grown by ``margin`` x side), the feather band,
  dlib's chip's rotated rectangle and the footprint of each ArcFace-type crop (``crops``:
  their transforms, any template and size), with room for jitter; it is a square of a
  WINDOW_SIZES side (a photo smaller than that caps it), its origin on the 16-pixel grid
  when that still covers the face.
  """
  if crops is None or isinstance(crops, arcface.ArcFaceTransform):
    crops = () if crops is None else (crops,)
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
  for arc in crops:  # an ArcFace crop reaches lower (mouth): its footprint, with room
    a, b, c, d, e, f = arc.affine
    n = arc.size - 1
    xs = [a * x + b * y + c for x in (0, n) for y in (0, n)]
    ys = [d * x + e * y + f for x in (0, n) for y in (0, n)]
    room = CHIP_JITTER_ROOM * n * arc.scale / 2 + 2
    need = (min(need[0], min(ys) - room), min(need[1], min(xs) - room),
            max(need[2], max(ys) + room), max(need[3], max(xs) + room))
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


def ssim_weight(rgb: np.ndarray, sd_full: float) -> np.ndarray:
  """Per-pixel, per-channel budget weight in (0, 1] shaped by SSIM's own formula, H x W x 3.

  SSIM (Wang et al. 2004; `fgsm_jax.quality`: 11 x 11 Gaussian window, sigma 1.5, per RGB
  channel, C2 = (0.03 x 255)^2) scores a change of local variance s^2 that is uncorrelated
  with the image as about (2 var + C2) / (2 var + C2 + s^2), var the local variance of the
  original at that window. A change costs the same SSIM everywhere when s grows as
  sqrt(2 var + C2), so the weight is sqrt((2 var + C2) / (2 sd_full^2 + C2)), clipped to 1:
  the full eps where the local sd (same window, same channel) is at least ``sd_full``,
  and sqrt(C2 / (2 sd_full^2 + C2)) on perfectly flat areas (0.48 for sd_full 10).
  """
  if not sd_full > 0:
    raise ValueError(f'sd_full must be > 0 (0-255 scale), got {sd_full}')
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f'expected an H x W x 3 photo, got shape {rgb.shape}')
  x = rgb.astype(np.float64)
  half = quality.SSIM_WINDOW // 2
  pad = lambda v: np.pad(v, ((half, half), (half, half), (0, 0)), mode='reflect')
  mean = quality.local_mean(pad(x))
  var = np.maximum(quality.local_mean(pad(x * x)) - mean * mean, 0.0)
  c2 = (quality.SSIM_K2 * quality.DATA_RANGE) ** 2
  w = np.sqrt((2 * var + c2) / (2 * sd_full ** 2 + c2))
  return np.minimum(w, 1.0).astype(np.float32)


def eye_mask(hw: tuple[int, int], landmarks5: Sequence[np.ndarray], inside: float,
             soft_px: float = 2.0) -> np.ndarray:
  """Per-pixel weight, H x W x 1: ``inside`` over each eye, 1 elsewhere.

  An eye is the ellipse over its two corners (dlib's 5 landmarks: 0-1 and 2-3 are the
  corners of the two eyes): centred between them, 1.3 x half their distance along the
  line through them (the lids' ends) and 0.6 of that across, with a linear edge of
  ``soft_px`` pixels so the budget does not step at the rim. People look at eyes first,
  and a changed iris colour or speck on the white is what gives a protected face away.
  """
  rows, cols = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64)
  outside = np.ones(hw, np.float64)
  for pts in landmarks5:
    pts = np.asarray(pts, np.float64)
    for a, b in ((pts[0], pts[1]), (pts[2], pts[3])):
      centre, axis = (a + b) / 2, b - a
      half = np.hypot(*axis) / 2
      if half < 1:
        continue
      u = axis / (2 * half)
      dx, dy = cols - centre[0], rows - centre[1]
      along, across = dx * u[0] + dy * u[1], -dx * u[1] + dy * u[0]
      major, minor = 1.3 * half, 0.6 * 1.3 * half
      # Distance outside the ellipse, roughly in pixels (radial, scaled by the minor axis).
      r = np.sqrt((along / major) ** 2 + (across / minor) ** 2)
      np.minimum(outside, np.clip((r - 1) * minor / soft_px, 0.0, 1.0), out=outside)
  return (inside + (1 - inside) * outside)[..., None].astype(np.float32)


def budget_map(rgb: np.ndarray, regions: Sequence[faces_lib.Region], preset: Preset,
               eps: Sequence[float] | None = None,
               landmarks5: Sequence[np.ndarray] = ()) -> np.ndarray:
  """Per-pixel L-inf budget in [0, 1] units: max over faces of eps_i x face mask_i, times
  the texture weight (H x W x 1) or the SSIM-shaped weight (H x W x 3, ``texture_sd``).

  Args:
    eps: per region, its eps on the 0-255 scale (default: ``preset.eps`` for all; the
      rounds' ladder raises it for faces still matched, `Preset.eps_at`).
    landmarks5: per face, dlib's 5 landmarks; with ``preset.eye_budget`` < 1 the budget
      over each eye is scaled by it (`eye_mask`).
  """
  eps = [preset.eps] * len(regions) if eps is None else list(eps)
  if len(eps) != len(regions):
    raise ValueError(f'expected one eps per region, got {len(eps)} for {len(regions)}')
  mask = np.zeros(rgb.shape[:2] + (1,), np.float32)
  for r, e in zip(regions, eps):
    np.maximum(mask, np.asarray(faces_lib.full_mask(rgb.shape[:2], [r])) * (e / 255.0), out=mask)
  if preset.eye_budget < 1 and len(landmarks5):
    mask = mask * eye_mask(rgb.shape[:2], landmarks5, preset.eye_budget)
  if preset.texture_sd <= 0:
    return (mask * texture_weight(rgb, preset.texture)).astype(np.float32)
  # The SSIM-shaped weight only over the regions' bounding box, with its window's reach
  # around it (the same values as on the whole photo, at a fraction of the cost).
  out = np.zeros(rgb.shape[:2] + (3,), np.float32)
  rows, cols = np.nonzero(mask[..., 0].any(axis=1))[0], np.nonzero(mask[..., 0].any(axis=0))[0]
  if rows.size:
    reach = quality.SSIM_WINDOW // 2
    t, b = max(rows[0] - reach, 0), min(rows[-1] + 1 + reach, rgb.shape[0])
    l, r = max(cols[0] - reach, 0), min(cols[-1] + 1 + reach, rgb.shape[1])
    out[t:b, l:r] = mask[t:b, l:r] * ssim_weight(rgb[t:b, l:r], preset.texture_sd)
  return out


def _chip(landmarks: np.ndarray, photo_hw: tuple[int, int]) -> faces_lib.ChipTransform | None:
  try:
    return faces_lib.chip_transform(landmarks, photo_hw)
  except ValueError:
    return None


def _surrogate(rec: Recognizer, transform: Any, weight: float, views: int = 0
               ) -> attack_lib.Surrogate:
  """The attack's member for ``rec`` with the face's crop ``transform`` (its alignment's)."""
  return attack_lib.Surrogate(rec.spec, weight, transform.n_down, views)


def _geometry(rec: Recognizer, transform: Any, region: faces_lib.Region) -> Any:
  """``rec``'s crop geometry in the face's window (raises ValueError: outside it)."""
  return rec.spec.alignment.geometry(transform, region)


def roles(recognizers: Sequence[Recognizer], judges: Sequence[str] | None
          ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
  """(attacked, judges, seeing): the names attacked, those that judge (default: the
  attacked ones) and every name whose descriptors a check must compute (both, once each)."""
  attacked = registry.check_names([r.name for r in recognizers])
  judges = registry.check_names(judges if judges is not None else attacked)
  return attacked, judges, tuple(dict.fromkeys(attacked + judges))


def _same_person(face: recognizer.FaceRecord, person: Sequence[recognizer.FaceRecord]) -> bool:
  """Whether some recognizer places ``face`` within its threshold of one of ``person``."""
  for p in person:
    for name in registry.NAMES:
      a, b = face.descriptor_of(name), p.descriptor_of(name)
      if a is not None and b is not None and (
          recognizer.distance(a, b, name) < registry.spec(name).threshold):
        return True
  return False


def _references(face: recognizer.FaceRecord, others: Sequence[recognizer.FaceRecord],
                name: str) -> np.ndarray:
  """The attack's references for ``face`` and recognizer ``name``: its clean descriptor
  (D,), or with ``others`` a PERSON_REFS x D array (the clean one first, then theirs)."""
  own = np.asarray(face.descriptor_of(name), np.float32)
  if not others:
    return own
  rows = [own] + [np.asarray(o.descriptor_of(name), np.float32)
                  for o in others[:PERSON_REFS - 1]]
  return np.stack(rows + [own] * (PERSON_REFS - len(rows)))


def _identity_ratio(face: recognizer.FaceRecord, others: Sequence[recognizer.FaceRecord],
                    found: recognizer.FaceRecord, name: str) -> float:
  """The distance of ``found`` from the nearest of ``face`` (clean) and ``others``, in
  units of recognizer ``name``'s threshold."""
  return min(recognizer.distance(f.descriptor_of(name), found.descriptor_of(name), name)
             for f in [face, *others]) / registry.spec(name).threshold


# ---------------------------------------------------------------------------------------
# A change carried from one photo of a person to another.


class Carried(NamedTuple):
  """One protected face's change, to start another photo of the same person from.

  Attributes:
    delta: float32 H x W x 3, the protected photo less the original ([-1, 1] units; 0
      away from the face).
    landmarks5: 5 x 2 (x, y), dlib's 5 landmarks of the face it was made for.
  """
  delta: np.ndarray
  landmarks5: np.ndarray


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """The 2 x 3 similarity (rotation, uniform scale, shift) that maps points ``src`` (N x 2)
  nearest to ``dst`` in least squares (Umeyama 1991, no reflection)."""
  src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
  if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
    raise ValueError(f'expected two N x 2 point sets (N >= 2), got {src.shape} and '
                     f'{dst.shape}')
  ms, md = src.mean(0), dst.mean(0)
  a, b = src - ms, dst - md
  u, sv, vt = np.linalg.svd(b.T @ a / len(src))
  d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
  rot = u @ d @ vt
  scale = float(np.trace(np.diag(sv) @ d) / max(a.var(0).sum(), 1e-12))
  m = scale * rot
  return np.concatenate([m, (md - m @ ms)[:, None]], axis=1)


def _area(box: recognizer.Box) -> float:
  return float((box[2] - box[0]) * (box[3] - box[1]))


def carried_change(original: np.ndarray, protected: np.ndarray,
                   results: Sequence[FaceResult]) -> Carried | None:
  """What `protect_photo` did to the photo's largest face, to carry to another photo of
  the person (uint8 photos; None: no face)."""
  faces = [r for r in results if r.landmarks5 is not None]
  if not faces:
    return None
  face = max(faces, key=lambda r: _area(r.box))
  delta = (protected.astype(np.float32) - original.astype(np.float32)) / 255.0
  return Carried(delta=delta, landmarks5=np.asarray(face.landmarks5))


def similar_coords(landmarks5: np.ndarray, src_landmarks5: np.ndarray, top: int, left: int,
                   h: int, w: int) -> np.ndarray:
  """Where the pixels of an h x w window at (top, left) of a photo fall in another photo of
  the same face, through the similarity between the two faces' 5 landmarks: h x w x 2
  (row, col) in the other photo's pixels, float32."""
  m = similarity(landmarks5, src_landmarks5)  # this photo -> the other
  rows, cols = np.mgrid[top:top + h, left:left + w].astype(np.float64)
  sx = m[0, 0] * cols + m[0, 1] * rows + m[0, 2]
  sy = m[1, 0] * cols + m[1, 1] * rows + m[1, 2]
  return np.stack([sy, sx], axis=-1).astype(np.float32)


def sample(delta: jax.Array, coords: jax.Array) -> jax.Array:
  """Bilinear samples of ``delta`` (H x W x C) at ``coords`` (h x w x 2, row / col), 0 where
  a sample's 2 x 2 neighbourhood leaves it; linear in ``delta``, so differentiable (the
  per-person change's carry, `universal`)."""
  h, w = delta.shape[:2]
  r, c = coords[..., 0], coords[..., 1]
  r0, c0 = jnp.floor(r), jnp.floor(c)
  inside = (r0 >= 0) & (c0 >= 0) & (r0 + 1 < h) & (c0 + 1 < w)
  fr, fc = (r - r0)[..., None], (c - c0)[..., None]
  r0 = jnp.clip(r0, 0, h - 2).astype(jnp.int32)
  c0 = jnp.clip(c0, 0, w - 2).astype(jnp.int32)
  v = ((1 - fr) * ((1 - fc) * delta[r0, c0] + fc * delta[r0, c0 + 1])
       + fr * ((1 - fc) * delta[r0 + 1, c0] + fc * delta[r0 + 1, c0 + 1]))
  return jnp.where(inside[..., None], v, 0.0)


def carry_perturbation(carried: Carried, landmarks5: np.ndarray, hw: tuple[int, int]
                       ) -> np.ndarray:
  """``carried.delta`` moved onto a face of another photo, H x W x 3 float32.

  Each pixel of the new photo takes the change at the same place of the face in aligned
  coordinates (`similar_coords`; bilinear, `sample`), 0 where that falls outside the old
  photo. One person's faces then share one change, as a per-person universal perturbation
  (OPOM, Zhong and Deng 2022) lives in aligned face coordinates: this is the step that
  applies one (`universal.universal_change` makes one over several photos). A change made
  for one photo is not one: carried from photo to photo through GT albums it protected none
  of 27 later photos alone (BENCHMARKS.md section 13).
  """
  coords = similar_coords(landmarks5, carried.landmarks5, 0, 0, *hw)
  return np.asarray(sample(jnp.asarray(carried.delta, jnp.float32), jnp.asarray(coords)))


# ---------------------------------------------------------------------------------------
# The rounds: a frozen state per face, and the three steps of a round.


@dataclasses.dataclass(frozen=True)
class FaceState:
  """One face through the rounds; each step returns a new one (``dataclasses.replace``).

  Attributes:
    clean: the face in the clean photo (box, landmarks, every seen recognizer's
      descriptor).
    region: its window (`_window`) and feathered budget region.
    start: per alignment (`registry.Alignment`), the crop geometry on the clean photo
      (dlib's chip always: the window is built around it).
    aligned: per alignment, the geometry the next round attacks (landmarks found again on
      the protected photo; ``start`` where they were not).
    refs: per attacked recognizer, the attack's references (`_references`).
    targets: per attacked recognizer, the target identity's descriptor the attack pulls
      the face towards (``preset.attack.target_weight``; `fgsm_jax.protect.targets`), or
      None.
    others: the same person's faces in other photos (empty: none given, or not them).
    level: rungs of the eps ladder climbed (`Preset.eps_at`).
    rounds: attack rounds received.
    todo: whether it gets the next round.
    model_distances: per attacked recognizer, the Flax model's distance after its last
      round.
    found: the face the last check found at its place (None: not found, or not checked).
    distances: per recognizer seen, the last check's distance from the clean descriptor
      (None: not found there, or not computed by that check).
    ratios: per attacked recognizer, the distance of the found face from the nearest of the
      clean face and ``others`` in units of its threshold, the least over the preset's
      check degradations (None: not computed).
  """
  clean: recognizer.FaceRecord
  region: faces_lib.Region
  start: Mapping[registry.Alignment, Any]
  aligned: Mapping[registry.Alignment, Any]
  refs: tuple[np.ndarray, ...]
  targets: tuple[np.ndarray, ...] | None = None
  others: tuple[recognizer.FaceRecord, ...] = ()
  level: int = 0
  rounds: int = 0
  todo: bool = True
  model_distances: Mapping[str, float] = dataclasses.field(default_factory=dict)
  found: recognizer.FaceRecord | None = None
  distances: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
  ratios: Mapping[str, float | None] = dataclasses.field(default_factory=dict)

  @property
  def slices(self) -> tuple[slice, slice]:
    """The window's rows and columns in the photo."""
    (t, l), (h, w) = (self.region.top, self.region.left), self.region.size
    return slice(t, t + h), slice(l, l + w)


def start_face(face: recognizer.FaceRecord, person: Sequence[recognizer.FaceRecord],
               photo_hw: tuple[int, int], attacked: Sequence[str], seeing: Sequence[str],
               preset: Preset) -> FaceState | None:
  """A face's state before the first round, or None when it cannot be attacked (dlib's
  chip, or the crop of an attacked recognizer, cannot be placed on its landmarks).

  The window holds dlib's chip and the crop of every recognizer seen (attacked or judging),
  each with room for jitter.
  """
  alignments = dict.fromkeys([registry.DLIB_CHIP]
                             + [registry.SPECS[n].alignment for n in seeing])
  start = {a: a.transform(face, photo_hw) for a in alignments}
  if start[registry.DLIB_CHIP] is None or any(
      start[registry.SPECS[n].alignment] is None for n in attacked):
    return None
  start = {a: t for a, t in start.items() if t is not None}
  region = _window(face.box, start[registry.DLIB_CHIP],
                   [t for a, t in start.items() if a.kind == 'arcface'], photo_hw,
                   preset.margin, preset.feather)
  others = tuple(person) if _same_person(face, person) else ()
  return FaceState(clean=face, region=region, start=start, aligned=start,
                   refs=tuple(_references(face, others, n) for n in attacked), others=others)


def realign(state: FaceState, photo_hw: tuple[int, int]) -> dict[registry.Alignment, Any]:
  """Each alignment's geometry on the landmarks the last check found (kept where the found
  face lacks them or they fit no crop)."""
  if state.found is None:
    return dict(state.aligned)
  return {a: a.transform(state.found, photo_hw) or t for a, t in state.aligned.items()}


def attack_face(state: FaceState, original: np.ndarray, adv: np.ndarray, budget: np.ndarray,
                recognizers: Sequence[Recognizer], preset: Preset, key: jax.Array, steps: int,
                lpips_params: Any = None) -> tuple[FaceState, np.ndarray]:
  """One round of the attack on one face's window.

  Args:
    state: the face (re-aligned first on ``state.found`` when the last check found it).
    original, adv: the clean photo and the protected one so far, float [0, 1] H x W x 3.
    budget: the photo's per-pixel budget (`budget_map`).
    recognizers: the ensemble attacked, in ``state.refs``'s order.
    preset: the settings (attack config, members' weights and views).
    key: this face's and round's PRNG key.
    steps: attack steps of this round.
    lpips_params: LPIPS-AlexNet's params when ``preset.attack.lpips_weight`` > 0.

  Returns:
    (the new state: alignment used, rounds + 1, the model's distances; the window's new
    pixels, float [0, 1] holding 8-bit values, the window's size).
  """
  hw = original.shape[:2]
  aligned = realign(state, hw)
  try:
    geoms = [_geometry(r, aligned[r.spec.alignment], state.region) for r in recognizers]
  except ValueError:  # the re-found face's crop leaves the window: back to the first
    aligned = dict(state.start)
    geoms = [_geometry(r, aligned[r.spec.alignment], state.region) for r in recognizers]
  members = tuple(_surrogate(r, aligned[r.spec.alignment], preset.weight(r.name),
                             preset.views_of(r.name)) for r in recognizers)
  sl = state.slices
  (wh, ww), side = state.region.size, bucket_side(*state.region.size)
  # Padded to the compile bucket: edge pixels (what the window's own filters repeat at its
  # border, so JPEG / resize views are unchanged) with budget 0; ``scope`` keeps the step
  # sizes those of the unpadded window. No crop reads the padding (the geometries checked
  # that they lie in the unpadded window).
  scope = pad_to_bucket(np.ones((wh, ww, 1), np.float32), side, 'constant')
  window, d = attack_lib.protect_window(
      members, tuple(r.params for r in recognizers),
      jnp.asarray(pad_to_bucket(original[sl], side)), jnp.asarray(pad_to_bucket(adv[sl], side)),
      jnp.asarray(pad_to_bucket(budget[sl], side, 'constant')), tuple(geoms),
      tuple(jnp.asarray(v) for v in state.refs), key, jnp.asarray(steps, jnp.int32),
      config=preset.attack, scope=jnp.asarray(scope), lpips_params=lpips_params,
      targets=state.targets)
  model_d = {r.name: float(v) for r, v in zip(recognizers, np.asarray(d))}
  return (dataclasses.replace(state, aligned=aligned, rounds=state.rounds + 1,
                              model_distances=model_d),
          np.asarray(window)[:wh, :ww])


def check_faces(protected: np.ndarray, states: Sequence[FaceState], check: Check, *,
                attacked: Sequence[str], seeing: Sequence[str], preset: Preset,
                last: bool, models: Any = None) -> list[FaceState]:
  """The judges' check of a round's 8-bit result: where each face is found and how far.

  Before the last round (and without check degradations) the check first asks for the
  cheapest attacked recognizer alone (`registry.cheapest`): when it puts every face found
  under the target, the next round is decided whatever the others say and their
  descriptors are not computed; otherwise, and after the last round, every seen
  recognizer's are (so the figures reported are always those of a complete check). With
  ``preset.check_degradations`` the attacked recognizers also judge the degraded result
  (real dlib describes it) and each face's ratio is the least of them.
  """
  attacked, seeing = tuple(attacked), tuple(seeing)
  clean = [s.clean for s in states]
  first = (registry.cheapest(attacked),)
  lazy = not last and not preset.check_degradations and first != seeing
  found = check(protected, first if lazy else seeing, None)
  matches = recognizer.match_faces(clean, found)
  if lazy:
    # The rounds go on for a face while any attacked recognizer has it under the target:
    # if the cheapest one says so for every face found, the others cannot change that.
    under = [m is not None and _identity_ratio(s.clean, s.others, found[m], first[0])
             <= preset.target for s, m in zip(states, matches)]
    if not all(u for u, m in zip(under, matches) if m is not None) or not any(under):
      found = check(protected, seeing, found)
  have = [n for n in seeing if not found or found[0].descriptor_of(n) is not None]
  out = []
  for s, m in zip(states, matches):
    f = None if m is None else found[m]
    dist = {n: None if f is None or n not in have else recognizer.distance(
        s.clean.descriptor_of(n), f.descriptor_of(n), n) for n in seeing}
    ratios = {n: None if dist[n] is None else _identity_ratio(s.clean, s.others, f, n)
              for n in attacked}
    out.append(dataclasses.replace(s, found=f, distances=dist, ratios=ratios))
  for kind in preset.check_degradations:
    seen = recognizer.describe(quality.DEGRADATIONS[kind](protected), models,
                               recognizers=attacked)
    for i, m in enumerate(recognizer.match_faces(clean, seen)):
      if m is None:
        continue
      ratios = dict(out[i].ratios)
      for n in attacked:
        r = _identity_ratio(out[i].clean, out[i].others, seen[m], n)
        ratios[n] = r if ratios[n] is None else min(ratios[n], r)
      out[i] = dataclasses.replace(out[i], ratios=ratios)
  return out


def decide(state: FaceState, preset: Preset, rnd: int) -> FaceState:
  """After round ``rnd``'s check: the face goes on while some attacked recognizer has it
  under the preset's target (judges left out of the attack never count), and climbs one
  rung of the eps ladder for its next round while one has it under the ladder's target
  (default: the target) -- the others keep the budget they needed, so the mean SSIM
  follows need. Measured by the recognizers the round's check computed (where the cheapest
  one alone decided the round, by it alone)."""
  def under(bar: float) -> bool:
    return any(v is not None and v <= bar for v in state.ratios.values())

  climb = (bool(preset.eps_ladder) and rnd + 1 < preset.rounds
           and under(preset.ladder_target or preset.target))
  return dataclasses.replace(state, todo=under(preset.target), level=state.level + climb)


def _budget(rgb: np.ndarray, states: Sequence[FaceState], preset: Preset) -> np.ndarray:
  return budget_map(rgb, [s.region for s in states], preset,
                    [preset.eps_at(s.level) for s in states],
                    [s.clean.landmarks5 for s in states])


def _carried_face(states: Sequence[FaceState], preset: Preset) -> tuple[list[FaceState], int]:
  """The states with the largest face (the one a carried change is for) at the top rung of
  the eps ladder, where a per-person change is made (`universal.universal_change`); its
  index."""
  index = max(range(len(states)), key=lambda i: _area(states[i].clean.box))
  states = list(states)
  states[index] = dataclasses.replace(states[index], level=len(preset.eps_ladder))
  return states, index


def _carried_start(carry: Carried, original: np.ndarray, budget: np.ndarray,
                   face: FaceState) -> np.ndarray:
  """The photo with ``carry`` moved onto ``face``, inside its window and each pixel's
  budget, in 8-bit values as a round leaves them."""
  moved = carry_perturbation(carry, face.clean.landmarks5, original.shape[:2])
  delta = np.zeros_like(original)
  sl = face.slices
  delta[sl] = np.clip(moved[sl], -budget[sl], budget[sl])
  return np.round(np.clip(original + delta, 0.0, 1.0) * 255.0) / 255.0


def protect_photo(rgb: np.ndarray, preset: Preset, key: jax.Array, *,
                  recognizers: Sequence[Recognizer], judges: Sequence[str] | None = None,
                  models: recognizer.RealDlib | None = None, check: Check | None = None,
                  clean: Sequence[recognizer.FaceRecord] | None = None,
                  person: Sequence[recognizer.FaceRecord] = (),
                  carry: Carried | None = None,
                  target_identity: Mapping[str, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, list[FaceResult]]:
  """Protects every face real dlib finds in the photo, against an ensemble of recognizers.

  Args:
    rgb: uint8 H x W x 3, upright (EXIF orientation applied).
    preset: the settings (`presets.PRESETS`).
    key: PRNG key; the same key, photo and preset give the same result.
    recognizers: the ensemble attacked (`load_recognizers(('dlib', 'mobileface'))`).
    judges: the recognizers that check the result (default: the attacked ones); a judge
      not attacked only reports (leave-one-out), it never decides whether to go on.
    models: real dlib (``recognizer.load_real_dlib()``).
    check: ``check(protected uint8, names, known) -> faces`` run after each round with the
      descriptors of ``names`` (``known``: the faces it returned for the same pixels, to
      complete); default `recognizer.describe` on the array (`files.protect_file`
      describes the pixels the PNG holds, so the last check is of the file written). See
      `check_faces` for which names a round asks for.
    clean: the faces of ``rgb`` if already described (with every judge's descriptors).
    person: faces of one person from other photos of them (with the attacked recognizers'
      descriptors). A face of ``rgb`` that some recognizer matches to one of them (within
      its threshold) is that person: the attack moves it away from the nearest of their
      descriptors as well as from its own clean one, and its rounds go on until it is
      ``target`` away from all of them (what a recognizer holding those photos would need;
      at most ``PERSON_REFS`` - 1 are used). Reported distances stay those from the face's
      own clean descriptor.
    carry: a change made for the same person (`Carried`: `universal.universal_change`
      over several of their photos, or another photo's own). It is moved onto this photo's
      largest face (`carry_perturbation`), which gets the top rung of the eps ladder, kept
      inside that face's window and budget, and checked before any step: a face it takes
      past every attacked recognizer's threshold keeps it and gets no round; otherwise the
      rounds run as without it, from there.
    target_identity: a target identity's descriptor per attacked recognizer
      (`targets.identity_descriptors` of photos of someone the user chooses), needed when
      ``preset.attack.target_weight`` > 0: every face is pulled towards it as well as pushed
      from its own. Reported distances stay those from each face's clean descriptor.

  Returns:
    (protected uint8 H x W x 3, one FaceResult per clean face, in detector order).

  Raises:
    NoFaceError: real dlib finds no face in ``rgb``.
  """
  recognizers = list(recognizers)
  attacked, judges, seeing = roles(recognizers, judges)
  models = models or recognizer.load_real_dlib()
  check = check or (lambda img, names, known: recognizer.describe(
      img, models, recognizers=names, known=known))
  clean = (list(clean) if clean is not None
           else recognizer.describe(rgb, models, recognizers=seeing))
  hw = rgb.shape[:2]
  person = [p for p in person if all(p.descriptor_of(n) is not None for n in attacked)]
  states = [s for s in (start_face(f, person, hw, attacked, seeing, preset) for f in clean)
            if s is not None]
  if not states:
    raise NoFaceError('no face found')
  if preset.attack.target_weight > 0:
    missing = [n for n in attacked if target_identity is None or n not in target_identity]
    if missing:
      raise ValueError(f'attack.target_weight > 0 needs a target descriptor for '
                       f'{", ".join(missing)}')
    toward = tuple(np.asarray(target_identity[n], np.float32) for n in attacked)
    states = [dataclasses.replace(s, targets=toward) for s in states]
  lpips_params = lpips_lib.lpips_params('alexnet') if preset.attack.lpips_weight > 0 else None
  if carry is not None:
    states, carried = _carried_face(states, preset)
  budget = _budget(rgb, states, preset)
  original = rgb.astype(np.float32) / 255.0
  adv = original.copy()
  if carry is not None:
    # The carried change is checked (completely, as a last round is) before any step: a
    # face it takes past every attacked recognizer's threshold (what the saved file's check
    # asks) keeps it and gets no round; one it does not goes through every round from it.
    adv = _carried_start(carry, original, budget, states[carried])
    protected = np.round(adv * 255.0).astype(np.uint8)
    states = check_faces(protected, states, check, attacked=attacked, seeing=seeing,
                         preset=preset, last=True, models=models)
    states[carried] = decide(states[carried], dataclasses.replace(preset, target=1.0),
                             preset.rounds - 1)  # rnd: no ladder climb
  for rnd in range(preset.rounds if any(s.todo for s in states) else 0):
    steps = preset.steps if rnd == 0 else preset.extra_steps
    for i, state in enumerate(states):
      if state.todo:
        states[i], adv[state.slices] = attack_face(
            state, original, adv, budget, recognizers, preset,
            jax.random.fold_in(jax.random.fold_in(key, rnd), i), steps, lpips_params)
    protected = np.round(adv * 255.0).astype(np.uint8)
    states = check_faces(protected, states, check, attacked=attacked, seeing=seeing,
                         preset=preset, last=rnd == preset.rounds - 1, models=models)
    levels = [s.level for s in states]
    states = [decide(s, preset, rnd) for s in states]
    if not any(s.todo for s in states):
      break
    if [s.level for s in states] != levels:  # the map changes only when some face's eps does
      budget = _budget(rgb, states, preset)
  results = []
  for s in states:
    res = FaceResult(box=s.clean.box, distances={n: s.distances.get(n) for n in judges},
                     protected=False, rounds=s.rounds, model_distances=dict(s.model_distances),
                     landmarks5=tuple(map(tuple, np.asarray(s.clean.landmarks5).tolist())))
    res.protected = all(res.fools(n) for n in judges)
    results.append(res)
  return protected, results
