"""fgsm_jax.ops.conv: Conv (fast) and PlainConv equal nn.Conv in params, outputs and all
gradients."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.ops.conv import Conv, PlainConv, conv2d
from tests.ops.conftest import (assert_looped_gradient_steps_equal_stepped,
                                assert_outputs_and_gradients_equal, assert_same_param_trees)

# (H, W, C, O, k, stride, padding): odd/even sizes, stride 1 and 2, padding 0 / k // 2,
# SAME (asymmetric for even sizes at stride 2) and VALID.
CASES = [
    (9, 9, 3, 4, 3, 1, ((1, 1), (1, 1))),
    (8, 7, 2, 5, 3, 2, ((0, 0), (0, 0))),
    (9, 10, 3, 4, 3, 2, ((1, 1), (1, 1))),
    (12, 11, 3, 4, 7, 2, ((3, 3), (3, 3))),
    (11, 12, 4, 3, 7, 2, ((0, 0), (0, 0))),
    (10, 10, 3, 6, 3, 2, 'SAME'),
    (16, 15, 3, 8, 7, 2, 'SAME'),
    (9, 9, 1, 4, 4, 2, ((1, 2), (0, 1))),
    (9, 8, 5, 4, 3, 2, ((0, 0), (1, 1))),
    (10, 9, 4, 4, 1, 2, 'VALID'),
    (7, 8, 2, 3, 2, 1, ((0, 1), (1, 0))),
    # 1 x 1 outputs (one dot): dlib's last unit (4 x 4 / 2 and a 1 x 1 input padded 1),
    # a crop, a kernel wider than the input.
    (4, 4, 5, 6, 3, 2, ((0, 0), (0, 0))),
    (1, 1, 5, 6, 3, 1, ((1, 1), (1, 1))),
    (5, 4, 3, 2, 3, 2, ((-1, 0), (0, 0))),
    (2, 3, 3, 2, 5, 1, ((2, 1), (1, 1))),
]


def _pair(case, use_bias=True, conv=Conv):
  h, w, c, o, k, s, pad = case
  ours = conv(o, (k, k), (s, s), padding=pad, use_bias=use_bias)
  ref = nn.Conv(o, (k, k), (s, s), padding=pad, use_bias=use_bias)
  x = jax.random.normal(jax.random.key(1), (2, h, w, c))
  return ours, ref, x


def _with_forms(cases, quick_case):
  """(case, conv) for both forms. Each shape compiles its own forward and gradients against
  nn.Conv's (seconds on a 2-core CPU): only ``quick_case`` is in the quick loop."""
  return [pytest.param(case, conv, id=f'{case}-{name}',
                       marks=() if case == quick_case else pytest.mark.slow)
          for case in cases for conv, name in ((Conv, 'fast'), (PlainConv, 'plain'))]


@pytest.mark.parametrize('case, conv', _with_forms(CASES, quick_case=CASES[-3]))
def test_outputs_and_gradients_equal_nn_conv(case, conv):
  assert_outputs_and_gradients_equal(*_pair(case, conv=conv))


@pytest.mark.parametrize('conv', [Conv, PlainConv], ids=['fast', 'plain'])
@pytest.mark.parametrize('use_bias', [True, False])
def test_param_tree_identical_to_nn_conv(use_bias, conv):
  assert_same_param_trees(*_pair(CASES[3], use_bias, conv))


@pytest.mark.slow
def test_input_gradient_inside_fori_loop_equals_outside():
  # The loop is what the custom VJP is for; its result must not depend on where it runs.
  kernel = jax.random.normal(jax.random.key(0), (3, 3, 3, 8))
  x = jax.random.normal(jax.random.key(1), (2, 11, 11, 3))
  assert_looped_gradient_steps_equal_stepped(
      lambda b: conv2d(b, kernel, 2, ((1, 1), (1, 1))), x)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match='N x H x W x C'):
    conv2d(jnp.zeros((4, 4, 3)), jnp.zeros((3, 3, 3, 2)))
  with pytest.raises(ValueError, match='kh x kw x C x O'):
    conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 2, 2)))
  with pytest.raises(ValueError, match='padding'):
    conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 2)), 1, 'FULL')


@pytest.mark.parametrize('case, conv', _with_forms([CASES[0], CASES[2], CASES[3], CASES[-4]],
                                                  quick_case=None))
def test_scale_folded_equals_scaling_the_output(case, conv):
  # Conv(x, scale, shift) = Conv(x) * scale + shift, with value and all gradients equal.
  ours, _, x = _pair(case, conv=conv)
  params = ours.init(jax.random.key(0), x)['params']
  o = params['bias'].size
  params = {**params, 'bias': jnp.arange(o, dtype=jnp.float32) / 7}
  scale = jnp.linspace(-1.5, 2.0, o)
  shift = jnp.linspace(0.5, -0.5, o)
  w = jax.random.normal(jax.random.key(2), ours.apply({'params': params}, x).shape)

  def loss(p, x, s, folded):
    y = (ours.apply({'params': p}, x, s, shift) if folded
         else ours.apply({'params': p}, x) * s + shift)
    return jnp.sum(jnp.tanh(y) * w)

  np.testing.assert_allclose(loss(params, x, scale, True), loss(params, x, scale, False),
                             rtol=1e-5)
  g_fold = jax.grad(loss, argnums=(0, 1, 2))(params, x, scale, True)
  g_ref = jax.grad(loss, argnums=(0, 1, 2))(params, x, scale, False)
  for a, b in zip(jax.tree.leaves(g_fold), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
