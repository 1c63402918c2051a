"""The protection attack on one face: the shared attack engine on a window of the photo.

Steps 1-3 are this module's gradient (the loss of an ensemble of recognizers, each through
its own alignment); steps 4-5 are `fgsm_jax.attacks.iterative.update_loop`, the engine every
iterative attack uses, with a per-pixel budget, a ``scope`` for its means and 8-bit output
as its options. Per step:

  1. the window is rounded to 8 bits in the forward pass (straight-through gradient), so
     the loss is always that of the image that will be saved;
  2. ``eot_samples`` views of it: view k is degraded as ``degradations[k % len]``
     (`fgsm_jax.image_ops.degrade`: 'none'; 'jpeg75': 4:2:0 chroma subsampling then the
     differentiable JPEG at quality 75; 'resize_half': PIL's shrink to half and back,
     exact) and its chip is cut with an optionally jittered alignment (a small
     random similarity: landmarks found again on the protected photo move), optionally
     with DI's random resize-and-pad of the chip;
  3. per recognizer of the ensemble (`Surrogate`: dlib's ResNet on its 150 x 150 chip,
     MobileFace on the 112 x 112 ArcFace crop, ...), loss = mean over the views of the
     capped dodging distance min(d(f(crop), ref) / threshold, cap), d the recognizer's own
     metric, ref the face's clean descriptor (no label), distances in units of the
     recognizer's same-person threshold; each member's gradient is divided by its mean
     |.| and the members are summed with their weights; with ``ssim_weight`` w, plus w
     times the gradient of the window's summed SSIM map against the clean window (a pull
     back where a change costs SSIM);
  4. the gradient w.r.t. the window is optionally smoothed (TI) and accumulated with
     momentum (MI): m = decay m + g / mean|g|;
  5. x = clip(x + step * budget * s(m), x0 - budget, x0 + budget), clipped to [0, 1], s
     the sign or (``soft``) the gradient-scaled step, where ``budget`` is a per-pixel L-inf
     budget (eps times the feathered face mask, times an optional texture weight): 0
     outside the face region, so those pixels stay exactly the original 8-bit values after
     the final rounding.

The steps run in a ``lax.fori_loop`` inside one jit; one compile per (window size, members with their pyramid depths, `AttackConfig`) serves
every photo and step count. The caller pads windows to a few bucket sizes
(`fgsm_jax.protect.photo`) and passes ``scope``, the window's own area: the means that
scale the steps are taken over it, so the padding changes neither the steps nor the result.
"""
from __future__ import annotations

import dataclasses
import functools
import zlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import compile_cache, image_ops
from fgsm_jax.attacks import iterative
from fgsm_jax.attacks import transforms as tlib
from fgsm_jax.faces import arcface
from fgsm_jax.models import lpips as lpips_lib
from fgsm_jax.models.distance import distance as descriptor_distance
from fgsm_jax.protect import warp

