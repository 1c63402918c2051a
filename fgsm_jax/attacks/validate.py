"""One place that checks an attack's inputs: ``jit_attack`` wraps every public attack.

Checks (each a one-line ``ValueError``):
  * shapes, always (shapes are known even while tracing): images N x H x W x C of a
    floating dtype; labels with N rows; eps a scalar or (N,) (a leading 1 broadcasts);
  * values, only where the arrays are concrete (a direct call, not a tracer inside a
    caller's own ``jit``) and validation is on: eps >= 0 and not NaN (a negative eps turns
    the ascent into descent), pixels in [0, 1] and not NaN (0-255 floats would be clipped
    to [0, 1] and silently break the budget; NaN pixels would pass through to the output).

The value checks cost one small reduction per array and a device-to-host copy of a few
scalars. Benchmarks switch them off where they time (``with validation(False): ...``); off,
the wrapper calls the jitted attack straight away.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar('fgsm_jax_validation',
                                                               default=True)


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
  """Turns the attacks' input checks on or off inside the ``with`` block (default on)."""
  token = _ENABLED.set(bool(enabled))
  try:
    yield
  finally:
    _ENABLED.reset(token)


def validation_enabled() -> bool:
  return _ENABLED.get()


def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_attack_inputs(images: Any, labels: Any = None, eps: Any = None) -> None:
  """Raises ValueError for malformed attack inputs (see the module docstring)."""
  shape = getattr(images, 'shape', None)
  if shape is None or len(shape) != 4:
    raise ValueError(f'expected images N x H x W x C, got shape {shape}')
  dtype = jnp.result_type(images)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'expected floating images in [0, 1], got dtype {dtype} (divide 8-bit '
                     'images by 255)')
  n = shape[0]
  label_shape = getattr(labels, 'shape', None)
  if label_shape is not None and len(label_shape) >= 1 and label_shape[0] != n:
    raise ValueError(f'expected labels for {n} images (leading axis {n}), got shape '
                     f'{label_shape}')
  eps_shape = np.shape(eps) if eps is not None else ()
  if len(eps_shape) >= 1 and eps_shape[0] not in (1, n):
    raise ValueError(f'expected eps a scalar or ({n},), one per image, got shape {eps_shape}')
  if eps is not None and _is_concrete(eps):
    e = np.asarray(jax.device_get(eps), np.float64)
    if np.isnan(e).any():
      raise ValueError('eps is NaN')
    if (e < 0).any():
      raise ValueError(f'eps must be >= 0 (a negative budget reverses the attack), got '
                       f'min {e.min():g}')
  if _is_concrete(images) and n and np.prod(shape[1:]):
    # One reduction: NaN propagates through min/max, so it also flags NaN pixels.
    lo, hi = np.asarray(jax.device_get(jnp.stack([jnp.min(images), jnp.max(images)])),
                        np.float64)
    if np.isnan(lo) or np.isnan(hi):
      raise ValueError('images hold NaN pixels')
    if lo < 0.0 or hi > 1.0:
      raise ValueError(f'expected images in [0, 1], got values in [{lo:g}, {hi:g}] (divide '
                       '0-255 images by 255)')


def jit_attack(fn: Callable | None = None, *, static_argnames: tuple[str, ...] = ()
               ) -> Callable:
  """``jax.jit(fn, static_argnames=...)`` behind ``check_attack_inputs`` on its ``images``,
  ``labels`` and ``eps`` arguments (found by name).

  The result keeps the jitted function's ``lower``/``trace`` and exposes the plain Python
  function as ``__wrapped__`` (as ``jax.jit`` does) and the jitted one as ``jitted``.
  """
  if fn is None:
    return functools.partial(jit_attack, static_argnames=static_argnames)
  jitted = jax.jit(fn, static_argnames=static_argnames)
  signature = inspect.signature(fn)

  @functools.wraps(fn)
  def attack(*args, **kwargs):
    if _ENABLED.get():
      bound = signature.bind_partial(*args, **kwargs).arguments
      check_attack_inputs(bound.get('images'), bound.get('labels'), bound.get('eps'))
    return jitted(*args, **kwargs)

  attack.__wrapped__ = fn
  attack.jitted = jitted
  attack.lower = jitted.lower
  attack.trace = jitted.trace
  return attack
