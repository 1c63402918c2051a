"""The face classifier of the original FGSM experiment, as a Flax linen module."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from fgsm_jax.models import fused


class ConvParams(nn.Module):
  """The parameters of ``nn.Conv(features, kernel_size)``, with the same names, shapes and
  initialisers (so checkpoints and ``init`` values are those of ``nn.Conv``), but no compute:
  the caller applies them (here with ``fused.conv_relu_maxpool``)."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)

  @nn.compact
  def __call__(self, in_features: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, in_features, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    return kernel, bias


class OriginalCNN(nn.Module):
  """The small CNN the original notebook trained on the Georgia Tech faces.

  Conv(8, 3x3, same, ReLU) -> MaxPool 2 -> Conv(16) -> MaxPool 3 -> Conv(32) -> MaxPool 3
  -> Flatten (2048 for 160x160 inputs) -> Dense(512, ReLU) -> Dense(num_classes).

  Input: images N x 160 x 160 x 3, float in [0, 1]. Output: logits N x num_classes.
  ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
  ``impl`` chooses how each conv-ReLU-pool block is computed (``fused.conv_relu_maxpool``):
  'auto' (default) runs the fused form on CPU and NVIDIA GPUs (FGSM about 3x faster on a
  2-core CPU, 2.4x on an H200) and plain XLA ops elsewhere; 'fused' and 'reference' force
  one. The parameters are the same
  (``Conv_0..2``, ``Dense_0..1``, as ``nn.Conv``/``nn.Dense`` name them) whatever ``impl``.

  Example:
    >>> model = OriginalCNN(num_classes=50)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 160, 160, 3)))['params']
    >>> logits = model.apply({'params': params}, images)   # (N, 50)
  """
  num_classes: int
  dtype: Any = jnp.float32
  impl: str = "auto"

  @property
  def cpu_chunk(self) -> int | None:
    """Attacks on CPU run this network 4 images at a time (``attacks.core.chunked_on_cpu``):
    the fused blocks' activations then stay in cache and the per-call scratch memory is
    small. On a 2-core AMD EPYC (Zen 5), FGSM at batch 64 took 69-74 ms of CPU time with
    chunks of 4 (2: the same) against 91-97 ms with 8. None for impl='reference', whose
    reduce_window gradient is slower inside XLA:CPU's chunk loop than over a whole batch."""
    return None if self.impl == "reference" else 4

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected images N x H x W x 3, got shape {images.shape}")
    x = images.astype(self.dtype)
    for i, (features, pool) in enumerate(((8, 2), (16, 3), (32, 3))):
      kernel, bias = ConvParams(features, name=f"Conv_{i}")(x.shape[-1])
      # Conv(same) -> ReLU -> Keras' MaxPooling2D(k): window k, stride k, VALID padding.
      x = fused.conv_relu_maxpool(x, kernel.astype(self.dtype), bias.astype(self.dtype), pool,
                                  impl=self.impl)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(512, dtype=self.dtype)(x))
    x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
    # Logits in float32 so losses and their gradients keep full precision.
    return x.astype(jnp.float32)