DEGRADATIONS = image_ops.DEGRADATIONS
# The fields of `AttackConfig` that are `iterative.Config`'s own, passed to it by name.
UPDATE_FIELDS = ('decay', 'kernel_size', 'kernel_sigma', 'soft')


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """How the attack runs (static: hashable, part of the compile key).

  The update rule is the shared engine's (`fgsm_jax.attacks.iterative.Config`), and
  ``decay``, ``kernel_size``, ``kernel_sigma`` and ``soft`` are its fields with its meanings
  (`UPDATE_FIELDS`): MI-FGSM and TI-FGSM mean the same here as in `fgsm_jax.attacks`. The
  rest is what protecting a face adds: the step as a share of a per-pixel budget, the views
  (EOT over jitter, degradations, DI), the loss (capped distance, feature term) and the
  perceptual terms.

  Attributes:
    step: step size as a fraction of each pixel's budget.
    decay: momentum decay (MI-FGSM's mu), or None for no momentum (as `iterative.Config`).
    kernel_size: TI's Gaussian kernel size on the gradient (odd), or None for none.
    kernel_sigma: its standard deviation in pixels; None: (kernel_size - 1) / 6, the
      library's default (the presets tuned with size / 6 say so).
    soft: 0: sign steps (L-inf FGSM); s > 0: a pixel steps by its gradient over s times
      the mean |gradient|, clipped to [-1, 1] -- a full step only where the gradient is
      large, so the perturbation concentrates there instead of filling the budget.
    eot_samples: views per step (gradient averaged over them).
    degradations: what view k goes through, cycled (see DEGRADATIONS).
    jitter_px, jitter_deg, jitter_scale: sd of the chip jitter (chip pixels, degrees, log);
      all 0: no jitter.
    di_prob, di_min_scale: DI's resize-and-pad of the chip (prob 0: off; the ``--attack
      difgsm`` override turns it on).
    cap: the dodging distance, in units of the recognizer's threshold, stops counting above
      this (views already far enough give no gradient, so the others get the budget).
    feature_weight: w > 0 adds w times an intermediate-layer loss to each member's: the
      relative change ||F(x) - F(x0)|| / ||F(x0)|| of the output F of its middle block
      (its spec's ``feature_layer``) between the protected and the clean window, mean over the views
      (feature-level losses transfer better than output losses in the literature: Inkawhich
      et al. 2019, Huang et al. 2019 ILA); 0: off. Set by no preset: an ingredient of the
      transfer measurements (BENCHMARKS.md section 6).
    feature_dropout: drop this share of every convolution's outputs of each surrogate,
      afresh each step (model augmentation, for transfer); 0: off. Set by no preset: 0.1
      moved no left-out recognizer with two (section 6) and broke the white-box attack with
      five (section 12).
    balance: t > 0: worst-member weighting (loss balancing for transfer): each step the
      members' shares of the update are their weights times exp(-loss / t), normalised,
      the loss being the member's capped distance in units of its threshold, so the
      recognizers that still place the face nearest get most of the step
      (`worst_member_shares`); 0: the fixed weights. Set by no preset: t 0.5 gained no
      transfer with five (BENCHMARKS.md section 12).
    ssim_weight: w > 0 adds w times the gradient of the window's summed SSIM map against the
      clean window (`image_ops.window_ssim_sum`: SSIM's own 11 x 11 Gaussian, per RGB
      channel) to the ensemble's (per-member normalised) gradient, so each step also climbs
      back towards the clean window where a change costs SSIM and moves no recognizer much:
      a perceptual penalty in the loss (as LowKey's LPIPS term, Cherepanova et al. 2021)
      where the budget map only caps; 0: off.
    lpips_weight: w > 0 adds -w times the gradient of LPIPS-AlexNet between the window and
      the clean window (`fgsm_jax.models.lpips`; its spatial means scaled back to a sum over
      the window's pixels), so each step also pulls back the changes a person would see
      most, as LowKey's perceptual term (Cherepanova et al. 2021); 0: off.
    chroma: the share of the gradient's chroma (its part off the grey axis R = G = B) that
      is kept: 1 steps in RGB as it comes; 0 changes brightness only (each pixel's R, G and
      B move together), since people see colour shifts of flat skin and irises sooner than
      the same change in brightness.
    target_weight: w > 0 adds -w times each member's distance, in units of its threshold,
      from a target identity's descriptor (``protect_window``'s ``targets``: another
      person's, the one whose photos the user supplies), mean over the views: the face is
      pulled towards a distant identity as well as pushed from its own, as Fawkes (Shan et
      al. 2020) and TIP-IM (Yang et al. 2021) do for transfer, since recognizers trained
      apart still agree on where that identity lies; 0: off (no targets needed). Set by no
      preset: an ingredient of the transfer measurements (BENCHMARKS.md section 14).
  """
  step: float = 0.25
  decay: float | None = 1.0
  kernel_size: int | None = None
  kernel_sigma: float | None = None
  soft: float = 0.0
  eot_samples: int = 2
  degradations: tuple[str, ...] = ('none',)
  jitter_px: float = 1.0
  jitter_deg: float = 1.0
  jitter_scale: float = 0.015
  di_prob: float = 0.0
  di_min_scale: float = 0.9
  cap: float = 2.0  # dlib: 1.2 in its L2 units (threshold 0.6)
  feature_dropout: float = 0.0
  feature_weight: float = 0.0
  balance: float = 0.0
  ssim_weight: float = 0.0
  lpips_weight: float = 0.0
  chroma: float = 1.0
  target_weight: float = 0.0

  def __post_init__(self):
    bad = [d for d in self.degradations if d not in DEGRADATIONS]
    if bad or not self.degradations:
      raise ValueError(f'degradations must be a non-empty tuple of {DEGRADATIONS}, got '
                       f'{self.degradations}')
    if self.eot_samples < 1 or self.step <= 0:
      raise ValueError(f'expected eot_samples >= 1, step > 0; got {self.eot_samples}, '
                       f'{self.step}')
    iterative.check_update_config(self.update_config())
    if not self.balance >= 0:
      raise ValueError(f'balance must be >= 0 (0: fixed weights), got {self.balance}')
    if not self.ssim_weight >= 0:
      raise ValueError(f'ssim_weight must be >= 0, got {self.ssim_weight}')
    if not self.lpips_weight >= 0:
      raise ValueError(f'lpips_weight must be >= 0, got {self.lpips_weight}')
    if not 0 <= self.chroma <= 1:
      raise ValueError(f'chroma must be in [0, 1], got {self.chroma}')
    if not self.target_weight >= 0:
      raise ValueError(f'target_weight must be >= 0 (0: off), got {self.target_weight}')
    if not self.feature_weight >= 0:
      raise ValueError(f'feature_weight must be >= 0, got {self.feature_weight}')
    if not 0 <= self.feature_dropout < 1:
      raise ValueError(f'feature_dropout must be in [0, 1), got {self.feature_dropout}')

  def update_config(self) -> iterative.Config:
    """The shared engine's options for this config: its own update fields, L-inf steps, and
    the result rounded to 8-bit levels (what a saved photo holds)."""
    return iterative.Config(norm='linf', quantize=True,
                            **{name: getattr(self, name) for name in UPDATE_FIELDS})


