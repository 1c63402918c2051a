"""The GroupNorm ResNet classifier: shapes, batch independence, training with fgsm_jax.train,
checkpoint round trip."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import train
from fgsm_jax.models import CLASSIFIERS, ApplyFn, ResNet, build_classifier, fast_resnet


@pytest.fixture(scope='module', autouse=True)
def fast_xla_compiles():
  # Same programs, compiled without XLA's optimisation passes: much faster to compile.
  before = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', before)


def _tiny_data(n=12, size=32, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3).astype(np.int32)
  images = rng.uniform(0, 0.5, (n, size, size, 3)).astype(np.float32)
  images[np.arange(n), :, :, labels] += 0.5   # class = the brightened channel
  return images, labels


def test_registered_and_shapes():
  assert 'resnet' in CLASSIFIERS
  model = build_classifier('resnet', 50)
  assert isinstance(model, ResNet) and model.num_classes == 50
  x = jnp.zeros((2, 160, 160, 3))
  params = jax.jit(model.init)(jax.random.key(0), x[:1])['params']
  logits = jax.jit(ApplyFn(model))(params, x)
  assert logits.shape == (2, 50) and logits.dtype == jnp.float32
  n_params = sum(p.size for p in jax.tree.leaves(params))
  assert 0.5e6 < n_params < 3e6
  with pytest.raises(ValueError, match='N x H x W x 3'):
    model.apply({'params': params}, jnp.zeros((2, 160, 160)))


@pytest.mark.slow
def test_examples_do_not_interact_and_training_works(tmp_path):
  images, labels = _tiny_data()
  config = train.TrainConfig(model='resnet', num_classes=3, image_size=32, epochs=3,
                             batch_size=4, seed=0)
  state, history = train.train(config, images, labels, log=lambda _: None)
  assert history[-1]['loss'] < history[0]['loss']
  apply_fn = state.apply_fn
  # GroupNorm, no batch statistics: an example's logits do not depend on its batch.
  batched = apply_fn(state.params, jnp.asarray(images[:4]))
  single = apply_fn(state.params, jnp.asarray(images[2:3]))
  np.testing.assert_allclose(batched[2:3], single, rtol=1e-5, atol=1e-5)
  assert history[-1]['accuracy'] >= 0.9

  train.save_checkpoint(tmp_path, state.params, config)
  loaded_fn, params, loaded_config = train.load_checkpoint(tmp_path)
  assert loaded_config == config and loaded_fn == apply_fn
  np.testing.assert_array_equal(loaded_fn(params, images[:4]), batched)


@pytest.mark.slow
def test_plain_and_fast_convolutions_share_params_values_and_gradients():
  # ResNet() is built with nn.Conv, fast_resnet with ops.Conv: the same parameter tree (a
  # checkpoint of one loads into the other), outputs and all gradients.
  x = jax.random.uniform(jax.random.key(1), (2, 40, 40, 3))
  plain, fast = ResNet(num_classes=4), fast_resnet(4)
  params = plain.init(jax.random.key(0), x[:1])['params']
  jax.tree.map(np.testing.assert_array_equal, fast.init(jax.random.key(0), x[:1])['params'],
               params)
  # GroupNorm's last scale starts at 0 (blocks start as the identity): nonzero here, so every
  # convolution shapes the output and its gradient.
  params = jax.tree.map(lambda p: p + 0.05, params)
  labels = jnp.array([1, 3])

  def loss_and_grads(module):
    def loss(p, z):
      logits = module.apply({'params': p}, z)
      return -jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(2), labels])
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

  (v_fast, g_fast), (v_plain, g_plain) = loss_and_grads(fast), loss_and_grads(plain)
  np.testing.assert_allclose(v_fast, v_plain, rtol=1e-5)
  # Float rounding only (the space-to-depth stem sums in another order; GroupNorm's divisions
  # amplify it): each gradient's largest deviation relative to its largest entry, measured
  # 5.2e-4; bound 1e-3 (a wrong gradient path is off by order 1).
  worst = max(float(np.abs(a - e).max() / np.abs(e).max())
              for a, e in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_plain)))
  assert worst < 1e-3, worst
