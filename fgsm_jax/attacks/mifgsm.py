"""MI-FGSM: the momentum iterative fast gradient sign method (Dong et al., 2018).

Dong, Liao, Pang, Su, Zhu, Hu & Li, "Boosting Adversarial Attacks with Momentum", CVPR 2018,
arXiv:1710.06081.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, iterative


def mifgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
           steps: int = 10, step_size: float | jnp.ndarray | None = None, decay: float = 1.0,
           norm: str = 'linf', **options: Any) -> jnp.ndarray:
  """I-FGSM with an accumulated, L1-normalised gradient (momentum), for transferability:

    g_{t+1} = decay * g_t + grad_x J(x_t, y) / ||grad_x J(x_t, y)||_1,
    x_{t+1} = Clip_{x, eps}(x_t + step_size * sign(g_{t+1})).

  Distance: L-infinity (default) or ``norm='l2'``, the paper's L2 version
  x_{t+1} = Proj(x_t + step_size * g_{t+1} / ||g_{t+1}||_2). Deterministic: no key.

  Args:
    apply_fn, params, images (N x H x W x C in [0, 1]), labels: as in ``ifgsm``.
    eps: budget, scalar or (N,); traced.
    steps: default 10 (the paper's T). step_size: default eps / steps (alpha = eps / T).
    decay: the momentum mu, default 1.0 (the paper's); static. 0 gives I-FGSM.
    norm: 'linf' or 'l2'. loss_fn, targeted, done_fn, per_example (``**options``): as in ``ifgsm``.

  Returns:
    N x H x W x C float32 adversarial images within eps of ``images``, in [0, 1].

  Example:
    >>> adv = mifgsm(apply_fn, params, images, labels, 8 / 255)   # T = 10, mu = 1
  """
  return iterative.run(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                       steps=steps, decay=decay, norm=norm, **options)