@dataclasses.dataclass(frozen=True)
class Surrogate:
  """A recognizer the attack differentiates (static: hashable, part of the compile key).

  Attributes:
    spec: its `fgsm_jax.protect.registry.RecognizerSpec`: the Flax ``apply_fn(params,
      crops K x S x S x 3 in [0, 1]) -> K x D``, the alignment its crop is cut with
      ('dlib_chip': dlib's 150 x 150 chip through its image pyramid, `warp.window_chip`;
      'arcface': the similarity crop on the spec's template and size,
      `fgsm_jax.faces.arcface.window_crop`), its metric ('l2' or 'cosine') and its
      same-person threshold, in whose units the loss counts distance so that recognizers
      with different scales weigh alike.
    weight: the member's share of the ensemble update.
    n_down: pyramid levels of the crop (static; dlib's chip: ``ChipTransform.n_down``,
      ArcFace: levels of the gradient's low-pass, `arcface.arcface_n_down`).
    views: this member's views a step (its first ``views`` of the config's ``eot_samples``,
      same jitter and degradations); 0: all of them. A recognizer that holds with fewer
      views costs fewer forward and backward passes.
  """
  spec: Any
  weight: float = 1.0
  n_down: int = 0
  views: int = 0

  def __post_init__(self):
    if self.views < 0:
      raise ValueError(f'views must be >= 0 (0: every view), got {self.views}')
    if not self.weight > 0:
      raise ValueError(f'weight must be > 0, got {self.weight}')

  @property
  def name(self) -> str:
    return self.spec.name

  @property
  def apply_fn(self) -> Any:
    return self.spec.apply_fn

  @property
  def crop(self) -> str:
    """The alignment's kind: 'dlib_chip' or 'arcface'."""
    return self.spec.alignment.kind

  @property
  def size(self) -> int:
    """The crop's side, pixels."""
    return self.spec.alignment.size

  @property
  def metric(self) -> str:
    return self.spec.metric

  @property
  def threshold(self) -> float:
    return self.spec.threshold


def _distance(metric: str, desc: jax.Array, ref: jax.Array) -> jax.Array:
  """Per-row distance of K x D descriptors from ref in the recognizer's own metric
  (`fgsm_jax.models.distance`, with a finite gradient at 0): ref (D,) gives K distances;
  R x D references give each row's distance to the nearest one."""
  if ref.ndim == 2:
    return jnp.min(jax.vmap(lambda r: _distance(metric, desc, r), out_axes=1)(ref), axis=1)
  return descriptor_distance(desc, ref, metric, eps=1e-12)


def _jitter_on(config: AttackConfig) -> bool:
  return config.jitter_px > 0 or config.jitter_deg > 0 or config.jitter_scale > 0


