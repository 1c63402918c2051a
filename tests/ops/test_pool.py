"""fgsm_jax.ops.pool: max_pool equals nn.max_pool (VALID) in value and gradient, and routes a
tied window's gradient to its first maximum."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.ops import layout
from fgsm_jax.ops.pool import max_pool, max_pool_reference


@pytest.mark.slow
@pytest.mark.parametrize('shape,size,stride', [((2, 9, 9, 3), 3, 2), ((1, 10, 7, 2), 3, 2),
                                               ((2, 8, 8, 4), 2, 2), ((1, 7, 9, 1), 3, 3)])
def test_value_and_gradient_equal_nn_max_pool(shape, size, stride):
  x = jax.random.normal(jax.random.key(0), shape)   # continuous values: no ties
  y, pull = jax.vjp(lambda z: max_pool(z, size, stride), x)
  y_ref, pull_ref = jax.vjp(lambda z: max_pool_reference(z, size, stride), x)
  np.testing.assert_array_equal(y, y_ref)
  g = jax.random.normal(jax.random.key(1), y.shape)
  np.testing.assert_allclose(pull(g)[0], pull_ref(g)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_tied_window_sends_the_gradient_to_its_first_maximum():
  x = jnp.ones((1, 3, 3, 1))
  dx = jax.grad(lambda z: max_pool(z, 3, 2).sum())(x)
  want = np.zeros((3, 3))
  want[0, 0] = 1.0
  np.testing.assert_array_equal(np.asarray(dx)[0, :, :, 0], want)


def test_first_argmax_is_the_first_of_equal_maxima():
  parts = [jnp.array([1.0, 5.0, 2.0]), jnp.array([3.0, 5.0, 2.0]), jnp.array([3.0, 1.0, 2.0])]
  m, idx = layout.first_argmax(parts)
  np.testing.assert_array_equal(m, [3.0, 5.0, 2.0])
  np.testing.assert_array_equal(idx, [1, 0, 0])


@pytest.mark.slow
def test_space_to_depth_round_trips():
  x = jax.random.normal(jax.random.key(0), (2, 6, 4, 3))
  s = layout.space_to_depth(x)
  assert s.shape == (2, 3, 2, 12)
  np.testing.assert_array_equal(s[0, 1, 1, 3:6], x[0, 2, 3])   # block (1, 1), row 0, col 1
  np.testing.assert_array_equal(layout.depth_to_space(s, 3), x)
