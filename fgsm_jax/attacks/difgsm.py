"""DI-FGSM (DI^2-FGSM, M-DI^2-FGSM): input diversity (Xie et al., 2019).

Xie, Zhang, Zhou, Bai, Wang, Ren & Yuille, "Improving Transferability of Adversarial Examples
with Input Diversity", CVPR 2019, arXiv:1803.06978.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative
from fgsm_jax.attacks.transforms import ResizePad


def difgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
           steps: int = 10, step_size: float | jnp.ndarray | None = None,
           decay: float | None = None, prob: float = 0.5, min_scale: float = 0.9,
           **options: Any) -> jnp.ndarray:
  """I-FGSM whose gradient is taken through a random resize-and-pad T(x_t; p) each step:

    x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(grad_x J(T(x_t; p), y))),

  where T, with probability p, shrinks the image to rnd x rnd (rnd uniform in
  [ceil(min_scale * H), H]) and zero-pads it at a random offset back to H x W
  (``transforms.ResizePad``; the paper enlarges instead, which needs a model accepting
  larger inputs). ``decay`` (e.g. 1.0) adds MI-FGSM's momentum: M-DI^2-FGSM.
  Distance: L-infinity.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    key: PRNG key, or (N,) keys; each step draws T per example from it.
    eps: budget, scalar or (N,); traced.
    steps: default 10. step_size: default eps / steps.
    decay: None (default, DI^2-FGSM) or the momentum mu (M-DI^2-FGSM).
    prob: p, default 0.5 (the paper's). min_scale: default 0.9 (static).
    loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = difgsm(apply_fn, params, images, labels, 8 / 255, key=jax.random.key(0),
    ...              decay=1.0)
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, decay=decay,
                       transform=ResizePad(min_scale=min_scale, prob=prob), **options)
