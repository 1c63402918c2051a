"""TI-FGSM: translation-invariant attacks by Gaussian-smoothed gradients (Dong et al., 2019).

Dong, Pang, Su & Zhu, "Evading Defenses to Transferable Adversarial Examples by
Translation-Invariant Attacks", CVPR 2019, arXiv:1904.02884.
"""
from __future__ import annotations


import jax.numpy as jnp

from fgsm_jax.attacks import core, validate
from fgsm_jax.attacks.iterative import DoneFn, iterative_attack
from fgsm_jax.attacks.losses import LossFn, cross_entropy


@validate.jit_attack(static_argnames=(
    "apply_fn", "steps", "kernel_size", "loss_fn", "targeted", "done_fn", "per_example"))
def tifgsm(apply_fn: core.ApplyFn, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, steps: int = 10,
           step_size: float | jnp.ndarray | None = None,
           decay: float | jnp.ndarray | None = None, kernel_size: int = 7,
           kernel_sigma: float | jnp.ndarray | None = None, loss_fn: LossFn = cross_entropy,
           targeted: bool = False, done_fn: DoneFn | None = None,
           per_example: bool = True) -> jnp.ndarray:
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
    loss_fn, targeted, done_fn, per_example: as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = tifgsm(apply_fn, params, images, labels, 8 / 255, decay=1.0)   # TI-MI-FGSM
  """
  return iterative_attack(apply_fn, params, images, labels, eps, steps=steps,
                          step_size=step_size, decay=decay, kernel_size=kernel_size,
                          kernel_sigma=kernel_sigma, loss_fn=loss_fn, targeted=targeted,
                          done_fn=done_fn, per_example=per_example)
