"""The protection attack on one face: a jitted loop over a window of the photo.

Per step:

  1. the window is rounded to 8 bits in the forward pass (straight-through gradient), so
     the loss is always that of the image that will be saved;
  2. ``eot_samples`` views of it: view k is degraded as ``degradations[k % len]``
     ('none'; 'jpeg75': 4:2:0 chroma subsampling then the differentiable JPEG of
     fgsm_jax.attacks.transforms at quality 75; 'resize_half': PIL's shrink to half and
     back, exact) and its chip is cut with an optionally jittered alignment (a small
     random similarity: landmarks found again on the protected photo move), optionally
     with DI's random resize-and-pad of the chip;
  3. loss = mean over the views of the capped dodging distance min(||f(chip) - ref||,
     cap), f the Flax port of dlib's ResNet and ref the face's clean descriptor (no
     label);
  4. the gradient w.r.t. the window is optionally smoothed (TI) and accumulated with
     momentum (MI): m = decay m + g / mean|g|;
  5. x = clip(x + step * budget * sign(m), x0 - budget, x0 + budget), clipped to [0, 1],
     where ``budget`` is a per-pixel L-inf budget (eps times the feathered face mask, times
     an optional texture weight): 0 outside the face region, so those pixels stay exactly
     the original 8-bit values after rounding.

Steps run in chunks of ``config.chunk`` unrolled steps inside one jitted ``lax.fori_loop``;
one compile per (window size, pyramid depth, `AttackConfig`) serves every photo and step
count. The caller pads windows to a few bucket sizes (`fgsm_jax.protect.photo`) and passes
``scope``, the window's own area: the means that scale the steps are taken over it, so the
padding changes neither the steps nor the result.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.attacks import transforms as tlib
from fgsm_jax.protect import warp

DEGRADATIONS = ('none', 'jpeg75', 'resize_half')


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """How the attack runs (static: hashable, part of the compile key).

  Attributes:
    step: step size as a fraction of each pixel's budget.
    decay: momentum decay (MI-FGSM's mu); 0 turns momentum off.
    eot_samples: views per step (gradient averaged over them).
    degradations: what view k goes through, cycled (see DEGRADATIONS).
    jitter_px, jitter_deg, jitter_scale: sd of the chip jitter (chip pixels, degrees, log);
      all 0: no jitter.
    di_prob, di_min_scale: DI's resize-and-pad of the chip (prob 0: off).
    ti_kernel: TI's Gaussian kernel size on the gradient (0: off), sigma = size / 6.
    cap: the dodging distance stops counting above this (views already far enough give no
      gradient, so the others get the budget).
    soft: 0: sign steps (L-inf FGSM); s > 0: a pixel steps by its gradient over s times
      the mean |gradient|, clipped to [-1, 1] -- a full step only where the gradient is
      large, so the perturbation concentrates there instead of filling the budget.
    chunk: steps unrolled per loop iteration (steps are rounded up to a multiple of it).
      1 by default: XLA's compile time grows with the unrolled steps (about 10 s for 4 on
      a 2-core CPU, the first photo's wait), while unrolling saved no run time.
  """
  step: float = 0.25
  decay: float = 1.0
  eot_samples: int = 2
  degradations: tuple[str, ...] = ('none',)
  jitter_px: float = 1.0
  jitter_deg: float = 1.0
  jitter_scale: float = 0.015
  di_prob: float = 0.0
  di_min_scale: float = 0.9
  ti_kernel: int = 0
  cap: float = 1.2
  soft: float = 0.0
  chunk: int = 1

  def __post_init__(self):
    bad = [d for d in self.degradations if d not in DEGRADATIONS]
    if bad or not self.degradations:
      raise ValueError(f'degradations must be a non-empty tuple of {DEGRADATIONS}, got '
                       f'{self.degradations}')
    if self.eot_samples < 1 or self.step <= 0 or self.decay < 0 or self.chunk < 1:
      raise ValueError(f'expected eot_samples >= 1, step > 0, decay >= 0; got '
                       f'{self.eot_samples}, {self.step}, {self.decay}')
    if self.ti_kernel < 0 or (self.ti_kernel and self.ti_kernel % 2 == 0):
      raise ValueError(f'ti_kernel must be 0 or odd, got {self.ti_kernel}')


def _round_half_up(v: jax.Array) -> jax.Array:
  """floor(v + 0.5) forward (PIL's rounding; jnp.round rounds to even), identity gradient."""
  return v + jax.lax.stop_gradient(jnp.floor(v + 0.5) - v)


def _pad1(v: jax.Array, axis: int) -> jax.Array:
  return jnp.pad(v, [(1, 1) if a == axis else (0, 0) for a in range(v.ndim)], mode='edge')


def _down2(v: jax.Array, axis: int) -> jax.Array:
  """Halves ``axis`` (even length) with taps 1 3 3 1 / 8 (PIL's antialiased bilinear)."""
  p, n = _pad1(v, axis), v.shape[axis]
  take = lambda s: jax.lax.slice_in_dim(p, s, s + n - 1, 2, axis)
  return (take(0) + 3 * take(1) + 3 * take(2) + take(3)) / 8.0


def _up2(v: jax.Array, axis: int) -> jax.Array:
  """Doubles ``axis``, bilinear with half-pixel centres (taps 1/4, 3/4; edges repeated)."""
  p, n = _pad1(v, axis), v.shape[axis]
  prev = jax.lax.slice_in_dim(p, 0, n, 1, axis)
  cur = jax.lax.slice_in_dim(p, 1, n + 1, 1, axis)
  nxt = jax.lax.slice_in_dim(p, 2, n + 2, 1, axis)
  out = jnp.stack([0.25 * prev + 0.75 * cur, 0.75 * cur + 0.25 * nxt], axis=axis + 1)
  shape = list(v.shape)
  shape[axis] *= 2
  return out.reshape(shape)


def resize_half_back(x: jax.Array) -> jax.Array:
  """PIL's bilinear shrink to half and enlarge back, H x W x C (H, W even), 0-255 units.

  Shrinking by 2 is PIL's antialiased bilinear (taps 1 3 3 1 / 8), enlarging is bilinear
  with pixel centres at half-pixels (taps 1/4, 3/4); each of its four 1-D passes
  (horizontal first) rounds half up to 8 bits (straight-through gradient). Borders clamp
  (edge pixels repeated); PIL renormalises its kernel there instead, so the outermost
  pixel rows may differ.
  """
  half = _round_half_up(_down2(_round_half_up(_down2(x, 1)), 0))
  return _round_half_up(_up2(_round_half_up(_up2(half, 1)), 0))


_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], np.float32)


