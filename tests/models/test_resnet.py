"""The GroupNorm ResNet classifier: shapes, batch independence, training with fgsm_jax.train,
checkpoint round trip."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import train
from fgsm_jax.models import CLASSIFIERS, ApplyFn, ResNet, build_classifier


@pytest.fixture(scope="module", autouse=True)
def fast_xla_compiles():
  # Same programs, compiled without XLA's optimisation passes: much faster to compile.
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def _tiny_data(n=12, size=32, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3).astype(np.int32)
  images = rng.uniform(0, 0.5, (n, size, size, 3)).astype(np.float32)
  images[np.arange(n), :, :, labels] += 0.5   # class = the brightened channel
  return images, labels


def test_registered_and_shapes():
  assert "resnet" in CLASSIFIERS
  model = build_classifier("resnet", 50)
  assert isinstance(model, ResNet) and model.num_classes == 50
  x = jnp.zeros((2, 160, 160, 3))
  params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
  logits = jax.jit(ApplyFn(model))(params, x)
  assert logits.shape == (2, 50) and logits.dtype == jnp.float32
  n_params = sum(p.size for p in jax.tree.leaves(params))
  assert 0.5e6 < n_params < 3e6
  with pytest.raises(ValueError, match="N x H x W x 3"):
    model.apply({"params": params}, jnp.zeros((2, 160, 160)))


def test_examples_do_not_interact_and_training_works(tmp_path):
  images, labels = _tiny_data()
  config = train.TrainConfig(model="resnet", num_classes=3, image_size=32, epochs=3,
                             batch_size=4, seed=0)
  state, history = train.train(config, images, labels, log=lambda _: None)
  assert history[-1]["loss"] < history[0]["loss"]
  apply_fn = state.apply_fn
  # GroupNorm, no batch statistics: an example's logits do not depend on its batch.
  batched = apply_fn(state.params, jnp.asarray(images[:4]))
  single = apply_fn(state.params, jnp.asarray(images[2:3]))
  np.testing.assert_allclose(batched[2:3], single, rtol=1e-5, atol=1e-5)
  assert history[-1]["accuracy"] >= 0.9

  train.save_checkpoint(tmp_path, state.params, config)
  loaded_fn, params, loaded_config = train.load_checkpoint(tmp_path)
  assert loaded_config == config and loaded_fn == apply_fn
  np.testing.assert_array_equal(loaded_fn(params, images[:4]), batched)
