"""I-FGSM / BIM: the Basic Iterative Method (Kurakin, Goodfellow & Bengio, 2016).

"Adversarial examples in the physical world", ICLR 2017 workshop, arXiv:1607.02533.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def ifgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
          labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
          steps: int = 10, step_size: float | jnp.ndarray | None = None, norm: str = 'linf',
          **options: Any) -> jnp.ndarray:
  """FGSM repeated with small steps, clipped to the eps-ball after each:

    x_0 = x,  x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(grad_x J(x_t, y))).

  Distance: L-infinity (the paper's); ``norm='l2'`` takes L2-normalised steps and projects
  onto the L2 ball instead (the L2 BIM of e.g. Foolbox). Deterministic: no key.
  The paper's schedule is step_size = 1/255 and min(eps*255 + 4, 1.25 eps*255) steps; our
  default, step_size = eps / steps, lets the last step reach the budget.

  Args:
    apply_fn: ``apply_fn(params, images) -> outputs`` (static; e.g. ``models.ApplyFn``).
    params: the model's parameters.
    images: N x H x W x C float in [0, 1].
    labels: (N,) int true labels, or targets when ``targeted``; N x D descriptors for the
      embedding losses (dodging, impersonation).
    eps: budget in image units (e.g. 8/255), scalar or (N,); traced (no recompile).
    steps: iterations, default 10 (static).
    step_size: default None -> eps / steps; scalar or (N,).
    norm: 'linf' (default) or 'l2'.
    loss_fn: per-example loss (N,), default cross-entropy.
    targeted: default False; True descends the loss towards ``labels``.
    done_fn: optional early stopping (``goals.Misclassified()`` etc.), default None.
    per_example: ``core.input_gradient``'s mode, default True.

  Returns:
    Adversarial images, N x H x W x C float32, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = ifgsm(ApplyFn(OriginalCNN(50)), params, images, labels, 4 / 255, steps=10)
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, norm=norm, **options)


bim = ifgsm
