"""The shared engine of the iterative attacks: one jitted loop that every attack configures.

I-FGSM, PGD, MI-, NI-, VMI-, DI- and TI-FGSM, EOT and their combinations (e.g. DI-TI-MI) are
all ``iterative_attack`` with different options; the modules named after each attack fix the
defaults from its paper and document it. Each step:

  1. gradient g of the per-example loss at x_t (at the Nesterov look-ahead point for NI),
     averaged over ``eot_samples`` random transformations when ``transform`` is given (EOT;
     DI-FGSM is EOT with one sample of ResizePad), smoothed by a Gaussian kernel for TI;
  2. VMI: g + v_t, where v_t is the variance term of the previous step;
  3. momentum (MI): m_{t+1} = decay * m_t + g / mean|g|  (per example);
  4. x_{t+1} = Proj(x_t + direction * step_size * s(m_{t+1})), where s = sign for L-inf
     (or, with ``soft``, the gradient over soft x its mean |.|, clipped to [-1, 1]) and
     s(g) = g / ||g||_2 for L2, direction = +1 untargeted / -1 targeted, and Proj projects onto
     the eps-ball around x and onto [0, 1]; eps and step_size may be per pixel;
  5. after the last step, optionally, rounding to 8-bit levels (``quantize``).

Steps 2-5 are ``update_loop``, the one update engine: ``iterative_attack`` feeds it the
model's (EOT-averaged) input gradient, and whole-photo protection
(``fgsm_jax.protect.attack``) feeds it the gradient of its recognizer ensemble on a face's
window, with a per-pixel budget (0 outside the face), a ``scope`` for the means (the
window without its compile padding) and 8-bit output.

Randomness: ``key`` is one PRNG key, split into one key per example, or already (N,) keys,
one per example; every draw (random start, transformations, VMI's neighbours) for example i
comes from its own key, so its result does not depend on the rest of the batch (pass
``fold_in(key, index_in_dataset)`` keys to make a whole run independent of batching).

Early stopping: ``done_fn(outputs, labels) -> bool (N,)`` (see ``goals``) is evaluated before
each step; examples that meet it are frozen (neither image nor momentum change), and the loop
ends when every example is done. The loop is a ``lax.while_loop`` then, a ``lax.fori_loop``
without ``done_fn``; either way one jit compiles the whole attack.

Each attack module (``pgd``, ``mifgsm``, ...) is a short function that fills a ``Config`` with
its paper's defaults and calls ``iterative_attack``; every attack has the signature
``attack(apply_fn, params, images, labels, eps, *, key=None, ...)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fgsm_jax.attacks import core, validate
from fgsm_jax.attacks import transforms as transforms_lib
from fgsm_jax.attacks.losses import LossFn, cross_entropy

# done_fn(outputs N x ..., labels) -> bool (N,): the example's goal is met; freeze it.
DoneFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

NORMS = ('linf', 'l2')

# Key streams (fold_in tags), so the draws of different purposes never share a key.
_START, _STEP, _NEIGHBOURS = 0, 1, 2


def example_keys(key: jax.Array, n: int) -> jax.Array:
  """(n,) typed PRNG keys: ``key`` split n ways, or ``key`` itself if it is already (n,) keys.

  Accepts typed keys (``jax.random.key``) and raw uint32 keys (``jax.random.PRNGKey``).
  """
  if key is None:
    raise ValueError('this attack is randomised: pass a PRNG key, e.g. jax.random.key(0)')
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)
  if key.ndim == 0:
    return jax.random.split(key, n)
  if key.shape == (n,):
    return key
  raise ValueError(f'expected one PRNG key or {n} keys (one per example), got key shape '
                   f'{key.shape}')


def fold_keys(keys: jax.Array, *tags) -> jax.Array:
  """Each example's key folded with ``tags`` in turn (ints or traced int scalars)."""
  for tag in tags:
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, tag)
  return keys


def random_start(keys: jax.Array, images: jnp.ndarray, eps: jnp.ndarray,
                 norm: str = 'linf') -> jnp.ndarray:
  """A uniform random point of the eps-ball around each image, clipped to [0, 1].

  L-inf: x + U(-eps, eps) per pixel (Madry et al. 2018). L2: x + a point uniform in the L2
  ball (direction uniform on the sphere, radius eps * U^(1/d), d = H * W * C).
  keys (N,), images N x H x W x C, eps scalar or (N,).
  """
  eps_b = core._per_example(eps, images)
  shape = images.shape[1:]
  if norm == 'linf':
    noise = jax.vmap(lambda k: jax.random.uniform(k, shape, minval=-1.0, maxval=1.0))(keys)
    return core.clip_to_unit(images + eps_b * noise)
  d = float(images[0].size)

  def ball(k):
    k_dir, k_rad = jax.random.split(k)
    direction = jax.random.normal(k_dir, shape)
    direction = direction / jnp.maximum(jnp.linalg.norm(direction), 1e-12)
    return direction * jax.random.uniform(k_rad) ** (1.0 / d)

  return core.project_l2(images + eps_b * jax.vmap(ball)(keys), images, eps)