def _jitters(geom_chip: warp.ChipGeometry | None, key: jax.Array, config: AttackConfig,
             count: int) -> list[jax.Array | None]:
  """Per view, the jittered dlib-chip affine (None: no jitter), shared by every crop so
  both recognizers see the landmarks move together (as on a re-detected photo)."""
  out = []
  for k in range(count):
    if not _jitter_on(config) or geom_chip is None:
      out.append(None)
      continue
    out.append(warp.jitter_affine(geom_chip.affine, jax.random.fold_in(jax.random.fold_in(
        key, k), 1), config.jitter_px, config.jitter_deg, config.jitter_scale))
  return out


def _crops(member: Surrogate, degraded: dict[str, jax.Array], geom: Any,
           chip_geom: warp.ChipGeometry | None, chip_n_down: int, jitters: list,
           key: jax.Array, config: AttackConfig) -> jax.Array:
  """The member's eot_samples crops of the (degraded) windows, K x S x S x 3 in [0, 1]."""
  crops = []
  if member.crop == 'dlib_chip':
    levels = {kind: warp.level_image(v, geom.shift, member.n_down) for kind, v in degraded.items()}
  else:
    levels = {kind: arcface.crop_pyramid(v, member.n_down, quantize=True)
              for kind, v in degraded.items()}
  for k in range(len(jitters)):
    kind = config.degradations[k % len(config.degradations)]
    kk = jax.random.fold_in(key, k)
    if member.crop == 'dlib_chip':
      affine = geom.affine if jitters[k] is None else jitters[k]
      crop = warp.sample_chip(levels[kind], affine, geom.bounds)
    else:
      affine = geom.affine
      if jitters[k] is not None:
        affine = arcface.follow_chip_jitter(affine, chip_geom.affine, jitters[k], chip_n_down,
                                            chip_geom.shift)
      elif chip_geom is None and _jitter_on(config):  # no dlib chip to follow: its own
        affine = warp.jitter_affine(affine, jax.random.fold_in(kk, 1), config.jitter_px,
                                    config.jitter_deg, config.jitter_scale, member.size)
      crop = arcface.sample_crop(levels[kind], affine, member.n_down, member.size,
                                 valid_hw=geom.valid_hw)
    if config.di_prob > 0:
      crop = tlib.ResizePad(config.di_min_scale, config.di_prob)(jax.random.fold_in(kk, 2),
                                                                 crop)
    crops.append(crop)
  return jnp.stack(crops)


def _model_hooks(dropout: float, key: jax.Array, layer: str | None, captured: list):
  """A Flax method interceptor that drops ``dropout`` of every convolution's outputs
  (scaled by 1 / (1 - dropout)): a fresh random sub-network per step, "model augmentation"
  that makes one surrogate act as many (Wu et al. 2018 / DFANet, Zhong & Deng 2021); and
  appends the output of the submodule named ``layer`` to ``captured``."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name != '__call__':
      return out
    if dropout > 0 and 'Conv' in type(context.module).__name__:
      name = '/'.join(context.module.path) or type(context.module).__name__
      k = jax.random.fold_in(key, zlib.crc32(name.encode()))
      keep = jax.random.bernoulli(k, 1.0 - dropout, out.shape)
      out = jnp.where(keep, out / (1.0 - dropout), 0.0)
    if layer is not None and context.module.name == layer:
      captured.append(out)
    return out

  return nn.intercept_methods(interceptor)


def _describe(member: Surrogate, params: Any, crops: jax.Array, key: jax.Array,
              config: AttackConfig) -> tuple[jax.Array, jax.Array | None]:
  """The member's descriptors of the crops, K x D, and (with ``config.feature_weight``) the
  output of its spec's ``feature_layer`` block, K x ...; dropout as ``config`` says."""
  layer = member.spec.feature_layer if config.feature_weight > 0 else None
  if config.feature_dropout == 0 and layer is None:
    return member.apply_fn(params, crops), None
  # Unjitted: a jitted apply_fn would cache its trace, dropout key and all, across calls.
  apply_fn = getattr(member.apply_fn, '__wrapped__', member.apply_fn)
  captured: list = []
  with _model_hooks(config.feature_dropout, key, layer, captured):
    desc = apply_fn(params, crops)
  if layer is not None and not captured:
    raise ValueError(f'{member.name}: no block named {layer!r} to read features from')
  return desc, captured[0] if captured else None


