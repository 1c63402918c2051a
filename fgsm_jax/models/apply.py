"""Turn a linen module into the ``apply_fn(params, images)`` that attacks and training take."""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class ApplyFn:
  """``apply_fn(params, images) -> outputs`` for a linen module in inference mode.

  Hashable and equal by the module's fields, so two ``ApplyFn(OriginalCNN(50))`` are the same
  static argument to ``jax.jit``: building a fresh one does not trigger a recompile.
  """
  module: nn.Module

  def __call__(self, params, images: jnp.ndarray) -> jnp.ndarray:
    return self.module.apply({"params": params}, images)

  @property
  def cpu_chunk(self) -> int | None:
    """The module's preferred CPU batch chunk (see ``attacks.core.chunked_on_cpu``), or None."""
    return getattr(self.module, "cpu_chunk", None)
