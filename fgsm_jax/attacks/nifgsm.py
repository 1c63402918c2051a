"""NI-FGSM: Nesterov iterative fast gradient sign method (Lin et al., 2020).

Lin, Song, He, Wang & Hopcroft, "Nesterov Accelerated Gradient and Scale Invariance for
Adversarial Attacks", ICLR 2020, arXiv:1908.06281. (The paper's scale-invariance part, SI,
is not implemented here.)
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def nifgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
           steps: int = 10, step_size: float | jnp.ndarray | None = None, decay: float = 1.0,
           **options: Any) -> jnp.ndarray:
  """MI-FGSM whose gradient is taken at a Nesterov look-ahead point:

    x^nes_t = x_t + step_size * decay * g_t,
    g_{t+1} = decay * g_t + grad_x J(x^nes_t, y) / ||grad_x J(x^nes_t, y)||_1,
    x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(g_{t+1})).

  (Targeted: the look-ahead and the step both go down the loss.) Distance: L-infinity.
  Deterministic: no key.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    eps: budget, scalar or (N,); traced.
    steps: default 10. step_size: default eps / steps. decay: mu, default 1.0.
    loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = nifgsm(apply_fn, params, images, labels, 16 / 255)
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, decay=decay, nesterov=True, **options)
