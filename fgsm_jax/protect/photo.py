"""Protecting a whole photo: every face, a feathered region each, checked by the judges.

`protect_photo` is the pipeline of experiments/protect_photos.py without the file
handling: find the faces with real dlib (boxes, landmarks, clean descriptors of every
recognizer involved), attack each face's window with `attack.protect_window` against the
ensemble of `Recognizer`s (each through its own alignment: dlib's chip, the ArcFace crop),
round to 8 bits, let the judges find the faces again on the result (``check``: the caller
may save and reload the file there) and, for faces that some attacked recognizer still
places under the preset's target, attack again from where it stopped with the new
alignment. Recognizers that judge but are not attacked (leave-one-out) never steer the
rounds: they see only the final result.

Budgets: each face's region (the detector box grown by ``margin``, then a raised-cosine
feather) gets its eps (``Preset.eps``, raised round by round for faces still under the
target when the preset has an ``eps_ladder``), weighted by local contrast (``texture``) or
by SSIM's own local variance (``texture_sd``: `ssim_weight`); pixels outside every region
have budget 0 and come out bit-identical to the input.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

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
  """
  box: recognizer.Box
  distances: dict[str, float | None]
  protected: bool
  rounds: int
  model_distances: dict[str, float] = dataclasses.field(default_factory=dict)

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