def mean_abs(g: jnp.ndarray, scope: jnp.ndarray | None = None) -> jnp.ndarray:
  """Each example's mean |g| (N x 1 x 1 x 1), floored at 1e-12; over the pixels where
  ``scope`` (N x H x W x 1, 0/1) is 1 when given (e.g. a window without its padding)."""
  axes = tuple(range(1, g.ndim))
  if scope is None:
    return jnp.maximum(jnp.mean(jnp.abs(g), axis=axes, keepdims=True), 1e-12)
  count = jnp.maximum(jnp.sum(scope, axis=axes, keepdims=True) * g.shape[-1], 1.0)
  return jnp.maximum(jnp.sum(jnp.abs(g) * scope, axis=axes, keepdims=True) / count, 1e-12)


def _freeze(done: jnp.ndarray | None, old: jnp.ndarray, new: jnp.ndarray) -> jnp.ndarray:
  if done is None:
    return new
  return jnp.where(done.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)


@dataclasses.dataclass(frozen=True)
class Config:
  """The static options of ``iterative_attack`` (hashable: one compile per distinct config).

  Attributes:
    steps: number of iterations.
    norm: 'linf' (sign steps) or 'l2' (L2-normalised steps), and the ball projected onto.
    random_init: start from a uniform random point of the ball (PGD).
    decay: momentum decay mu (MI/NI/VMI), or None for no momentum.
    nesterov: NI-FGSM's look-ahead x_t + direction * step_size * decay * m_t (needs decay).
    variance_samples: VMI-FGSM's number of neighbours N (0: off).
    variance_beta: VMI's neighbourhood radius as a multiple of eps (U(-beta eps, beta eps)).
    transform: a random transformation (see ``transforms``) applied before the model when
      computing gradients (DI, EOT); gradients flow through it.
    eot_samples: transformation draws averaged per gradient.
    kernel_size: TI-FGSM's Gaussian kernel size (odd), or None for no smoothing.
    kernel_sigma: its standard deviation in pixels; default (kernel_size - 1) / 6, the
      reference code's kernel spanning +-3 sigma.
    loss_fn: per-example loss ``loss_fn(outputs, labels) -> (N,)``.
    targeted: descend the loss towards ``labels`` instead of ascending it.
    done_fn: optional early stopping predicate ``done_fn(outputs, labels) -> bool (N,)``.
    per_example: passed to ``core.input_gradient``.
    soft: 0 (default): sign steps. s > 0 (L-inf only): each pixel steps by its (momentum)
      gradient over s times the mean |gradient|, clipped to [-1, 1], so the change gathers
      where the gradient is large instead of filling the budget (used by protection).
    quantize: round the result to 8-bit levels (k / 255) after the last step, as a saved
      PNG would be.
  """
  steps: int = 10
  norm: str = 'linf'
  random_init: bool = False
  decay: float | None = None
  nesterov: bool = False
  variance_samples: int = 0
  variance_beta: float = 1.5
  transform: transforms_lib.Transform | None = None
  eot_samples: int = 1
  kernel_size: int | None = None
  kernel_sigma: float | None = None
  loss_fn: LossFn = cross_entropy
  targeted: bool = False
  done_fn: DoneFn | None = None
  per_example: bool = True
  soft: float = 0.0
  quantize: bool = False


GradientFn = Callable[[jnp.ndarray, jax.Array | None], jnp.ndarray]


def check_update_config(config: Config) -> None:
  """Raises ValueError (one line) for update options ``update_loop`` cannot run: an unknown
  norm, soft steps off L-inf, a negative momentum decay or soft scale, NI without momentum,
  an even or non-positive TI kernel size, a non-positive kernel sigma."""
  c = config
  if c.norm not in NORMS:
    raise ValueError(f'norm must be one of {NORMS}, got {c.norm!r}')
  if not c.soft >= 0:
    raise ValueError(f'soft must be >= 0 (0: sign steps), got {c.soft}')
  if c.soft and c.norm != 'linf':
    raise ValueError(f'soft steps are L-inf steps; got norm {c.norm!r}')
  if c.decay is not None and not c.decay >= 0:
    raise ValueError(f'decay must be None (no momentum) or >= 0, got {c.decay}')
  if c.nesterov and c.decay is None:
    raise ValueError('nesterov=True needs a momentum decay (decay=1.0 in NI-FGSM)')
  if c.kernel_size is not None and (c.kernel_size < 1 or c.kernel_size % 2 == 0):
    raise ValueError(f'kernel_size must be None (no TI smoothing) or odd >= 1, got '
                     f'{c.kernel_size}')
  if isinstance(c.kernel_sigma, (int, float)) and not c.kernel_sigma > 0:
    raise ValueError(f'kernel_sigma must be None ((kernel_size - 1) / 6) or > 0, got '
                     f'{c.kernel_sigma}')


