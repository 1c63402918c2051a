"""FGSM: the Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, 2015).

"Explaining and Harnessing Adversarial Examples", ICLR 2015, arXiv:1412.6572.
"""
from __future__ import annotations


import jax.numpy as jnp

from fgsm_jax.attacks import core, validate
from fgsm_jax.attacks.losses import LossFn, cross_entropy


@validate.jit_attack(static_argnames=("apply_fn", "loss_fn", "targeted", "per_example"))
def fgsm(apply_fn: core.ApplyFn, params: core.Params, images: jnp.ndarray,
         labels: jnp.ndarray, eps: float | jnp.ndarray, *, loss_fn: LossFn = cross_entropy,
         targeted: bool = False, per_example: bool = True) -> jnp.ndarray:
  """One signed-gradient step of size eps: adv = clip(x + eps * sign(grad_x J(params, x, y))).

  Distance: L-infinity; |adv - x|_inf <= eps and adv in [0, 1] (the original notebook did not
  clip; we do, so results are valid images).

  Args:
    apply_fn: ``apply_fn(params, images) -> outputs`` (logits, or descriptors with an
      embedding loss). Static: pass the same function object to avoid recompiling.
    params: the model's parameters (any pytree).
    images: N x H x W x C float in [0, 1].
    labels: (N,) true labels (untargeted) or target labels (targeted); for embedding losses,
      N x D reference or target descriptors.
    eps: budget in image units, e.g. 5/255; a scalar or (N,). Traced: a new eps does not
      recompile.
    loss_fn: per-example loss ``loss_fn(outputs, labels) -> (N,)``; default cross-entropy.
    targeted: False (default) ascends the loss on the true labels; True descends it toward
      ``labels`` as targets.
    per_example: True (default) computes ``vmap(grad)`` of each example's loss; False the
      gradient of the summed loss (same result for models without batch statistics).

  Returns:
    Adversarial images, same shape as ``images``, float32.

  Example:
    >>> apply_fn = ApplyFn(OriginalCNN(num_classes=50))   # fgsm_jax.models
    >>> adv = fgsm(apply_fn, params, images, labels, eps=5 / 255)   # images N x 160 x 160 x 3
  """
  core.check_images(images)
  images = images.astype(jnp.float32)
  eps = jnp.asarray(eps, jnp.float32)

  def attack(x, y, e):
    grad = core.input_gradient(apply_fn, params, x, y, loss_fn, per_example=per_example)
    step = core.step_direction(targeted) * jnp.sign(grad)
    return core.project_linf(x + core._per_example(e, x) * step, x, e)

  if eps.ndim > 1:
    return attack(images, labels, eps)
  # The whole step per chunk on CPU (see core.chunked_on_cpu): the loop writes the
  # adversarial images directly, instead of a gradient buffer and a second pass over it.
  eps = jnp.broadcast_to(eps, images.shape[:1])
  return core.chunked_on_cpu(attack, core.cpu_chunk_of(apply_fn), images, labels, eps)