def chroma_420(x: jax.Array) -> jax.Array:
  """JPEG's 4:2:0 chroma subsampling and libjpeg's 'fancy' upsampling, H x W x 3 in 0-255.

  Cb and Cr (JFIF) are averaged over 2 x 2 blocks and brought back with the triangle
  filter; luma is kept. (PIL saves JPEG at quality 75 with 4:2:0 by default; the
  differentiable JPEG of fgsm_jax.attacks.transforms models 4:4:4 only.) Odd sizes are
  returned unchanged.
  """
  h, w = x.shape[0], x.shape[1]
  if h % 2 or w % 2:
    return x
  ycc = x @ jnp.asarray(_RGB_TO_YCC).T
  c = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
  c = _up2(_up2(c, 1), 0)
  ycc = jnp.concatenate([ycc[..., :1], c], axis=-1)
  return ycc @ jnp.asarray(np.linalg.inv(_RGB_TO_YCC).astype(np.float32)).T


def _degrade(window: jax.Array, kind: str) -> jax.Array:
  """One degradation of an H x W x 3 window in [0, 1] (8-bit values)."""
  if kind == 'none':
    return window
  if kind == 'jpeg75':
    sub = chroma_420(window * 255.0) / 255.0
    return tlib.round_ste(tlib.jpeg_approx(jnp.clip(sub, 0.0, 1.0), 75.0) * 255.0) / 255.0
  if kind == 'resize_half':
    return resize_half_back(window * 255.0) / 255.0
  raise ValueError(kind)


def _views(x_q: jax.Array, geom: warp.ChipGeometry, key: jax.Array, config: AttackConfig,
           n_down: int) -> jax.Array:
  """The eot_samples chips of the (rounded) window, K x 150 x 150 x 3."""
  degraded = {kind: _degrade(x_q, kind) for kind in dict.fromkeys(config.degradations)}
  levels = {kind: warp.level_image(v, geom.shift, n_down) for kind, v in degraded.items()}
  jitter = config.jitter_px > 0 or config.jitter_deg > 0 or config.jitter_scale > 0
  chips = []
  for k in range(config.eot_samples):
    kind = config.degradations[k % len(config.degradations)]
    kk = jax.random.fold_in(key, k)
    affine = geom.affine
    if jitter:
      affine = warp.jitter_affine(affine, jax.random.fold_in(kk, 1), config.jitter_px,
                                  config.jitter_deg, config.jitter_scale)
    chip = warp.sample_chip(levels[kind], affine, geom.bounds)
    if config.di_prob > 0:
      chip = tlib.ResizePad(config.di_min_scale, config.di_prob)(jax.random.fold_in(kk, 2),
                                                                 chip)
    chips.append(chip)
  return jnp.stack(chips)


def _norm(v: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.sum(v * v, axis=-1) + 1e-12)


def _loss(apply_fn: Any, params: Any, x: jax.Array, geom: warp.ChipGeometry, ref: jax.Array,
          key: jax.Array, config: AttackConfig, n_down: int) -> jax.Array:
  chips = _views(x, geom, key, config, n_down)
  return jnp.mean(jnp.minimum(_norm(apply_fn(params, chips) - ref), config.cap))


def _scoped_mean_abs(v: jax.Array, scope: jax.Array) -> jax.Array:
  """mean |v| over the entries where scope (H x W x 1, 0/1) is 1, floored at 1e-12."""
  count = jnp.maximum(jnp.sum(scope) * v.shape[-1], 1.0)
  return jnp.maximum(jnp.sum(jnp.abs(v) * scope) / count, 1e-12)


