"""TI-FGSM: translation-invariant attacks by Gaussian-smoothed gradients (Dong et al., 2019).

Dong, Pang, Su & Zhu, "Evading Defenses to Transferable Adversarial Examples by
Translation-Invariant Attacks", CVPR 2019, arXiv:1904.02884.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def tifgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
           steps: int = 10, step_size: float | jnp.ndarray | None = None,
           decay: float | None = None, kernel_size: int = 7, kernel_sigma: float | None = None,
           **options: Any) -> jnp.ndarray:
  """Iterative FGSM on the gradient convolved with a Gaussian kernel W (depthwise, zero pad):

    x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(W * grad_x J(x_t, y))),

  which approximates the gradient averaged over small translations of the image.
  ``steps=1, step_size=eps`` is the paper's one-step TI-FGSM; the default is its iterative
  form (TI-BIM), and ``decay=1.0`` gives TI-MI-FGSM. Distance: L-infinity. No key.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    eps: budget, scalar or (N,); traced.
    steps: default 10. step_size: default eps / steps. decay: None or the momentum mu.
    kernel_size: odd, default 7 (static) -- the paper uses 15 on 299 x 299 ImageNet images;
      7 is the same fraction of a 160 x 160 face.
    kernel_sigma: pixels, default (kernel_size - 1) / 6 (the reference kernel spans
      +-3 sigma); traced.
    loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = tifgsm(apply_fn, params, images, labels, 8 / 255, decay=1.0)   # TI-MI-FGSM
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, decay=decay, kernel_size=kernel_size,
                       kernel_sigma=kernel_sigma, **options)
