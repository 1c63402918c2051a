"""Tiny fixed models and data for the attack tests (8 x 8 x 3 images, a few classes).

The models are hashable frozen dataclasses, like ``fgsm_jax.models.ApplyFn``, so they are
static jit arguments; ``Counting`` counts how often an attack traces its model.
"""
from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

H, W, C, K, D = 8, 8, 3, 4, 6   # image size, classes, embedding width

# How many times each Counting model was traced (called with abstract values).
TRACES: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class Linear:
  """logits = flatten(x) @ w + b: the input gradient of softmax CE is w (p - onehot) by hand."""

  def __call__(self, params, images):
    return images.reshape(images.shape[0], -1) @ params['w'] + params['b']


@dataclasses.dataclass(frozen=True)
class TinyCNN:
  """conv 3x3 (4 channels, tanh) -> flatten -> dense: non-linear and spatial."""

  def __call__(self, params, images):
    h = jax.lax.conv_general_dilated(images, params['conv'], (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    h = jnp.tanh(h)
    return h.reshape(h.shape[0], -1) @ params['w'] + params['b']


@dataclasses.dataclass(frozen=True)
class Counting:
  """Wraps a model and counts its traces under ``tag``."""
  inner: object
  tag: str

  def __call__(self, params, images):
    if isinstance(images, jax.core.Tracer):
      TRACES[self.tag] += 1
    return self.inner(params, images)


def linear_params(h=H, w=W, c=C, k=K, seed=0):
  rng = np.random.default_rng(seed)
  return {'w': jnp.asarray(rng.normal(0, 0.3, (h * w * c, k)), jnp.float32),
          'b': jnp.asarray(rng.normal(0, 0.1, (k,)), jnp.float32)}


def cnn_params(seed=1):
  rng = np.random.default_rng(seed)
  return {'conv': jnp.asarray(rng.normal(0, 0.4, (3, 3, C, 4)), jnp.float32),
          'w': jnp.asarray(rng.normal(0, 0.2, (H * W * 4, K)), jnp.float32),
          'b': jnp.zeros((K,), jnp.float32)}


def tiny_images(n=3, h=H, w=W, c=C, seed=0):
  # Mid-range pixels plus a few at 0 and 1, so clipping to [0, 1] is exercised.
  rng = np.random.default_rng(seed)
  x = rng.uniform(0.05, 0.95, (n, h, w, c)).astype(np.float32)
  x[:, 0, 0, :] = 0.0
  x[:, -1, -1, :] = 1.0
  return jnp.asarray(x)


@pytest.fixture(scope='module', autouse=True)
def fast_xla_compiles():
  """Compile these tests' many tiny programs without XLA's optimisation passes.

  The programs are the same (same jaxprs, same results up to float rounding); only XLA's
  fusion and other passes are skipped, which more than halves compile time on the CPU and
  keeps this suite within its time budget. Restored after each module, so tests elsewhere
  run with the default settings.
  """
  before = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', before)


@pytest.fixture(scope='session')
def linear():
  return Linear(), linear_params()


@pytest.fixture(scope='session')
def cnn():
  return TinyCNN(), cnn_params()


@pytest.fixture(scope='session')
def batch():
  images = tiny_images()
  labels = jnp.array([0, 1, 2], jnp.int32)
  return images, labels
