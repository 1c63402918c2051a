"""Turn a linen module into the ``apply_fn(params, images)`` that attacks and training take."""
from __future__ import annotations

import dataclasses
from typing import Union

import flax.linen as nn
import jax.numpy as jnp

from fgsm_jax.ops.conv_relu_pool import FusedConvReluPool

AUTO = 'auto'


def check_face_batch(x: jnp.ndarray, size: int, what: str = 'crops') -> None:
  """Raises ValueError unless ``x`` is an N x size x size x 3 float batch (RGB in [0, 1]):
  the input every face network of ``fgsm_jax.models`` takes, checked once at trace time."""
  if x.ndim != 4 or x.shape[1:] != (size, size, 3):
    raise ValueError(f'expected {what} N x {size} x {size} x 3, got {x.shape}')
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'expected float {what} in [0, 1], got dtype {x.dtype}')


@dataclasses.dataclass(frozen=True)
class ApplyFn:
  """``apply_fn(params, images) -> outputs`` for a linen module in inference mode.

  ``cpu_chunk``: on CPU, attacks run the model this many images at a time
  (``attacks.core.chunked_on_cpu``); None never chunks. The default 'auto' picks
  ``default_cpu_chunk(module)``: 4 for a network built with the fused conv-ReLU-pool blocks
  (``fast_original_cnn``), else None.

  Hashable and equal by the module's fields, so two ``ApplyFn(OriginalCNN(50))`` are the same
  static argument to ``jax.jit``: building a fresh one does not trigger a recompile.
  """
  module: nn.Module
  cpu_chunk: Union[int, None, str] = AUTO

  def __post_init__(self):
    if self.cpu_chunk == AUTO:
      object.__setattr__(self, 'cpu_chunk', default_cpu_chunk(self.module))
    elif self.cpu_chunk is not None and (not isinstance(self.cpu_chunk, int)
                                         or self.cpu_chunk < 1):
      raise ValueError(f"cpu_chunk must be a positive int, None or 'auto', got "
                       f'{self.cpu_chunk!r}')

  def __call__(self, params, images: jnp.ndarray) -> jnp.ndarray:
    return self.module.apply({'params': params}, images)


def default_cpu_chunk(module: nn.Module) -> int | None:
  """The CPU batch chunk attacks use for ``module`` by default (see ``ApplyFn``).

  4 for networks with the fused blocks: their activations then stay in cache and the per-call
  scratch memory is small. On a 2-core AMD EPYC (Zen 5), FGSM on the original CNN at batch 64
  took 69-74 ms of CPU time with chunks of 4 (2: the same) against 91-97 ms with 8. None
  otherwise: the plain blocks' reduce_window gradient, and dlib's ResNet, run slower inside
  XLA:CPU's chunk loop than over a whole batch.
  """
  block = getattr(module, 'block', None)
  block = getattr(block, 'func', block)   # a functools.partial of the block
  if isinstance(block, type) and issubclass(block, FusedConvReluPool):
    return 4
  return None
