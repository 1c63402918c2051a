"""fgsm_jax.models.fused: the fused conv-ReLU-maxpool equals the plain XLA formulation, in
value and gradient; the original CNN keeps nn.Conv's parameters whatever ``impl``."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fgsm_jax.attacks import cross_entropy
from fgsm_jax.models import OriginalCNN
from fgsm_jax.models import fused


def _inputs(shape, out_channels, seed=0):
  kx, kw, kb = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.uniform(kx, shape)
  w = jax.random.normal(kw, (3, 3, shape[-1], out_channels)) * 0.3
  b = jax.random.normal(kb, (out_channels,)) * 0.1
  return x, w, b


# (shape, out channels, pool): the space-to-depth path (pool 2, even H/W), the window path
# with cropping (26 -> 8 for pool 3), odd sizes, and pool 2 on odd H/W (window path).
CASES = [((2, 16, 16, 3), 8, 2), ((2, 26, 26, 16), 32, 3), ((1, 11, 13, 4), 5, 3),
         ((3, 9, 7, 2), 4, 2), ((2, 8, 8, 3), 4, 1)]


@pytest.mark.parametrize("for_cpu", [True, False], ids=["cpu-forms", "gpu-forms"])
@pytest.mark.parametrize("shape,out,pool", CASES)
def test_value_and_gradients_equal_the_reference(shape, out, pool, for_cpu):
  # Both variants of the fused op (the forms measured fastest on XLA:CPU and on a GPU) are
  # checked here on the CPU.
  x, w, b = _inputs(shape, out)
  g = jax.random.normal(jax.random.key(9), (shape[0], shape[1] // pool, shape[2] // pool, out))

  def run(op):
    y, pullback = jax.vjp(op, x, w, b)
    return (y,) + pullback(g)

  got = jax.jit(lambda: run(lambda *a: fused._fused(*a, pool, for_cpu)))()
  want = jax.jit(lambda: run(lambda *a: fused.conv_relu_maxpool(*a, pool, impl="reference")))()
  for name, a, e in zip(("y", "dx", "dkernel", "dbias"), got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-5,
                               err_msg=name)


def test_reference_is_keras_conv_relu_maxpool_in_numpy():
  x, w, b = _inputs((1, 6, 6, 2), 3)
  xn, wn, bn = (np.asarray(a, np.float64) for a in (x, w, b))
  padded = np.pad(xn, ((0, 0), (1, 1), (1, 1), (0, 0)))
  z = np.zeros((1, 6, 6, 3))
  for i in range(6):
    for j in range(6):
      z[0, i, j] = np.einsum("hwc,hwco->o", padded[0, i:i + 3, j:j + 3], wn)
  want = np.maximum(z + bn, 0).reshape(1, 3, 2, 3, 2, 3).max(axis=(2, 4))
  for impl in ("fused", "reference"):
    got = fused.conv_relu_maxpool(x, w, b, 2, impl=impl)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_tied_maxima_route_the_gradient_to_the_first():
  # A constant image and a kernel summing its window: every value of each 2x2 window's
  # interior ties; the first position of each window (top-left) gets the whole gradient.
  x = jnp.ones((1, 4, 4, 1))
  w = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)     # identity: every pre-activation is 1
  b = jnp.zeros((1,))
  dx = jax.grad(lambda x: fused.conv_relu_maxpool(x, w, b, 2, impl="fused").sum())(x)
  want = np.zeros((4, 4))
  want[::2, ::2] = 1.0
  np.testing.assert_array_equal(np.asarray(dx)[0, :, :, 0], want)


def test_relu_gradient_at_zero_is_zero():
  x = jnp.ones((1, 4, 4, 1))
  w = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)
  b = -jnp.ones((1,))                                # pre-activation exactly 0
  for impl in ("fused", "reference"):
    dx = jax.grad(lambda x: fused.conv_relu_maxpool(x, w, b, 2, impl=impl).sum())(x)
    assert float(jnp.abs(dx).max()) == 0.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(pool=2, impl="fast"), "impl"),
    (dict(pool=0), "pool"),
])
def test_bad_arguments_raise(kwargs, match):
  x, w, b = _inputs((1, 8, 8, 3), 4)
  with pytest.raises(ValueError, match=match):
    fused.conv_relu_maxpool(x, w, b, **kwargs)
  with pytest.raises(ValueError, match="kernel"):
    fused.conv_relu_maxpool(x, w[:, :, :2], b, 2)


def test_original_cnn_params_are_those_of_nn_conv_and_impls_agree():
  class PlainCNN(nn.Module):   # the formulation OriginalCNN had before the fused blocks
    @nn.compact
    def __call__(self, x):
      for features, pool in ((8, 2), (16, 3), (32, 3)):
        x = nn.relu(nn.Conv(features, (3, 3), padding="SAME")(x))
        x = nn.max_pool(x, (pool, pool), strides=(pool, pool), padding="VALID")
      x = nn.relu(nn.Dense(512)(x.reshape((x.shape[0], -1))))
      return nn.Dense(5)(x)

  x = jax.random.uniform(jax.random.key(1), (2, 48, 48, 3))
  labels = jnp.array([1, 3])
  want_params = PlainCNN().init(jax.random.key(0), x[:1])["params"]
  params = OriginalCNN(num_classes=5).init(jax.random.key(0), x[:1])["params"]
  assert jax.tree.structure(params) == jax.tree.structure(want_params)
  jax.tree.map(np.testing.assert_array_equal, params, want_params)

  def loss_and_grads(module):
    def loss(p, x):
      return optax.softmax_cross_entropy_with_integer_labels(
          module.apply({"params": p}, x), labels).sum()
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

  want = loss_and_grads(PlainCNN())
  for impl in ("auto", "reference"):   # 'auto' is the fused form on CPU
    got = loss_and_grads(OriginalCNN(num_classes=5, impl=impl))
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-5)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=2e-4, atol=1e-6),
                 got[1], want[1])


def test_bfloat16_compute_close_to_float32():
  x = jax.random.uniform(jax.random.key(1), (2, 48, 48, 3))
  params = OriginalCNN(num_classes=5).init(jax.random.key(0), x[:1])["params"]
  f32 = OriginalCNN(num_classes=5).apply({"params": params}, x)
  bf16 = OriginalCNN(num_classes=5, dtype=jnp.bfloat16).apply({"params": params}, x)
  assert bf16.dtype == jnp.float32
  # Measured: largest logit difference 0.0034 (logits up to ~1); margin 3x.
  np.testing.assert_allclose(np.asarray(bf16), np.asarray(f32), atol=0.01)
  # The attacks' input gradient through the bfloat16 model (custom VJPs included) follows the
  # float32 one. Measured: relative L2 error 0.21, cosine 0.978, signs agreeing on 93% of
  # pixels; bounds at about twice the measured error (a wrong or missing backward path gives
  # a relative error near 1 and signs agreeing on about half the pixels).
  labels = jnp.array([0, 3])

  def input_grad(module):
    return jax.grad(lambda z: jnp.sum(cross_entropy(module.apply({"params": params}, z),
                                                    labels)))(x)

  g32 = np.asarray(input_grad(OriginalCNN(num_classes=5)))
  g16 = np.asarray(input_grad(OriginalCNN(num_classes=5, dtype=jnp.bfloat16)))
  assert g16.dtype == np.float32
  assert np.linalg.norm(g16 - g32) / np.linalg.norm(g32) < 0.4
  assert np.mean(np.sign(g16) == np.sign(g32)) > 0.86


@pytest.mark.parametrize("platform,fused", [("cpu", True), ("cuda", True), ("tpu", False)])
def test_auto_lowers_to_the_fused_form_on_cpu_and_cuda_only(platform, fused):
  # Lowered (not run) for each platform: the plain form pools with reduce_window, the fused
  # one with strided slices, so reduce_window appears exactly where 'auto' is plain.
  module = OriginalCNN(num_classes=5)
  x = jnp.zeros((2, 48, 48, 3))
  params = module.init(jax.random.key(0), x[:1])["params"]

  def loss(p, images):
    return module.apply({"params": p}, images).sum()

  text = jax.jit(jax.grad(loss, argnums=1)).trace(params, x).lower(
      lowering_platforms=(platform,)).as_text()
  assert ("reduce_window" not in text) == fused
