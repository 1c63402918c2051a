"""fgsm_jax.models.cnn: OriginalCNN is the Keras network with nn.Conv's parameters, and its fast
variant (fast_original_cnn, the fused blocks) is the same function with the same parameters:
equal outputs and gradients, the same FGSM images, checkpoints of one load into the other."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fgsm_jax.attacks import cross_entropy, fgsm
from fgsm_jax.models import ApplyFn, OriginalCNN, fast_original_cnn

# Slow, left out of scripts/test.sh --quick: compiles the CNN's plain and fused forms (and
# bfloat16) at full size.
pytestmark = pytest.mark.slow


def test_original_cnn_params_are_those_of_nn_conv_and_impls_agree():
  class PlainCNN(nn.Module):   # the formulation OriginalCNN had before the fused blocks
    @nn.compact
    def __call__(self, x):
      for features, pool in ((8, 2), (16, 3), (32, 3)):
        x = nn.relu(nn.Conv(features, (3, 3), padding='SAME')(x))
        x = nn.max_pool(x, (pool, pool), strides=(pool, pool), padding='VALID')
      x = nn.relu(nn.Dense(512)(x.reshape((x.shape[0], -1))))
      return nn.Dense(5)(x)

  x = jax.random.uniform(jax.random.key(1), (2, 48, 48, 3))
  labels = jnp.array([1, 3])
  want_params = PlainCNN().init(jax.random.key(0), x[:1])['params']
  params = OriginalCNN(num_classes=5).init(jax.random.key(0), x[:1])['params']
  assert jax.tree.structure(params) == jax.tree.structure(want_params)
  jax.tree.map(np.testing.assert_array_equal, params, want_params)
  # The fast variant's params are the same tree and values (checkpoints load either way).
  fast_params = fast_original_cnn(5).init(jax.random.key(0), x[:1])['params']
  jax.tree.map(np.testing.assert_array_equal, fast_params, want_params)

  def loss_and_grads(module):
    def loss(p, x):
      return optax.softmax_cross_entropy_with_integer_labels(
          module.apply({'params': p}, x), labels).sum()
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

  want = loss_and_grads(PlainCNN())
  for module in (fast_original_cnn(5), OriginalCNN(num_classes=5)):   # fused on CPU, plain
    got = loss_and_grads(module)
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-5)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=2e-4, atol=1e-6),
                 got[1], want[1])


def test_bfloat16_compute_close_to_float32():
  x = jax.random.uniform(jax.random.key(1), (2, 48, 48, 3))
  params = OriginalCNN(num_classes=5).init(jax.random.key(0), x[:1])['params']
  f32 = fast_original_cnn(5).apply({'params': params}, x)
  bf16 = fast_original_cnn(5, dtype=jnp.bfloat16).apply({'params': params}, x)
  assert bf16.dtype == jnp.float32
  # Measured: largest logit difference 0.0034 (logits up to ~1); margin 3x.
  np.testing.assert_allclose(np.asarray(bf16), np.asarray(f32), atol=0.01)
  # The attacks' input gradient through the bfloat16 model (custom VJPs included) follows the
  # float32 one. Measured: relative L2 error 0.21, cosine 0.978, signs agreeing on 93% of
  # pixels; bounds at about twice the measured error (a wrong or missing backward path gives
  # a relative error near 1 and signs agreeing on about half the pixels).
  labels = jnp.array([0, 3])

  def input_grad(module):
    return jax.grad(lambda z: jnp.sum(cross_entropy(module.apply({'params': params}, z),
                                                    labels)))(x)

  g32 = np.asarray(input_grad(fast_original_cnn(5)))
  g16 = np.asarray(input_grad(fast_original_cnn(5, dtype=jnp.bfloat16)))
  assert g16.dtype == np.float32
  assert np.linalg.norm(g16 - g32) / np.linalg.norm(g32) < 0.4
  assert np.mean(np.sign(g16) == np.sign(g32)) > 0.86


@pytest.mark.parametrize('platform,fused', [('cpu', True), ('cuda', True), ('tpu', False)])
def test_auto_lowers_to_the_fused_form_on_cpu_and_cuda_only(platform, fused):
  # Lowered (not run) for each platform: the plain form pools with reduce_window, the fused
  # one with strided slices, so reduce_window appears exactly where 'auto' is plain.
  module = fast_original_cnn(5)
  x = jnp.zeros((2, 48, 48, 3))
  params = module.init(jax.random.key(0), x[:1])['params']

  def loss(p, images):
    return module.apply({'params': p}, images).sum()

  text = jax.jit(jax.grad(loss, argnums=1)).trace(params, x).lower(
      lowering_platforms=(platform,)).as_text()
  assert ('reduce_window' not in text) == fused


def test_plain_and_fast_give_the_same_fgsm_images():
  # FGSM at 160 x 160 through the plain network (whole batch) and the fast one (fused blocks,
  # CPU chunks of 4): the same adversarial images but for sign flips where a gradient is ~0.
  x = jax.random.uniform(jax.random.key(1), (6, 160, 160, 3))
  labels = jnp.arange(6) % 5
  params = OriginalCNN(num_classes=5).init(jax.random.key(0), x[:1])['params']
  plain, fast = ApplyFn(OriginalCNN(num_classes=5)), ApplyFn(fast_original_cnn(5))
  assert (plain.cpu_chunk, fast.cpu_chunk) == (None, 4)
  a = np.asarray(fgsm(plain, params, x, labels, 4 / 255))
  b = np.asarray(fgsm(fast, params, x, labels, 4 / 255))
  differ = np.mean(np.abs(a - b) > 1e-6)
  # Measured: no pixel differs; bound 1e-4 (a few sign flips per image where a gradient is
  # ~0 and the two forms round differently).
  assert differ < 1e-4, differ


def test_a_checkpoint_of_the_plain_network_loads_into_the_fast_one(tmp_path):
  # train.load_checkpoint builds CLASSIFIERS['cnn'] (the fast variant): parameters saved from
  # the plain OriginalCNN restore into it and give its outputs.
  from fgsm_jax import train
  x = jax.random.uniform(jax.random.key(1), (2, 160, 160, 3))
  plain = OriginalCNN(num_classes=5)
  params = plain.init(jax.random.key(0), x[:1])['params']
  config = train.TrainConfig(model='cnn', num_classes=5)
  train.save_checkpoint(tmp_path, params, config)
  apply_fn, loaded, _ = train.load_checkpoint(tmp_path)
  assert apply_fn.module == fast_original_cnn(5) and apply_fn.cpu_chunk == 4
  np.testing.assert_allclose(apply_fn(loaded, x), plain.apply({'params': params}, x),
                             rtol=1e-5, atol=1e-6)
