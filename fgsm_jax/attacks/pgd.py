"""PGD: projected gradient descent with a random start (Madry et al., 2018).

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018, arXiv:1706.06083.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def pgd(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray, labels: jnp.ndarray,
        eps: float | jnp.ndarray, *, key: jax.Array | None = None, steps: int = 10,
        step_size: float | jnp.ndarray | None = None, norm: str = 'linf',
        random_init: bool = True, **options: Any) -> jnp.ndarray:
  """Projected gradient ascent on the loss from a uniform random point of the eps-ball:

    x_0 = Proj(x + U(ball)),  x_{t+1} = Proj_{B(x, eps) ∩ [0,1]}(x_t + step_size * s(grad)),

  with s = sign for L-inf and s(g) = g / ||g||_2 for L2 (per example).

  Distance: ``norm='linf'`` (default) or ``'l2'`` (PGD-L2; eps is then the L2 radius of the
  whole image, in [0, 1] pixel units, per example).

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels (N,) or N x D: as in ``fgsm``.
    key: PRNG key for the random start, or (N,) keys (one per example: each example's start
      then depends only on its key, not on the batch).
    eps: budget, scalar or (N,); traced.
    steps: default 10 (static).
    step_size: default None -> 2.5 * eps / steps (the rule of thumb of the Madry lab's
      ``robustness`` library, so the walk can reach the boundary from anywhere in the ball).
    norm: 'linf' or 'l2'.
    random_init: default True; False starts at x (then PGD-L-inf equals I-FGSM with the
      same step size).
    loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    Adversarial images N x H x W x C float32, within eps of ``images`` and in [0, 1].

  Example:
    >>> adv = pgd(apply_fn, params, images, labels, 8 / 255, key=jax.random.key(0), steps=20)
    >>> adv2 = pgd(apply_fn, params, images, labels, 1.0, key=key, norm='l2')
  """
  if step_size is None:
    step_size = 2.5 * jnp.asarray(eps, jnp.float32) / max(steps, 1)
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, norm=norm, random_init=random_init, **options)


def pgd_l2(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, **kwargs: Any) -> jnp.ndarray:
  """PGD with ``norm='l2'``: eps is each image's L2 radius (pixel units); see ``pgd``."""
  return pgd(apply_fn, params, images, labels, eps, norm='l2', **kwargs)
