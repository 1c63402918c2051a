"""fgsm_jax.ops.conv_relu_pool: the fused conv-ReLU-maxpool equals the plain XLA formulation,
in value and gradient; the original CNN keeps nn.Conv's parameters whatever its block."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fgsm_jax.attacks import cross_entropy
from fgsm_jax.models.cnn import ConvReluPool
from fgsm_jax.ops import conv_relu_pool as fused


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


@pytest.mark.slow
@pytest.mark.parametrize('for_cpu', [True, False], ids=['cpu-forms', 'gpu-forms'])
@pytest.mark.parametrize('shape,out,pool', CASES)
def test_value_and_gradients_equal_the_reference(shape, out, pool, for_cpu):
  # Both variants of the fused op (the forms measured fastest on XLA:CPU and on a GPU) are
  # checked here on the CPU.
  x, w, b = _inputs(shape, out)
  g = jax.random.normal(jax.random.key(9), (shape[0], shape[1] // pool, shape[2] // pool, out))

  def run(op):
    y, pullback = jax.vjp(op, x, w, b)
    return (y,) + pullback(g)

  got = jax.jit(lambda: run(lambda *a: fused._fused(*a, pool, for_cpu)))()
  want = jax.jit(lambda: run(lambda *a: fused.conv_relu_maxpool(*a, pool, impl='reference')))()
  for name, a, e in zip(('y', 'dx', 'dkernel', 'dbias'), got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-5,
                               err_msg=name)


@pytest.mark.slow
def test_reference_is_keras_conv_relu_maxpool_in_numpy():
  x, w, b = _inputs((1, 6, 6, 2), 3)
  xn, wn, bn = (np.asarray(a, np.float64) for a in (x, w, b))
  padded = np.pad(xn, ((0, 0), (1, 1), (1, 1), (0, 0)))
  z = np.zeros((1, 6, 6, 3))
  for i in range(6):
    for j in range(6):
      z[0, i, j] = np.einsum('hwc,hwco->o', padded[0, i:i + 3, j:j + 3], wn)
  want = np.maximum(z + bn, 0).reshape(1, 3, 2, 3, 2, 3).max(axis=(2, 4))
  for impl in ('fused', 'reference'):
    got = fused.conv_relu_maxpool(x, w, b, 2, impl=impl)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tied_maxima_route_the_gradient_to_the_first():
  # A constant image and a kernel summing its window: every value of each 2x2 window's
  # interior ties; the first position of each window (top-left) gets the whole gradient.
  x = jnp.ones((1, 4, 4, 1))
  w = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)     # identity: every pre-activation is 1
  b = jnp.zeros((1,))
  dx = jax.grad(lambda x: fused.conv_relu_maxpool(x, w, b, 2, impl='fused').sum())(x)
  want = np.zeros((4, 4))
  want[::2, ::2] = 1.0
  np.testing.assert_array_equal(np.asarray(dx)[0, :, :, 0], want)


def test_relu_gradient_at_zero_is_zero():
  x = jnp.ones((1, 4, 4, 1))
  w = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)
  b = -jnp.ones((1,))                                # pre-activation exactly 0
  for impl in ('fused', 'reference'):
    dx = jax.grad(lambda x: fused.conv_relu_maxpool(x, w, b, 2, impl=impl).sum())(x)
    assert float(jnp.abs(dx).max()) == 0.0


@pytest.mark.parametrize('kwargs,match', [
    (dict(pool=2, impl='fast'), 'impl'),
    (dict(pool=0), 'pool'),
])
def test_bad_arguments_raise(kwargs, match):
  x, w, b = _inputs((1, 8, 8, 3), 4)
  with pytest.raises(ValueError, match=match):
    fused.conv_relu_maxpool(x, w, b, **kwargs)
  with pytest.raises(ValueError, match='kernel'):
    fused.conv_relu_maxpool(x, w[:, :, :2], b, 2)


@pytest.mark.slow
def test_the_fast_block_has_nn_conv_params_and_equals_the_plain_block():
  # The module forms: FusedConvReluPool against the plain nn.Conv -> relu -> max_pool block.
  x = jax.random.uniform(jax.random.key(1), (2, 13, 12, 3))
  plain = ConvReluPool(5, (3, 3), padding='SAME', pool=3)
  fast = fused.FusedConvReluPool(5, (3, 3), padding='SAME', pool=3)
  params = plain.init(jax.random.key(0), x)['params']
  jax.tree.map(np.testing.assert_array_equal, fast.init(jax.random.key(0), x)['params'],
               params)
  g = jax.random.normal(jax.random.key(2), (2, 4, 4, 5))
  run = lambda m: jax.value_and_grad(
      lambda p, x: jnp.sum(m.apply({'params': p}, x) * g), argnums=(0, 1))(params, x)
  (v_fast, g_fast), (v_plain, g_plain) = run(fast), run(plain)
  np.testing.assert_allclose(v_fast, v_plain, rtol=1e-5)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5),
               g_fast, g_plain)
  with pytest.raises(ValueError, match='stride 1'):
    fused.FusedConvReluPool(5, (3, 3), strides=2, pool=2).init(jax.random.key(0), x)


@pytest.mark.slow
@pytest.mark.parametrize('widen', [True, False])
def test_widening_narrow_convolutions_changes_no_value(widen):
  x, w, b = _inputs((2, 12, 12, 8), 16)
  g = jax.random.normal(jax.random.key(3), (2, 4, 4, 16))
  run = lambda op: jax.vjp(op, x, w, b)
  y, pull = run(lambda *a: fused.conv_relu_maxpool(*a, 3, impl='fused', widen=widen))
  y_ref, pull_ref = run(lambda *a: fused.reference(*a, 3))
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for a, e in zip(pull(g), pull_ref(g)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
