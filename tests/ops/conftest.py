"""Checks shared by the tests of the fast ops against their plain references."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def assert_same_param_trees(ours, ref, x: jax.Array) -> None:
  """Two linen modules initialised with the same key give the same tree, shapes, dtypes and
  values: a fast module is a drop-in for its reference, checkpoints included."""
  p_ours = ours.init(jax.random.key(0), x)['params']
  p_ref = ref.init(jax.random.key(0), x)['params']
  assert jax.tree.structure(p_ours) == jax.tree.structure(p_ref)
  for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref)):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)   # same initialisers, same keys


def assert_looped_gradient_steps_equal_stepped(f: Callable[[jax.Array], jax.Array],
                                               x: jax.Array, steps: int = 3) -> None:
  """Sign-gradient steps on sum(tanh(f(x))) inside ``lax.fori_loop`` equal the same steps
  jitted one by one: what a custom VJP is for (the attacks' loops) must not depend on
  where it runs."""
  step = lambda a: a - 0.1 * jnp.sign(jax.grad(lambda b: jnp.sum(jnp.tanh(f(b))))(a))
  looped = jax.jit(lambda a: jax.lax.fori_loop(0, steps, lambda i, b: step(b), a))(x)
  stepped = x
  for _ in range(steps):
    stepped = jax.jit(step)(stepped)
  np.testing.assert_allclose(looped, stepped, atol=1e-6)


def assert_outputs_and_gradients_equal(ours, ref, x: jax.Array, jit: bool = False) -> None:
  """A fast conv module (``ours``) against its reference with the reference's parameters
  (bias made nonzero, so the forward's bias term and its gradient are both exercised):
  outputs, and the input, kernel and bias gradients of a loss through a nonlinearity with a
  non-uniform cotangent (so every output position matters). ``jit``: ours runs jitted."""
  params = ref.init(jax.random.key(0), x)['params']
  params = {**params, 'bias': jnp.arange(params['bias'].size, dtype=jnp.float32) / 7}
  y_ours = (jax.jit(ours.apply) if jit else ours.apply)({'params': params}, x)
  y_ref = ref.apply({'params': params}, x)
  assert y_ours.shape == y_ref.shape
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
  w = jax.random.normal(jax.random.key(2), y_ref.shape)

  def loss(model, p, x):
    return jnp.sum(jnp.tanh(model.apply({'params': p}, x)) * w)

  grad = jax.grad(loss, argnums=(1, 2))
  g_ours = (jax.jit(grad, static_argnums=0) if jit else grad)(ours, params, x)
  g_ref = grad(ref, params, x)
  np.testing.assert_allclose(g_ours[1], g_ref[1], rtol=1e-5, atol=1e-5)   # input
  for name in ('kernel', 'bias'):
    np.testing.assert_allclose(g_ours[0][name], g_ref[0][name], rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(g_ref[1]).max()) > 0
