"""Pieces shared by the attacks: input checks, input gradients, projections onto the budget."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fgsm_jax.attacks.losses import LossFn

Params = Any
# What every attack takes as its model: any callable apply_fn(params, images N x H x W x C)
# -> outputs N x ... (logits or descriptors), hashable as a static jit argument.
# ``fgsm_jax.models.ApplyFn`` builds one from a Flax module; tests pass small dataclasses.
ApplyFnLike = Callable[[Params, jnp.ndarray], jnp.ndarray]


def check_images(images: jnp.ndarray) -> None:
  """Raises ValueError unless images is a floating N x H x W x C array (values in [0, 1])."""
  if images.ndim != 4:
    raise ValueError(f'expected images N x H x W x C, got shape {images.shape}')
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f'expected floating images in [0, 1], got dtype {images.dtype}')


def batch_loss(apply_fn: ApplyFnLike, params: Params, images: jnp.ndarray, targets: jnp.ndarray,
               loss_fn: LossFn) -> jnp.ndarray:
  """Per-example loss (N,) of the model's outputs on ``images`` against ``targets``."""
  return loss_fn(apply_fn(params, images), targets)


# XLA:CPU can compute a backward pass over a small chunk of images faster per image than over
# a large batch: a chunk's activations stay in cache, and the per-call scratch memory (which
# the CPU runtime maps afresh, page by page, on every call) is one chunk's, reused by each
# chunk in turn. Whether it pays depends on the model -- it makes the original CNN's fused
# blocks ~2x faster, and dlib's ResNet ~3x slower -- so the caller chooses: the chunk size is
# ``apply_fn.cpu_chunk`` (``fgsm_jax.models.ApplyFn(module, cpu_chunk=...)``, whose default
# picks 4 for the fused CNN and None otherwise); apply functions without it are never
# chunked. Other backends always take the whole batch.


def cpu_chunk_of(apply_fn: Any) -> int | None:
  """``apply_fn.cpu_chunk`` if it has one (a positive int), else None."""
  chunk = getattr(apply_fn, 'cpu_chunk', None)
  return chunk if isinstance(chunk, int) and chunk > 0 else None


def map_batch_chunks(fn: Callable[..., Any], chunk: int, *batched: Any) -> Any:
  """``fn(*batched)`` computed ``chunk`` examples at a time, in a ``lax.map`` loop.

  Every leaf of ``batched`` has the batch as its leading axis; ``fn`` must treat examples
  independently (as inference-mode models do) and return leaves with that leading axis. A
  batch not divisible by ``chunk`` is padded by repeating its last example, and the padding
  is sliced off the result. A batch of at most ``chunk`` examples is one plain call.
  """
  n = jax.tree.leaves(batched)[0].shape[0]
  if chunk < 1:
    raise ValueError(f'chunk must be >= 1, got {chunk}')
  if n <= chunk:
    return fn(*batched)
  count = -(-n // chunk)
  pad = count * chunk - n

  def split(leaf):
    if pad:
      leaf = jnp.concatenate([leaf, jnp.repeat(leaf[-1:], pad, axis=0)])
    return leaf.reshape((count, chunk) + leaf.shape[1:])

  out = jax.lax.map(lambda args: fn(*args), jax.tree.map(split, batched))
  return jax.tree.map(lambda leaf: leaf.reshape((count * chunk,) + leaf.shape[2:])[:n], out)


def chunked_on_cpu(fn: Callable[..., Any], chunk: int | None, *batched: Any) -> Any:
  """``map_batch_chunks(fn, chunk, ...)`` where the computation runs on CPU, else ``fn``.

  ``chunk`` None means no chunking anywhere. The choice of branch is made when the
  computation is lowered for its device (``lax.platform_dependent``), not from the default
  backend at trace time.
  """
  if chunk is None:
    return fn(*batched)
  return jax.lax.platform_dependent(
      *batched, cpu=lambda *b: map_batch_chunks(fn, chunk, *b), default=fn)


def input_gradient(apply_fn: ApplyFnLike, params: Params, images: jnp.ndarray,
                   targets: jnp.ndarray, loss_fn: LossFn, *,
                   per_example: bool = True) -> jnp.ndarray:
  """Gradient of each example's loss with respect to its own input, N x H x W x C.

  ``per_example=True`` is ``vmap(grad(loss of one example))``; ``False`` takes the gradient of
  the summed batch loss. They are equal whenever examples do not interact inside the model
  (no batch statistics), which holds for every model here in inference mode; both compile to
  one batched backward pass and run equally fast.
  On CPU the batch is processed ``apply_fn.cpu_chunk`` examples at a time where the caller
  asks for it (``chunked_on_cpu``), which relies on the same independence of examples.
  The gradient is computed in float32 whatever the model's compute dtype: a bfloat16 gradient
  can underflow to 0, and sign(0) = 0 would leave pixels unperturbed.
  """
  images = images.astype(jnp.float32)

  def gradient(x, t):
    if per_example:
      def one(image, target):
        return batch_loss(apply_fn, params, image[None], target[None], loss_fn)[0]
      return jax.vmap(jax.grad(one))(x, t)
    return jax.grad(lambda z: jnp.sum(batch_loss(apply_fn, params, z, t, loss_fn)))(x)

  return chunked_on_cpu(gradient, cpu_chunk_of(apply_fn), images, targets)


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