def protect_photo(rgb: np.ndarray, preset: Preset, key: jax.Array, *,
                  recognizers: Sequence[Recognizer], judges: Sequence[str] | None = None,
                  models: recognizer.RealDlib | None = None, check: Check | None = None,
                  clean: Sequence[recognizer.FaceRecord] | None = None,
                  person: Sequence[recognizer.FaceRecord] = ()
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
      describes the pixels the PNG holds, so the last check is of the file written). A
      round's check first asks for the cheapest attacked recognizer alone: when it puts
      every face found under the target the next round is decided and the other
      descriptors are not computed; otherwise, and after the last round, every judge's
      are (the figures reported are always those of a complete check).
    clean: the faces of ``rgb`` if already described (with every judge's descriptors).
    person: faces of one person from other photos of them (with the attacked recognizers'
      descriptors). A face of ``rgb`` that some recognizer matches to one of them (within
      its threshold) is that person: the attack moves it away from the nearest of their
      descriptors as well as from its own clean one, and its rounds go on until it is
      ``target`` away from all of them (what a recognizer holding those photos would need;
      at most ``PERSON_REFS`` - 1 are used). Reported distances stay those from the face's
      own clean descriptor.

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
  usable = []  # (face, per alignment its crop geometry): dlib's chip and every seen one's
  for f in clean:
    start = {a: a.transform(f, hw) for a in dict.fromkeys(
        [registry.DLIB_CHIP] + [registry.SPECS[n].alignment for n in seeing])}
    if start[registry.DLIB_CHIP] is not None and all(
        start[registry.SPECS[n].alignment] is not None for n in attacked):
      usable.append((f, {a: t for a, t in start.items() if t is not None}))
  if not usable:
    raise NoFaceError('no face found')
  regions = [_window(f.box, a[registry.DLIB_CHIP],
                     [t for k, t in a.items() if k.kind == 'arcface'], hw, preset.margin,
                     preset.feather) for f, a in usable]
  levels = [0] * len(usable)  # rungs of the eps ladder each face has climbed
  eyes = [f.landmarks5 for f, _ in usable]
  lpips_params = lpips_lib.lpips_params('alexnet') if preset.attack.lpips_weight > 0 else None
  budget = budget_map(rgb, regions, preset, [preset.eps_at(v) for v in levels], eyes)
  original = rgb.astype(np.float32) / 255.0
  adv = original.copy()
  aligned = [dict(a) for _, a in usable]
  todo = list(range(len(usable)))
  rounds = [0] * len(usable)
  model_d: list[dict[str, float]] = [{} for _ in usable]
  found: Sequence[recognizer.FaceRecord] = []
  matches: list[int | None] = [None] * len(usable)
  person = [p for p in person if all(p.descriptor_of(r.name) is not None for r in recognizers)]
  others = [person if _same_person(f, person) else [] for f, _ in usable]
  refs = [[_references(f, o, r.name) for r in recognizers]
          for (f, _), o in zip(usable, others)]
  for rnd in range(preset.rounds):
    steps = preset.steps if rnd == 0 else preset.extra_steps
    for i in todo:
      region = regions[i]
      if rnd > 0 and matches[i] is not None:  # re-align on the protected photo's landmarks
        again = found[matches[i]]
        aligned[i] = {a: a.transform(again, hw) or t for a, t in aligned[i].items()}
      try:
        geoms = [_geometry(r, aligned[i][r.spec.alignment], region) for r in recognizers]
      except ValueError:  # the re-found face's crop leaves the window: keep the first
        aligned[i] = dict(usable[i][1])
        geoms = [_geometry(r, aligned[i][r.spec.alignment], region) for r in recognizers]
      members = tuple(_surrogate(r, aligned[i][r.spec.alignment], preset.weight(r.name),
                                 preset.views_of(r.name)) for r in recognizers)
      t, l = region.top, region.left
      (wh, ww), side = region.size, bucket_side(*region.size)
      sl = (slice(t, t + wh), slice(l, l + ww))
      # Padded to the compile bucket: edge pixels (what the window's own filters repeat at
      # its border, so JPEG / resize views are unchanged) with budget 0; ``scope`` keeps the
      # step sizes those of the unpadded window. The chip never reads the padding
      # (`warp.geometry` checked it lies in the unpadded window).
      scope = pad_to_bucket(np.ones((wh, ww, 1), np.float32), side, 'constant')
      window, d = attack_lib.protect_window(
          members, tuple(r.params for r in recognizers),
          jnp.asarray(pad_to_bucket(original[sl], side)), jnp.asarray(pad_to_bucket(adv[sl], side)),
          jnp.asarray(pad_to_bucket(budget[sl], side, 'constant')), tuple(geoms),
          tuple(jnp.asarray(v) for v in refs[i]),
          jax.random.fold_in(jax.random.fold_in(key, rnd), i), jnp.asarray(steps, jnp.int32),
          config=preset.attack, scope=jnp.asarray(scope), lpips_params=lpips_params)
      adv[sl] = np.asarray(window)[:wh, :ww]
      rounds[i] += 1
      model_d[i] = {r.name: float(v) for r, v in zip(recognizers, np.asarray(d))}
    protected = np.round(adv * 255.0).astype(np.uint8)
    clean_faces = [f for f, _ in usable]
    first = (registry.cheapest(attacked),)
    lazy = rnd < preset.rounds - 1 and not preset.check_degradations and first != seeing
    found = check(protected, first if lazy else seeing, None)
    matches = recognizer.match_faces(clean_faces, found)
    if lazy:
      # The rounds go on for a face while any attacked recognizer has it under the target:
      # if the cheapest one says so for every face found, the others cannot change that.
      under = [m is not None and _identity_ratio(usable[i][0], others[i], found[m], first[0])
               <= preset.target for i, m in enumerate(matches)]
      if not all(u for u, m in zip(under, matches) if m is not None) or not any(under):
        found = check(protected, seeing, found)
    have = [n for n in seeing if not found or found[0].descriptor_of(n) is not None]
    dist = [{n: None if m is None or n not in have else recognizer.distance(
        usable[i][0].descriptor_of(n), found[m].descriptor_of(n), n) for n in seeing}
            for i, m in enumerate(matches)]
    # The rounds go on while an attacked recognizer is under the target (the robust preset
    # also asks for it after JPEG / resizing); judges left out of the attack never count.
    ratio = [{n: None if d[n] is None else _identity_ratio(usable[i][0], others[i],
                                                          found[matches[i]], n)
              for n in attacked} for i, d in enumerate(dist)]
    for kind in preset.check_degradations:
      seen = recognizer.describe(quality.DEGRADATIONS[kind](protected), models,
                                 recognizers=attacked)
      for i, m in enumerate(recognizer.match_faces(clean_faces, seen)):
        if m is None:
          continue
        for n in attacked:
          r = _identity_ratio(usable[i][0], others[i], seen[m], n)
          ratio[i][n] = r if ratio[i][n] is None else min(ratio[i][n], r)
    todo = [i for i, r in enumerate(ratio)
            if any(v is not None and v <= preset.target for v in r.values())]
    if not todo:
      break
    if preset.eps_ladder and rnd + 1 < preset.rounds:
      # Faces still under the ladder's target (default: the rounds' target) climb one rung
      # (a larger eps for their next round); the others keep the budget they needed, so the
      # mean SSIM follows need. Measured by the judges this round's check computed: where
      # the cheapest one alone decided the round (lazy, above), by it alone.
      bar = preset.ladder_target or preset.target
      climbed = [i for i, r in enumerate(ratio)
                 if any(v is not None and v <= bar for v in r.values())]
      for i in climbed:
        levels[i] += 1
      if climbed:  # the map changes only when some face's eps does
        budget = budget_map(rgb, regions, preset, [preset.eps_at(v) for v in levels], eyes)
  results = []
  for i, (face, _) in enumerate(usable):
    res = FaceResult(box=face.box, distances={n: dist[i][n] for n in judges},
                     protected=False, rounds=rounds[i],
                     model_distances=model_d[i])
    res.protected = all(res.fools(n) for n in judges)
    results.append(res)
  return protected, results
