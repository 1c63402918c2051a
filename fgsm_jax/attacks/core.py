"""Pieces shared by the attacks: input checks, input gradients, projections onto the budget."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fgsm_jax.attacks.losses import LossFn

Params = Any
# apply_fn(params, images N x H x W x C) -> outputs N x ... (logits or descriptors).
ApplyFn = Callable[[Params, jnp.ndarray], jnp.ndarray]


def check_images(images: jnp.ndarray) -> None:
  """Raises ValueError unless images is a floating N x H x W x C array (values in [0, 1])."""
  if images.ndim != 4:
    raise ValueError(f"expected images N x H x W x C, got shape {images.shape}")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"expected floating images in [0, 1], got dtype {images.dtype}")


def batch_loss(apply_fn: ApplyFn, params: Params, images: jnp.ndarray, targets: jnp.ndarray,
               loss_fn: LossFn) -> jnp.ndarray:
  """Per-example loss (N,) of the model's outputs on ``images`` against ``targets``."""
  return loss_fn(apply_fn(params, images), targets)


def input_gradient(apply_fn: ApplyFn, params: Params, images: jnp.ndarray,
                   targets: jnp.ndarray, loss_fn: LossFn, *,
                   per_example: bool = True) -> jnp.ndarray:
  """Gradient of each example's loss with respect to its own input, N x H x W x C.

  ``per_example=True`` is ``vmap(grad(loss of one example))``; ``False`` takes the gradient of
  the summed batch loss. They are equal whenever examples do not interact inside the model
  (no batch statistics), which holds for every model here in inference mode; the summed form
  gives XLA one large batched backward pass instead of a vmapped one.
  The gradient is computed in float32 whatever the model's compute dtype: a bfloat16 gradient
  can underflow to 0, and sign(0) = 0 would leave pixels unperturbed.
  """
  images = images.astype(jnp.float32)
  if per_example:
    def one(image, target):
      return batch_loss(apply_fn, params, image[None], target[None], loss_fn)[0]
    return jax.vmap(jax.grad(one))(images, targets)
  return jax.grad(lambda x: jnp.sum(batch_loss(apply_fn, params, x, targets, loss_fn)))(images)


def clip_to_unit(images: jnp.ndarray) -> jnp.ndarray:
  """Clip to the valid pixel range [0, 1]."""
  return jnp.clip(images, 0.0, 1.0)


def project_linf(adversarial: jnp.ndarray, images: jnp.ndarray, eps: jnp.ndarray) -> jnp.ndarray:
  """Project onto {|adv - x|_inf <= eps} intersected with [0, 1]. eps: scalar or (N,)."""
  eps = _per_example(eps, images)
  return clip_to_unit(jnp.clip(adversarial, images - eps, images + eps))


def project_l2(adversarial: jnp.ndarray, images: jnp.ndarray, eps: jnp.ndarray) -> jnp.ndarray:
  """Project onto {||adv - x||_2 <= eps} (per example), then clip to [0, 1]."""
  eps = _per_example(eps, images)
  delta = adversarial - images
  norm = _l2_norm(delta)
  factor = jnp.minimum(1.0, eps / jnp.maximum(norm, 1e-12))
  return clip_to_unit(images + delta * factor)


def l2_normalize(g: jnp.ndarray) -> jnp.ndarray:
  """Each example's array divided by its L2 norm (0 stays 0)."""
  return g / jnp.maximum(_l2_norm(g), 1e-12)


def _l2_norm(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.sqrt(jnp.sum(x * x, axis=tuple(range(1, x.ndim)), keepdims=True))


def _per_example(value: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
  """A scalar or (N,) budget broadcast against N x H x W x C images."""
  value = jnp.asarray(value, jnp.float32)
  if value.ndim == 1:
    value = value.reshape((-1,) + (1,) * (images.ndim - 1))
  return value


def step_direction(targeted: bool) -> float:
  """+1 to ascend the loss (untargeted), -1 to descend it (targeted)."""
  return -1.0 if targeted else 1.0
