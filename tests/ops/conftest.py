"""Checks shared by the tests of the fast ops against their plain references."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def assert_same_param_trees(ours, ref, x: jax.Array) -> None:
  """Two linen modules initialised with the same key give the same tree, shapes, dtypes and
  values: a fast module is a drop-in for its reference, checkpoints included."""
  p_ours = ours.init(jax.random.key(0), x)["params"]
  p_ref = ref.init(jax.random.key(0), x)["params"]
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