def _steps(apply_fn: Any, params: Any, x: jax.Array, m: jax.Array, lo: jax.Array,
           hi: jax.Array, budget: jax.Array, scope: jax.Array, geom: warp.ChipGeometry,
           ref: jax.Array, key: jax.Array, t0: jax.Array, config: AttackConfig, n_down: int
           ) -> tuple[jax.Array, jax.Array]:
  """``config.chunk`` attack steps, unrolled (step t uses fold_in(key, t0 + t))."""
  kernel = (tlib.gaussian_kernel(config.ti_kernel, config.ti_kernel / 6.0)
            if config.ti_kernel else None)
  for t in range(config.chunk):
    g = jax.grad(_loss, argnums=2)(apply_fn, params, x, geom, ref,
                                   jax.random.fold_in(key, t0 + t), config, n_down)
    if kernel is not None:
      g = tlib.gaussian_smooth(g[None], kernel, 'zero')[0]
    if config.decay > 0:
      m = config.decay * m + g / _scoped_mean_abs(g, scope)
    else:
      m = g
    if config.soft > 0:
      # Pixels whose (momentum) gradient is under `soft` x its mean take proportionally
      # smaller steps: the change gathers where it buys the most distance.
      u = jnp.clip(m / (config.soft * _scoped_mean_abs(m, scope)), -1.0, 1.0)
    else:
      u = jnp.sign(m)
    x = jnp.clip(x + config.step * budget * u, lo, hi)
  return x, m


_STATIC = ('apply_fn', 'config', 'n_down')


@functools.partial(jax.jit, static_argnames=_STATIC)
def _run(apply_fn, params, window0, start, budget, scope, geom, ref, key, n_chunks, *, config,
         n_down):
  """The step loop, then the 8-bit window and the model's distance on it: one program per
  (window shape, config, n_down), so a new process compiles (or loads) exactly one (the
  set-up is inside too: eager ops would each compile on their own)."""
  lo = jnp.clip(window0 - budget, 0.0, 1.0)
  hi = jnp.clip(window0 + budget, 0.0, 1.0)
  x = jnp.clip(start, lo, hi)
  m = jnp.zeros_like(x)
  def body(i, carry):
    return _steps(apply_fn, params, *carry, lo, hi, budget, scope, geom, ref, key,
                  i * config.chunk, config, n_down)
  x, _ = jax.lax.fori_loop(0, n_chunks, body, (x, m))
  x = jnp.round(x * 255.0) / 255.0
  chip = warp.window_chip(x, geom, n_down)
  return x, jnp.linalg.norm(apply_fn(params, chip[None])[0] - ref)


def protect_window(apply_fn: Any, params: Any, window0: jax.Array, start: jax.Array,
                   budget: jax.Array, geom: warp.ChipGeometry, ref: jax.Array,
                   key: jax.Array, steps: int, *, config: AttackConfig, n_down: int,
                   scope: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Runs the attack on one face's window.

  Steps run in chunks of ``config.chunk`` unrolled steps (``steps`` is rounded up to a
  multiple of it) in a ``lax.fori_loop`` inside one jit, so one compile serves every step
  count. (The recognizer's convolutions are ``fgsm_jax.models.conv.Conv``: with nn.Conv,
  XLA:CPU ran their gradients ~4x slower inside a loop than outside one.)

  Args:
    apply_fn: ``apply_fn(params, chips N x 150 x 150 x 3) -> N x 128`` (static, hashable).
    params: the recognizer's parameters.
    window0: the original window, float [0, 1] holding 8-bit values, H x W x 3.
    start: where to start (the current protected window), same shape.
    budget: per-pixel L-inf budget, H x W x 1 (or x 3), [0, 1] units.
    geom: the face's chip geometry in this window (`warp.geometry`).
    ref: (128,) the face's clean descriptor.
    key: PRNG key (jitter, DI).
    steps: number of steps.
    config: `AttackConfig` (static).
    n_down: pyramid levels of the chip (static).
    scope: H x W x 1, 1 over the window's own area and 0 over padding added to reach a
      compile bucket (default: all 1). The momentum's and soft steps' gradient means are
      taken over it; padding must have budget 0.

  Returns:
    (window, distance): the protected window rounded to 8 bits (float [0, 1]), and the
    Flax model's distance from ``ref`` on it, unjittered.
  """
  window0 = jnp.asarray(window0, jnp.float32)
  budget = jnp.asarray(budget, jnp.float32)
  if scope is None:
    scope = np.ones(window0.shape[:2] + (1,), np.float32)
  scope = jnp.asarray(scope, jnp.float32)
  if scope.shape != window0.shape[:2] + (1,):
    raise ValueError(f'expected scope of shape {window0.shape[:2] + (1,)}, got {scope.shape}')
  n_chunks = -(-int(steps) // config.chunk)
  return _run(apply_fn, params, window0, jnp.asarray(start, jnp.float32), budget, scope, geom,
              jnp.asarray(ref, jnp.float32), key, jnp.asarray(n_chunks, jnp.int32),
              config=config, n_down=n_down)
