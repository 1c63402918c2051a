"""EOT-PGD: PGD on the expected loss over random transformations (Athalye et al., 2018).

Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples", ICML 2018,
arXiv:1707.07397.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative
from fgsm_jax.attacks import transforms as transforms_lib


def eot_pgd(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
            labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
            transform: transforms_lib.Transform = transforms_lib.default_eot(),
            samples: int = 4, steps: int = 10, step_size: float | jnp.ndarray | None = None,
            norm: str = 'linf', random_init: bool = True, **options: Any) -> jnp.ndarray:
  """PGD whose gradient is a Monte-Carlo estimate of grad_x E_{T ~ transform}[J(T(x), y)]:

    g_t = (1/samples) sum_s grad_x J(T_s(x_t), y),   T_s drawn afresh from the key each step,

  so the perturbation survives the transformations (resizing, blur, JPEG: see
  ``transforms``; gradients flow through them, straight-through for JPEG rounding).
  Distance: ``norm`` 'linf' (default) or 'l2'.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    key: PRNG key (random start and transformations), or (N,) keys.
    eps: budget, scalar or (N,); traced.
    transform: ``transform(key, image) -> image`` (hashable), default
      ``transforms.default_eot()``: down-up resize, blur and JPEG, each with p = 0.5.
    samples: draws per gradient, default 4 (static).
    steps: default 10. step_size: default 2.5 * eps / steps (as PGD).
    norm, random_init: as in ``pgd``. loss_fn, targeted, done_fn, per_example: as in
      ``ifgsm`` (done_fn judges the untransformed image).

  Returns:
    N x H x W x C float32 adversarial images within eps of ``images``, in [0, 1].

  Example:
    >>> t = transforms.Compose((transforms.JpegApprox(60, 90),))
    >>> adv = eot_pgd(apply_fn, params, images, labels, 8 / 255, key=jax.random.key(0),
    ...               transform=t)
  """
  if step_size is None:
    step_size = 2.5 * jnp.asarray(eps, jnp.float32) / max(steps, 1)
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, norm=norm, random_init=random_init, transform=transform,
                       eot_samples=samples, **options)