def _member_loss(member: Surrogate, params: Any, x: jax.Array, x0: jax.Array, geoms: tuple,
                 refs: tuple, index: int, chip_index: int | None, chip_n_down: int,
                 key: jax.Array, config: AttackConfig,
                 target: jax.Array | None = None) -> jax.Array:
  """Mean over views of min(distance / threshold, cap) for one ensemble member, less
  ``config.target_weight`` times the mean distance from ``target`` (D,) in threshold units
  when given, plus the weighted intermediate-layer loss when ``config.feature_weight`` > 0
  (x0: the clean window, whose crops are cut with the same views)."""
  chip_geom = geoms[chip_index] if chip_index is not None else None
  jitters = _jitters(chip_geom, key, config, member.views or config.eot_samples)

  def crops_of(window):
    degraded = {kind: image_ops.degrade(window, kind)
                for kind in dict.fromkeys(config.degradations)}
    return _crops(member, degraded, geoms[index], chip_geom, chip_n_down, jitters, key, config)

  model_key = jax.random.fold_in(key, 7 + index)
  desc, features = _describe(member, params, crops_of(x), model_key, config)
  d = _distance(member.metric, desc, refs[index]) / member.threshold
  loss = jnp.mean(jnp.minimum(d, config.cap))
  if target is not None and config.target_weight > 0:
    loss = loss - config.target_weight * jnp.mean(
        _distance(member.metric, desc, target) / member.threshold)
  if features is None:
    return loss
  _, clean = _describe(member, params, crops_of(x0), model_key, config)
  clean = jax.lax.stop_gradient(clean)
  axes = tuple(range(1, clean.ndim))
  change = jnp.sqrt(jnp.sum((features - clean) ** 2, axis=axes) + 1e-12)
  return loss + config.feature_weight * jnp.mean(
      change / jnp.sqrt(jnp.sum(clean * clean, axis=axes) + 1e-12))


def _chip_member(members: tuple[Surrogate, ...]) -> tuple[int | None, int]:
  """Index and pyramid depth of the dlib-chip member (the jitter's reference), if any."""
  for i, m in enumerate(members):
    if m.crop == 'dlib_chip':
      return i, m.n_down
  return None, 0


def _lpips_pull(lpips_params: Any, window0: jax.Array) -> Any:
  """x -> the gradient of LPIPS-AlexNet(clean window, x) w.r.t. the window x (H x W x 3 in
  [0, 1]), scaled by the window's pixel count; the clean features are computed once."""
  clean = lpips_lib.unit_features(lpips_params, window0[None] * 2.0 - 1.0)
  clean = [jax.lax.stop_gradient(u) for u in clean]
  pixels = window0.shape[0] * window0.shape[1]

  def distance(x: jax.Array) -> jax.Array:
    return lpips_lib.distance_of_features(
        lpips_params, clean, lpips_lib.unit_features(lpips_params, x[None] * 2.0 - 1.0))[0]

  return lambda x: jax.grad(distance)(x) * pixels


def keep_chroma(g: jax.Array, chroma: float) -> jax.Array:
  """``g`` (... x 3, RGB) with its part off the grey axis scaled by ``chroma``."""
  grey = jnp.mean(g, axis=-1, keepdims=True)
  return grey + chroma * (g - grey)


def worst_member_shares(losses: jax.Array, weights: Sequence[float],
                        temperature: float) -> jax.Array:
  """Each member's share of the update, (M,), summing to 1: its weight times
  exp(-loss / temperature), normalised -- the member whose (capped, threshold-unit) distance
  is still the smallest, the one that would still recognise the face, gets the most; as
  temperature grows the shares go back to the weights. No gradient flows through them."""
  logits = jnp.log(jnp.asarray(weights, jnp.float32)) - losses / temperature
  return jax.lax.stop_gradient(jax.nn.softmax(logits))


