"""FGSM: the Fast Gradient Sign Method, adv = x + eps * sign(grad_x J(params, x, y)).

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
arXiv:1412.6572.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, validate
from fgsm_jax.attacks.losses import LossFn, cross_entropy


@validate.jit_attack(static_argnames=('apply_fn', 'loss_fn', 'targeted', 'per_example'))
def fgsm(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
         labels: jnp.ndarray, eps: float | jnp.ndarray, *, key: jax.Array | None = None,
         loss_fn: LossFn = cross_entropy, targeted: bool = False,
         per_example: bool = True) -> jnp.ndarray:
  """One signed-gradient step of size eps: adv = clip(x + eps * sign(grad_x J(params, x, y))).

  Distance: L-infinity; |adv - x|_inf <= eps and adv in [0, 1] (the original notebook did not
  clip; we do, so results are valid images).

  Args:
    apply_fn: ``apply_fn(params, images) -> outputs`` (logits, or descriptors with an
      embedding loss); static. ``models.ApplyFn(module, cpu_chunk=...)`` also says how many
      images a CPU computes at a time (``core.chunked_on_cpu``; None: the whole batch).
    params: the model's parameters (any pytree).
    images: N x H x W x C float in [0, 1].
    labels: (N,) true labels (untargeted) or target labels (targeted); for embedding losses,
      N x D reference or target descriptors.
    eps: budget in image units, e.g. 5/255; a scalar or (N,). Traced: no recompile.
    key: unused (FGSM is deterministic); every attack takes one.
    loss_fn: per-example loss ``loss_fn(outputs, labels) -> (N,)``; default cross-entropy.
    targeted: False (default) ascends the loss on the true labels; True descends it.
    per_example: True (default) ``vmap(grad)`` of each example's loss; False the gradient of
      the summed loss (the same for models without batch statistics).

  Returns:
    Adversarial images, N x H x W x C float32.

  Example:
    >>> apply_fn = ApplyFn(fast_original_cnn(50))   # fgsm_jax.models
    >>> adv = fgsm(apply_fn, params, images, labels, eps=5 / 255)   # images N x 160 x 160 x 3
  """
  del key
  core.check_images(images)
  direction = -1.0 if targeted else 1.0

  def one_loss(x, y):   # J for one example
    return loss_fn(apply_fn(params, x[None]), y[None])[0]

  def attack(x, y, e):   # the whole batch, or one CPU chunk of it
    if per_example:
      grad = jax.vmap(jax.grad(one_loss))(x, y)
    else:
      grad = jax.grad(lambda z: jnp.sum(loss_fn(apply_fn(params, z), y)))(x)
    return core.project_linf(x + direction * e * jnp.sign(grad), x, e)

  images = images.astype(jnp.float32)   # the gradient in float32, whatever the model's dtype
  if jnp.ndim(eps) > 1:   # a per-pixel budget: no chunking
    return attack(images, labels, core._per_example(eps, images))
  eps = jnp.broadcast_to(core._per_example(eps, images), images.shape[:1] + (1, 1, 1))
  # On CPU, apply_fn.cpu_chunk images at a time where the caller asks for it (models.ApplyFn):
  # the loop then writes the adversarial images directly, not a gradient buffer first.
  return core.chunked_on_cpu(attack, core.cpu_chunk_of(apply_fn), images, labels, eps)
