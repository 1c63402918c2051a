"""fgsm_jax.ops.depthwise: DepthwiseConv (fast) and PlainDepthwiseConv equal nn.Conv with
feature_group_count = channels in params, outputs and all gradients."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.ops.depthwise import DepthwiseConv, PlainDepthwiseConv, depthwise_conv2d
from tests.ops.conftest import (assert_looped_gradient_steps_equal_stepped,
                                assert_same_param_trees)

# (H, W, C, k, stride, padding): odd/even sizes, stride 1 and 2, TF SAME (asymmetric for even
# sizes at stride 2), symmetric, VALID, a kernel as large as the input (1 x 1 output: the
# MobileFaceNets' global depthwise conv), a rectangular kernel and stride.
CASES = [
    (9, 9, 4, 3, 1, ((1, 1), (1, 1))),
    (8, 8, 5, 3, 2, "SAME"),
    (8, 8, 5, 3, 2, ((1, 1), (1, 1))),
    (9, 10, 3, 3, 2, "SAME"),
    (7, 7, 6, 7, 1, "VALID"),
    (10, 9, 4, 1, 2, "VALID"),
    (6, 7, 3, (3, 2), (2, 1), ((2, 0), (0, 1))),
]


def _pair(case, module=DepthwiseConv):
  h, w, c, k, s, pad = case
  ks = (k, k) if isinstance(k, int) else k
  ours = module(ks, s, pad)
  ref = nn.Conv(c, ks, s, padding=pad, feature_group_count=c)
  x = jax.random.normal(jax.random.key(1), (2, h, w, c))
  return ours, ref, x


# The fast form compiles its unrolled sums and VJP: 5-12 s a case on 2 busy cores.
@pytest.mark.parametrize("module", [pytest.param(DepthwiseConv, marks=pytest.mark.slow),
                                    PlainDepthwiseConv], ids=["fast", "plain"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_outputs_and_gradients_equal_grouped_nn_conv(case, module):
  ours, ref, x = _pair(case, module)
  params = ref.init(jax.random.key(0), x)["params"]
  params = {**params, "bias": jnp.arange(params["bias"].size, dtype=jnp.float32) / 7}
  y_ours = jax.jit(ours.apply)({"params": params}, x)
  y_ref = ref.apply({"params": params}, x)
  assert y_ours.shape == y_ref.shape
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)

  # A non-uniform cotangent, through a nonlinearity, so every output position matters.
  w = jax.random.normal(jax.random.key(2), y_ref.shape)

  def loss(model, p, x):
    return jnp.sum(jnp.tanh(model.apply({"params": p}, x)) * w)

  grad = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)
  g_ours, g_ref = grad(ours, params, x), grad(ref, params, x)
  np.testing.assert_allclose(g_ours[1], g_ref[1], rtol=1e-5, atol=1e-5)   # input
  for name in ("kernel", "bias"):
    np.testing.assert_allclose(g_ours[0][name], g_ref[0][name], rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(g_ref[1]).max()) > 0


def test_param_tree_identical_to_grouped_nn_conv():
  assert_same_param_trees(*_pair(CASES[1]))


@pytest.mark.slow
def test_gradient_inside_fori_loop_equals_outside():
  kernel = jax.random.normal(jax.random.key(0), (3, 3, 1, 4))
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
  assert_looped_gradient_steps_equal_stepped(lambda b: depthwise_conv2d(b, kernel, 2, "SAME"), x)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="kh x kw x 1 x C"):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 2)))
  with pytest.raises(ValueError, match="kh x kw x 1 x C"):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 3)))
  with pytest.raises(ValueError, match="padding of at least 0"):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 3)), 1, ((-1, 0), (0, 0)))
  with pytest.raises(ValueError, match="positive strides"):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 3)), 0)