def update_loop(gradient_fn: GradientFn, images: jnp.ndarray, eps: float | jnp.ndarray,
                step_size: float | jnp.ndarray, steps: int | jnp.ndarray, *, config: Config,
                keys: jax.Array | None = None, start: jnp.ndarray | None = None,
                scope: jnp.ndarray | None = None,
                is_done: Callable[[jnp.ndarray], jnp.ndarray] | None = None) -> jnp.ndarray:
  """The update engine: ``steps`` iterations of steps 2-5 of the module docstring.

  Args:
    gradient_fn: ``gradient_fn(x, keys) -> g``, the input gradient at x (N x H x W x C) with
      (N,) per-step keys (None when ``keys`` is None); TI smoothing is applied here.
    images: the clean images N x H x W x C float32 in [0, 1] (the ball's centre).
    eps: L-inf / L2 radius: scalar, (N,) or (L-inf) per pixel (N x H x W x 1 or x C).
    step_size: per-step size, shaped like eps.
    steps: number of iterations (a Python int or a traced int32: no recompile).
    config: the update options of `Config` (norm, decay, nesterov, variance_*, kernel_*,
      targeted, soft, quantize, random_init).
    keys: (N,) typed PRNG keys (random start, VMI's neighbours, the gradient's draws).
    start: the first iterate (projected onto the ball); default the images, or a random
      point of the ball with ``config.random_init``.
    scope: N x H x W x 1 (0/1): the pixels the momentum's and soft steps' means are taken
      over (default: all).
    is_done: ``is_done(x) -> bool (N,)``: examples that meet it are frozen (early stopping).

  Returns:
    N x H x W x C float32, within eps of ``images`` and in [0, 1] (8-bit levels with
    ``config.quantize``).
  """
  c = config
  check_update_config(c)
  decay, nesterov, variance_samples = c.decay, c.nesterov, c.variance_samples
  eps_b = core._per_example(eps, images)
  alpha = core._per_example(step_size, images)
  direction = core.step_direction(c.targeted)
  project = core.project_linf if c.norm == 'linf' else core.project_l2
  kernel = None
  if c.kernel_size is not None:
    sigma = (c.kernel_size - 1) / 6 if c.kernel_sigma is None else c.kernel_sigma
    kernel = transforms_lib.gaussian_kernel(c.kernel_size, sigma)

  def gradient(x, grad_keys):
    g = gradient_fn(x, grad_keys)
    return g if kernel is None else transforms_lib.gaussian_smooth(g, kernel, 'zero')

  def neighbourhood_gradient(x, t):
    """VMI: mean gradient over x + U(-beta eps, beta eps) neighbours (not clipped, as in
    the paper), each with its own transformation draws."""
    radius = c.variance_beta * eps_b

    def one(s, total):
      k = fold_keys(keys, _NEIGHBOURS, t, s)
      k_noise, k_grad = jax.vmap(jax.random.split, out_axes=1)(k)
      noise = jax.vmap(lambda kk: jax.random.uniform(
          kk, x.shape[1:], minval=-1.0, maxval=1.0))(k_noise)
      return total + gradient(x + radius * noise, k_grad)
    return jax.lax.fori_loop(0, variance_samples, one, jnp.zeros_like(x)) / variance_samples

  def step(t, adv, momentum, variance, done):
    grad_keys = fold_keys(keys, _STEP, t) if keys is not None else None
    point = adv
    if nesterov:
      point = adv + direction * alpha * decay * momentum
    g = gradient(point, grad_keys)
    new_variance = variance
    if variance_samples > 0:
      # v_{t+1} = E[grad at neighbours of x_t] - grad(x_t); g uses v_t.
      new_variance = neighbourhood_gradient(adv, t) - g
      g = g + variance
    new_momentum = momentum
    if decay is not None:
      new_momentum = decay * momentum + g / mean_abs(g, scope)
      g = new_momentum
    if c.norm == 'l2':
      update = core.l2_normalize(g)
    elif c.soft > 0:
      update = jnp.clip(g / (c.soft * mean_abs(g, scope)), -1.0, 1.0)
    else:
      update = jnp.sign(g)
    new_adv = project(adv + direction * alpha * update, images, eps)
    return (_freeze(done, adv, new_adv), _freeze(done, momentum, new_momentum),
            _freeze(done, variance, new_variance))

  if start is None:
    start = (random_start(fold_keys(keys, _START), images, eps, c.norm) if c.random_init
             else images)
  else:
    start = project(start, images, eps)
  zeros = jnp.zeros_like(images)
  if is_done is None:
    def body(t, carry):
      return step(t, *carry, None)
    adv, _, _ = jax.lax.fori_loop(0, steps, body, (start, zeros, zeros))
  else:
    def cond(carry):
      t, _, _, _, done = carry
      return (t < steps) & ~jnp.all(done)

    def while_body(carry):
      t, adv, momentum, variance, done = carry
      adv, momentum, variance = step(t, adv, momentum, variance, done)
      # Once done, always done (a frozen example keeps its image, hence its verdict).
      return t + 1, adv, momentum, variance, done | is_done(adv)

    init = (jnp.asarray(0, jnp.int32), start, zeros, zeros, is_done(start))
    adv = jax.lax.while_loop(cond, while_body, init)[1]
  if c.quantize:
    adv = jnp.round(adv * 255.0) / 255.0
  return adv


