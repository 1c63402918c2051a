"""fgsm_jax.ops.depthwise: DepthwiseConv (fast) and PlainDepthwiseConv equal nn.Conv with
feature_group_count = channels in params, outputs and all gradients."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from fgsm_jax.ops.depthwise import DepthwiseConv, PlainDepthwiseConv, depthwise_conv2d
from tests.ops.conftest import (assert_looped_gradient_steps_equal_stepped,
                                assert_outputs_and_gradients_equal, assert_same_param_trees)

# (H, W, C, k, stride, padding): odd/even sizes, stride 1 and 2, TF SAME (asymmetric for even
# sizes at stride 2), symmetric, VALID, a kernel as large as the input (1 x 1 output: the
# MobileFaceNets' global depthwise conv), a rectangular kernel and stride.
CASES = [
    (9, 9, 4, 3, 1, ((1, 1), (1, 1))),
    (8, 8, 5, 3, 2, 'SAME'),
    (8, 8, 5, 3, 2, ((1, 1), (1, 1))),
    (9, 10, 3, 3, 2, 'SAME'),
    (7, 7, 6, 7, 1, 'VALID'),
    (10, 9, 4, 1, 2, 'VALID'),
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
@pytest.mark.parametrize('module', [pytest.param(DepthwiseConv, marks=pytest.mark.slow),
                                    PlainDepthwiseConv], ids=['fast', 'plain'])
@pytest.mark.parametrize('case', CASES, ids=str)
def test_outputs_and_gradients_equal_grouped_nn_conv(case, module):
  assert_outputs_and_gradients_equal(*_pair(case, module), jit=True)


def test_param_tree_identical_to_grouped_nn_conv():
  assert_same_param_trees(*_pair(CASES[1]))


@pytest.mark.slow
def test_gradient_inside_fori_loop_equals_outside():
  kernel = jax.random.normal(jax.random.key(0), (3, 3, 1, 4))
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
  assert_looped_gradient_steps_equal_stepped(lambda b: depthwise_conv2d(b, kernel, 2, 'SAME'), x)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match='kh x kw x 1 x C'):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 2)))
  with pytest.raises(ValueError, match='kh x kw x 1 x C'):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 3)))
  with pytest.raises(ValueError, match='padding of at least 0'):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 3)), 1, ((-1, 0), (0, 0)))
  with pytest.raises(ValueError, match='positive strides'):
    depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 3)), 0)