def _ensemble_gradient(members: tuple[Surrogate, ...], params: tuple, window0: jax.Array,
                       geoms: tuple, refs: tuple, scope: jax.Array, config: AttackConfig,
                       lpips_params: Any = None, targets: tuple | None = None
                       ) -> iterative.GradientFn:
  """The engine's ``gradient_fn`` for one window (1 x H x W x 3) and its per-step key.

  The weighted sum of each member's gradient divided by its mean |.| over ``scope``:
  recognizers whose losses differ in scale or steepness get the share of the update their
  weight says, not the share their gradient's size would take (with ``config.balance``, the
  shares of `worst_member_shares` instead). ``targets``: per member, the target
  identity's descriptor (D,) for ``config.target_weight``, or None.
  """
  chip_index, chip_n_down = _chip_member(members)
  total = sum(mem.weight for mem in members)
  # The clean window's SSIM statistics, once per attack rather than once per step.
  clean_stats = image_ops.ssim_clean_stats(window0) if config.ssim_weight > 0 else None
  lpips_grad = _lpips_pull(lpips_params, window0) if config.lpips_weight > 0 else None

  def gradient(x: jax.Array, keys: jax.Array) -> jax.Array:
    g = jnp.zeros_like(x)
    grads, losses = [], []
    for i, mem in enumerate(members):
      args = (mem, params[i], x[0], window0, geoms, refs, i, chip_index, chip_n_down, keys[0],
              config, None if targets is None else targets[i])
      if config.balance > 0:
        loss, gi = jax.value_and_grad(_member_loss, argnums=2)(*args)
        losses.append(loss)
      else:
        gi = jax.grad(_member_loss, argnums=2)(*args)
      gi = gi[None]
      if len(members) > 1 or config.ssim_weight > 0 or config.lpips_weight > 0:
        gi = gi / iterative.mean_abs(gi, scope)
      if config.balance > 0:
        grads.append(gi)
      else:
        g = g + (mem.weight / total) * gi
    if config.balance > 0:
      shares = worst_member_shares(jnp.stack(losses), [m.weight for m in members],
                                   config.balance)
      for i, gi in enumerate(grads):
        g = g + shares[i] * gi
    if config.ssim_weight > 0:
      # Unnormalised on purpose: its pull grows with the SSIM a pixel's change costs (about
      # 2 delta / (2 var + C2) per pixel), against the members' unit-mean gradients.
      g = g + config.ssim_weight * image_ops.ssim_sum_grad(x[0], clean_stats)[None] * scope
    if lpips_grad is not None:
      g = g - config.lpips_weight * lpips_grad(x[0])[None] * scope
    if config.chroma < 1:
      g = keep_chroma(g, config.chroma)
    return g

  return gradient


_STATIC = ('members', 'config')


@functools.partial(jax.jit, static_argnames=_STATIC)
def _run(members, params, window0, start, budget, scope, geoms, refs, key, steps,
         lpips_params, targets, *, config):
  """The attack (`iterative.update_loop` over the ensemble's gradient), then each member's
  distance on the 8-bit window (its own metric, unjittered): one program per (window
  shape, members, config), so a new process compiles (or loads) exactly one (the set-up is
  inside too: eager ops would each compile on their own)."""
  scope = scope[None]
  clean_refs = tuple(r if r.ndim == 1 else r[0] for r in refs)
  x = iterative.update_loop(
      _ensemble_gradient(members, params, window0, geoms, refs, scope, config, lpips_params,
                         targets),
      window0[None],
      budget[None], config.step * budget[None], steps, config=config.update_config(),
      keys=key[None], start=start[None], scope=scope)[0]
  dists = [_distance(mem.metric, mem.apply_fn(params[i], c), clean_refs[i])[0]
           for i, (mem, c) in enumerate(zip(members, _clean_crops(members, x, geoms)))]
  return x, jnp.stack(dists)


def _clean_crops(members: tuple[Surrogate, ...], window: jax.Array, geoms: tuple
                 ) -> list[jax.Array]:
  """Each member's unjittered crop of the window, 1 x S x S x 3 (8-bit reads)."""
  crops = []
  for i, mem in enumerate(members):
    if mem.crop == 'dlib_chip':
      crops.append(warp.window_chip(window, geoms[i], mem.n_down)[None])
    else:
      crops.append(arcface.window_crop(window, geoms[i], 0, quantize=True, size=mem.size)[None])
  return crops


