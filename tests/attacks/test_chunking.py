"""fgsm_jax.attacks.core's CPU batch chunking: map_batch_chunks / chunked_on_cpu give what
one whole-batch call gives, for divisible and non-divisible batches, pytrees and (N,) eps;
only apply functions that ask for it (``apply_fn.cpu_chunk``) are chunked."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import core, cross_entropy, fgsm
from conftest import TinyCNN, cnn_params, tiny_images
from fgsm_jax.models import ApplyFn, OriginalCNN, fast_original_cnn

CHUNK = 8


@dataclasses.dataclass(frozen=True)
class ChunkedTinyCNN(TinyCNN):
  """TinyCNN asking attacks to run it CHUNK examples at a time on CPU."""
  cpu_chunk: int = CHUNK


@pytest.mark.parametrize('n,chunk', [(12, 4), (13, 4), (3, 8), (9, 1)])
def test_map_batch_chunks_equals_one_call(n, chunk):
  x = jnp.arange(n * 2, dtype=jnp.float32).reshape(n, 2)
  tree = {'a': x, 'b': jnp.arange(n)}

  def fn(t, scale):
    return {'sum': t['a'].sum(axis=1) * scale, 'b': t['b'] + 1}

  scale = jnp.linspace(1.0, 2.0, n)
  got = core.map_batch_chunks(fn, chunk, tree, scale)
  want = fn(tree, scale)
  for key in want:
    assert got[key].shape == want[key].shape
    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))
  with pytest.raises(ValueError, match='chunk'):
    core.map_batch_chunks(fn, 0, tree, scale)


@pytest.mark.slow
def test_chunked_input_gradient_and_fgsm_equal_per_example_results():
  # 19 examples: two full chunks of 8 and a padded one.
  n = 19
  apply_fn, params = ChunkedTinyCNN(), cnn_params()
  x = tiny_images(n=n, seed=4)
  labels = jnp.arange(n) % 4
  grads = core.input_gradient(apply_fn, params, x, labels, cross_entropy)
  for i in (0, 9, 18):
    one = jax.grad(lambda z: cross_entropy(apply_fn(params, z), labels[i:i + 1])[0])(x[i:i + 1])
    np.testing.assert_allclose(np.asarray(grads[i:i + 1]), np.asarray(one), rtol=1e-5,
                               atol=1e-7)
  eps = jnp.linspace(0.01, 0.05, n)   # per-example budgets travel with their chunk
  adv = fgsm(apply_fn, params, x, labels, eps)
  want = jnp.clip(x + eps[:, None, None, None] * jnp.sign(grads), 0, 1)
  np.testing.assert_allclose(np.asarray(adv), np.asarray(want), atol=1e-7)
  delta = np.abs(np.asarray(adv - x)).reshape(n, -1).max(axis=1)
  assert np.all(delta <= np.asarray(eps) + 1e-7)


def _has_loop(fn, *args):
  return 'scan' in str(jax.make_jaxpr(fn)(*args))   # lax.map is a scan


def test_only_models_that_ask_are_chunked():
  x = tiny_images(n=12)
  labels = jnp.arange(12) % 4
  params = cnn_params()
  assert core.cpu_chunk_of(ChunkedTinyCNN()) == CHUNK and core.cpu_chunk_of(TinyCNN()) is None
  assert _has_loop(lambda x: fgsm(ChunkedTinyCNN(), params, x, labels, 0.01), x)
  assert not _has_loop(lambda x: fgsm(TinyCNN(), params, x, labels, 0.01), x)
  # The caller chooses: ApplyFn's default is 4 for the fused CNN, None for the plain one,
  # and an explicit cpu_chunk wins.
  assert ApplyFn(fast_original_cnn(4)).cpu_chunk == 4
  assert ApplyFn(OriginalCNN(num_classes=4)).cpu_chunk is None
  assert ApplyFn(fast_original_cnn(4), cpu_chunk=None).cpu_chunk is None
  assert ApplyFn(OriginalCNN(num_classes=4), cpu_chunk=2).cpu_chunk == 2
  with pytest.raises(ValueError, match='cpu_chunk'):
    ApplyFn(OriginalCNN(num_classes=4), cpu_chunk=0)
