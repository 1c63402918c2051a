"""FGM-L2: the fast gradient method with an L2 budget.

The L2 counterpart of FGSM (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
Adversarial Examples", ICLR 2015, arXiv:1412.6572): the step follows the L2-normalised
gradient, r = eps * g / ||g||_2, as in Miyato, Dai & Goodfellow, "Adversarial Training Methods
for Semi-Supervised Text Classification", ICLR 2017, arXiv:1605.07725.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, validate
from fgsm_jax.attacks.losses import LossFn, cross_entropy


@validate.jit_attack(static_argnames=('apply_fn', 'loss_fn', 'targeted', 'per_example'))
def fgm_l2(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
           labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
           loss_fn: LossFn = cross_entropy, targeted: bool = False,
           per_example: bool = True) -> jnp.ndarray:
  """One L2 step: adv = clip(x + eps * g / ||g||_2, 0, 1), g = grad_x J(x, y) per example.

  Distance: L2; ||adv - x||_2 <= eps per example (clipping to [0, 1] only shortens the step).
  eps is in [0, 1] pixel units over the whole image (an L-inf eps e spread over all
  d = H*W*C pixels corresponds to L2 radius e * sqrt(d)).

  Args:
    apply_fn, params: the model (apply_fn static).
    images: N x H x W x C float in [0, 1].
    labels: (N,) labels/targets, or N x D descriptors for the embedding losses.
    eps: L2 budget, scalar or (N,); traced.
    key: unused (deterministic); every attack takes one.
    loss_fn: default cross-entropy. targeted: default False (True descends the loss).
    per_example: ``core.input_gradient``'s mode, default True.

  Returns:
    N x H x W x C float32 adversarial images.

  Example:
    >>> adv = fgm_l2(apply_fn, params, images, labels, eps=2.0)   # 160x160x3: ~ 4.5/255 L-inf
  """
  del key
  core.check_images(images)
  images = images.astype(jnp.float32)
  grad = core.input_gradient(apply_fn, params, images, labels, loss_fn, per_example=per_example)
  step = core.step_direction(targeted) * core.l2_normalize(grad)
  return core.project_l2(images + core._per_example(eps, images) * step, images, eps)