def protect_window(members: tuple[Surrogate, ...], params: tuple, window0: jax.Array,
                   start: jax.Array, budget: jax.Array, geoms: tuple, refs: tuple,
                   key: jax.Array, steps: int, *, config: AttackConfig,
                   scope: jax.Array | None = None, lpips_params: Any = None,
                   targets: tuple | None = None) -> tuple[jax.Array, jax.Array]:
  """Runs the attack on one face's window against an ensemble of recognizers.

  The steps are the shared attack engine's (`fgsm_jax.attacks.iterative.update_loop`) in a
  ``lax.fori_loop`` inside one jit, so one compile serves every step count. (The dlib recognizer's convolutions are ``fgsm_jax.ops.Conv``: with
  nn.Conv, XLA:CPU ran their gradients ~4x slower inside a loop than outside one.)

  Args:
    members: the recognizers attacked (`Surrogate`, static), e.g. dlib's ResNet and
      MobileFace; one member is the plain single-model attack.
    params: one parameter tree per member.
    window0: the original window, float [0, 1] holding 8-bit values, H x W x 3.
    start: where to start (the current protected window), same shape.
    budget: per-pixel L-inf budget, H x W x 1 (or x 3), [0, 1] units.
    geoms: per member, the face's crop geometry in this window (`warp.ChipGeometry` for
      'dlib_chip', `arcface.ArcFaceGeometry` for 'arcface').
    refs: per member, the face's clean descriptor (D,), or R x D references whose first
      row is that descriptor and the others descriptors of the same person's other photos
      (the attack moves away from the nearest row; rows may repeat). The distances
      returned are from the first row.
    key: PRNG key (jitter, DI, feature dropout): step t draws from the engine's per-step
      key.
    steps: number of steps.
    config: `AttackConfig` (static).
    scope: H x W x 1, 1 over the window's own area and 0 over padding added to reach a
      compile bucket (default: all 1). The momentum's and soft steps' gradient means are
      taken over it; padding must have budget 0.
    lpips_params: `fgsm_jax.models.lpips.lpips_params('alexnet')`, needed when
      ``config.lpips_weight`` > 0.
    targets: per member, a target identity's descriptor (D,) in its own descriptor space
      (`fgsm_jax.protect.targets`), needed when ``config.target_weight`` > 0.

  Returns:
    (window, distances): the protected window rounded to 8 bits (float [0, 1]), and each
    member's distance from its ``ref`` on it (its own metric, unjittered), shape (M,).
  """
  members = tuple(members)
  if not (len(members) == len(params) == len(geoms) == len(refs)) or not members:
    raise ValueError(f'expected one params, geometry and reference per member; got '
                     f'{len(members)} members, {len(params)} params, {len(geoms)} '
                     f'geometries, {len(refs)} references')
  window0 = jnp.asarray(window0, jnp.float32)
  budget = jnp.asarray(budget, jnp.float32)
  if scope is None:
    scope = np.ones(window0.shape[:2] + (1,), np.float32)
  scope = jnp.asarray(scope, jnp.float32)
  if scope.shape != window0.shape[:2] + (1,):
    raise ValueError(f'expected scope of shape {window0.shape[:2] + (1,)}, got {scope.shape}')
  refs = tuple(jnp.asarray(r, jnp.float32) for r in refs)
  if config.lpips_weight > 0 and lpips_params is None:
    raise ValueError('config.lpips_weight > 0 needs lpips_params (lpips.lpips_params())')
  if config.lpips_weight == 0:
    lpips_params = None  # not part of the program when the term is off
  if config.target_weight > 0:
    if targets is None or len(targets) != len(members):
      raise ValueError(f'config.target_weight > 0 needs one target descriptor per member '
                       f'({len(members)}), got {None if targets is None else len(targets)}')
    targets = tuple(jnp.asarray(t, jnp.float32) for t in targets)
    for mem, t in zip(members, targets):
      if t.shape != (mem.spec.dim,):
        raise ValueError(f'{mem.name}: expected a target descriptor of shape '
                         f'({mem.spec.dim},), got {t.shape}')
  else:
    targets = None
  return _run(members, tuple(params), window0, jnp.asarray(start, jnp.float32), budget, scope,
              tuple(geoms), refs, key, jnp.asarray(steps, jnp.int32), lpips_params, targets,
              config=config)


# A new process loads the attack program traced by an earlier one (with the compilation
# cache on) instead of tracing it again: ~1 s of CPU a program (fgsm_jax.compile_cache).
_run = compile_cache.persistent_jit(_run, _STATIC)
