"""VMI-FGSM / VNI-FGSM: variance tuning (Wang & He, 2021).

Wang & He, "Enhancing the Transferability of Adversarial Attacks through Variance Tuning",
CVPR 2021, arXiv:2103.15571.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def vmifgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
            labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
            steps: int = 10, step_size: float | jnp.ndarray | None = None,
            decay: float = 1.0, samples: int = 20, beta: float = 1.5, nesterov: bool = False,
            **options: Any) -> jnp.ndarray:
  """MI-FGSM whose gradient is corrected by the previous step's gradient variance:

    g'   = grad_x J(x_t, y),
    g_{t+1} = decay * g_t + (g' + v_t) / ||g' + v_t||_1,
    v_{t+1} = (1/samples) sum_i grad_x J(x_t + r_i, y) - g',   r_i ~ U(-beta eps, beta eps)^d,
    x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(g_{t+1})),   v_0 = 0.

  Neighbours are not clipped to [0, 1], as in the paper. ``nesterov=True`` is VNI-FGSM
  (g' taken at NI-FGSM's look-ahead point; the neighbourhood stays around x_t).
  Distance: L-infinity. Cost: 1 + samples gradients per step.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    key: PRNG key for the neighbours, or (N,) keys (one per example).
    eps: budget, scalar or (N,); traced.
    steps: default 10. step_size: default eps / steps. decay: mu, default 1.0.
    samples: neighbours per step N, default 20 (static). beta: radius factor, default 1.5.
    nesterov: default False.
    loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images, |adv - x|_inf <= eps, in [0, 1].

  Example:
    >>> adv = vmifgsm(apply_fn, params, images, labels, 16 / 255, key=jax.random.key(0))
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, decay=decay, nesterov=nesterov, variance_samples=samples,
                       variance_beta=beta, **options)