@validate.jit_attack(static_argnames=('apply_fn', 'config'))
def iterative_attack(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray,
                     labels: jnp.ndarray, eps: float | jnp.ndarray, *,
                     key: jax.Array | None = None,
                     step_size: float | jnp.ndarray | None = None,
                     config: Config = Config()) -> jnp.ndarray:
  """The configurable iterative gradient attack (see the module docstring for the update).

  Args:
    apply_fn: ``apply_fn(params, images) -> outputs``; static (hashable).
    params: the model's parameters (pytree).
    images: N x H x W x C float in [0, 1].
    labels: (N,) true labels (untargeted) or targets (targeted); N x D descriptors for
      embedding losses.
    eps: budget, scalar, (N,) or (L-inf) per pixel N x H x W x 1, image units (e.g. 8/255);
      L-inf or L2 radius per ``norm``. Traced: a new eps does not recompile.
    key: PRNG key, or (N,) keys; needed when ``random_init``, ``transform`` or
      ``variance_samples`` is used.
    step_size: per-step size, shaped like eps; default eps / steps. Traced.
    config: the static options (``Config``).

  Returns:
    Adversarial images N x H x W x C, float32, within eps of ``images`` and in [0, 1].
  """
  c = config
  steps, transform, loss_fn, per_example = c.steps, c.transform, c.loss_fn, c.per_example
  core.check_images(images)
  check_update_config(c)
  if steps < 0 or c.eot_samples < 1 or c.variance_samples < 0:
    raise ValueError(f'expected steps >= 0, eot_samples >= 1, variance_samples >= 0, got '
                     f'{steps}, {c.eot_samples}, {c.variance_samples}')
  images = images.astype(jnp.float32)
  randomised = c.random_init or transform is not None or c.variance_samples > 0
  keys = example_keys(key, images.shape[0]) if randomised else None
  if step_size is None:
    step_size = jnp.asarray(eps, jnp.float32) / max(steps, 1)

  def gradient(x, grad_keys):
    """Input gradient at x, EOT-averaged over the transformation's draws."""
    if transform is None:
      return core.input_gradient(apply_fn, params, x, labels, loss_fn, per_example=per_example)

    def one_draw(s, total):
      draw_keys = fold_keys(grad_keys, s)
      y, pullback = jax.vjp(lambda z: transforms_lib.apply_batch(transform, draw_keys, z), x)
      gy = core.input_gradient(apply_fn, params, y, labels, loss_fn, per_example=per_example)
      return total + pullback(gy)[0]
    return jax.lax.fori_loop(0, c.eot_samples, one_draw, jnp.zeros_like(x)) / c.eot_samples

  is_done = None
  if c.done_fn is not None:
    def is_done(adv):
      return c.done_fn(apply_fn(params, adv), labels).astype(bool)
  return update_loop(gradient, images, eps, step_size, steps, config=c, keys=keys,
                     is_done=is_done)


def run(apply_fn: core.ApplyFnLike, params: core.Params, images: jnp.ndarray, labels: jnp.ndarray,
        eps: float | jnp.ndarray, *, key: jax.Array | None = None,
        step_size: float | jnp.ndarray | None = None, **options: Any) -> jnp.ndarray:
  """``iterative_attack`` with ``Config(**options)``: what the attack modules call."""
  return iterative_attack(apply_fn, params, images, labels, eps, key=key, step_size=step_size,
                          config=Config(**options))
