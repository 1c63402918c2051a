"""Attacking several models at once: an ensemble as one ``apply_fn`` (and loss).

Dong et al. (2018, arXiv:1710.06081, Sec. 3.2) fuse an ensemble's logits, l(x) = sum_k w_k
l_k(x), and attack the fused model; ``ensemble(..., fuse='logits')`` builds that. For models
whose outputs cannot be added (different classes, or face embeddings of different sizes),
``fuse='loss'`` sums the members' losses instead, J(x) = sum_k w_k J_k(f_k(x), y_k).

Both are pure: ``apply_fn`` is a hashable frozen dataclass over the members' apply functions
and fixed weights (static jit argument; new weights compile anew), and ``params`` is the tuple
of the members' parameters (traced). So any attack here takes an ensemble unchanged:

  >>> apply_fn, params, loss_fn = ensemble(((cnn_apply, cnn_params), (res_apply, res_params)))
  >>> adv = mifgsm(apply_fn, params, images, labels, 8 / 255, loss_fn=loss_fn)

With fuse='loss' the outputs are a tuple, so an early-stopping ``done_fn`` must accept one
(the predicates in ``goals`` take a single output array; with fuse='logits' they apply to the
fused logits).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax.numpy as jnp

from fgsm_jax.attacks import core
from fgsm_jax.attacks.losses import LossFn, cross_entropy


def _check_weights(weights: tuple, k: int) -> None:
  if len(weights) != k:
    raise ValueError(f'expected {k} ensemble weights, got {len(weights)}')


@dataclasses.dataclass(frozen=True)
class LogitEnsemble:
  """``apply_fn(params_tuple, images) -> sum_k weights[k] * apply_fns[k](params[k], images)``.

  All members must output the same shape (e.g. N x classes, same class order).
  """
  apply_fns: tuple
  weights: tuple

  def __call__(self, params: Sequence[Any], images: jnp.ndarray) -> jnp.ndarray:
    _check_weights(self.weights, len(self.apply_fns))
    outputs = [f(p, images) for f, p in zip(self.apply_fns, params)]
    shapes = {o.shape for o in outputs}
    if len(shapes) != 1:
      raise ValueError(f'logit fusion needs equal output shapes, got {sorted(shapes)}; use '
                       "fuse='loss'")
    return sum(w * o.astype(jnp.float32) for w, o in zip(self.weights, outputs))


@dataclasses.dataclass(frozen=True)
class OutputsTuple:
  """``apply_fn(params_tuple, images) -> (outputs_0, outputs_1, ...)``, one per member."""
  apply_fns: tuple

  def __call__(self, params: Sequence[Any], images: jnp.ndarray) -> tuple:
    return tuple(f(p, images) for f, p in zip(self.apply_fns, params))


@dataclasses.dataclass(frozen=True)
class EnsembleLoss:
  """Weighted sum of the members' per-example losses over ``OutputsTuple`` outputs -> (N,).

  ``targets``: one (N,) label array shared by all members, or the members' N x D_k targets
  (e.g. reference descriptors) concatenated along the last axis, N x sum_k D_k; they are
  split by the members' output widths.
  """
  loss_fns: tuple
  weights: tuple

  def __call__(self, outputs: tuple, targets: jnp.ndarray) -> jnp.ndarray:
    _check_weights(self.weights, len(self.loss_fns))
    if len(outputs) != len(self.loss_fns):
      raise ValueError(f'expected {len(self.loss_fns)} member outputs, got {len(outputs)}')
    if targets.ndim == 1:
      parts = [targets] * len(outputs)
    else:
      widths = [o.shape[-1] for o in outputs]
      if targets.shape[-1] != sum(widths):
        raise ValueError(f"expected targets N x {sum(widths)} (members' widths {widths} "
                         f'concatenated), got {targets.shape}')
      bounds = [sum(widths[:i]) for i in range(len(widths) + 1)]
      parts = [targets[..., a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return sum(w * fn(o, t) for w, fn, o, t in zip(self.weights, self.loss_fns, outputs, parts))


def ensemble(members: Sequence[tuple[core.ApplyFnLike, Any]],
             weights: Sequence[float] | None = None, *, fuse: str = 'logits',
             loss_fn: LossFn | Sequence[LossFn] = cross_entropy
             ) -> tuple[Any, tuple, LossFn]:
  """Builds ``(apply_fn, params, loss_fn)`` attacking all ``members`` together.

  Args:
    members: (apply_fn, params) pairs, at least one.
    weights: one float per member, default equal weights summing to 1.
    fuse: 'logits' (default; weighted sum of outputs, then ``loss_fn``) or 'loss' (weighted
      sum of each member's loss; ``loss_fn`` may then be one per member).
    loss_fn: the per-example loss (or, with fuse='loss', a sequence of them).

  Returns:
    apply_fn (hashable, static), params (tuple of the members' params), loss_fn (static).
  """
  members = tuple(members)
  if not members:
    raise ValueError('an ensemble needs at least one (apply_fn, params) member')
  k = len(members)
  weights = tuple(float(w) for w in weights) if weights is not None else (1.0 / k,) * k
  _check_weights(weights, k)
  apply_fns = tuple(m[0] for m in members)
  params = tuple(m[1] for m in members)
  if fuse == 'logits':
    if not callable(loss_fn):
      raise ValueError("fuse='logits' takes a single loss_fn")
    return LogitEnsemble(apply_fns, weights), params, loss_fn
  if fuse == 'loss':
    loss_fns = tuple(loss_fn) if not callable(loss_fn) else (loss_fn,) * k
    if len(loss_fns) != k:
      raise ValueError(f'expected {k} loss functions, got {len(loss_fns)}')
    return OutputsTuple(apply_fns), params, EnsembleLoss(loss_fns, weights)
  raise ValueError(f"fuse must be 'logits' or 'loss', got {fuse!r}")
