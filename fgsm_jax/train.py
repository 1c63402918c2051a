"""Training a face classifier: create_train_state, a jitted train_step, eval_step, checkpoints.

Everything a step uses comes in as an argument (state, batch); randomness comes from PRNG keys
the caller splits and passes. Configs are plain dataclasses, saved beside each checkpoint.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from fgsm_jax import io
from fgsm_jax.data.pipeline import batches
from fgsm_jax.models import ApplyFn, build_classifier


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train a classifier. The defaults are the original notebook's."""
  dataset: str = 'gt'
  model: str = 'cnn'            # a name in fgsm_jax.models.CLASSIFIERS
  num_classes: int = 50
  image_size: int = 160
  learning_rate: float = 1e-3   # Adam
  cosine_decay: bool = False    # decay the learning rate to 0 over training (else constant)
  steps_per_epoch: int = 0      # needed by cosine_decay; train() fills it in
  epochs: int = 5
  batch_size: int = 8
  seed: int = 0
  # Random augmentation in train_step (0 / False: none, as the original notebook).
  flip: bool = False            # mirror left-right with probability 1/2
  max_shift: int = 0            # translate by up to this many pixels (edge-padded)
  brightness: float = 0.0       # scale intensities by 1 + U(-b, b)


def build_model(config: TrainConfig) -> nn.Module:
  return build_classifier(config.model, config.num_classes)


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the augmentation key and settings (static, from the config)."""
  key: jax.Array = None
  augment: tuple = flax.struct.field(pytree_node=False, default=(False, 0, 0.0))


def create_train_state(key: jax.Array, config: TrainConfig) -> TrainState:
  """Initialises the model's parameters and an Adam optimizer; ``key`` seeds both the
  initialisation and the per-step augmentation (a separate stream, split here)."""
  init_key, augment_key = jax.random.split(key)
  model = build_model(config)
  dummy = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  params = model.init(init_key, dummy)['params']
  learning_rate = config.learning_rate
  if config.cosine_decay:
    if config.steps_per_epoch <= 0:
      raise ValueError('cosine_decay needs steps_per_epoch > 0 in the config')
    learning_rate = optax.cosine_decay_schedule(config.learning_rate,
                                                config.epochs * config.steps_per_epoch)
  return TrainState.create(apply_fn=ApplyFn(model), params=params,
                           tx=optax.adam(learning_rate), key=augment_key,
                           augment=(config.flip, config.max_shift, config.brightness))


def augment_images(key: jax.Array, images: jnp.ndarray, flip: bool, max_shift: int,
                   brightness: float) -> jnp.ndarray:
  """Random flip, shift (edge-padded) and brightness per image; N x H x W x C in [0, 1]."""
  n, h, w, _ = images.shape
  k_flip, k_dy, k_dx, k_b = jax.random.split(key, 4)
  if flip:
    mirror = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
    images = jnp.where(mirror, images[:, :, ::-1], images)
  if max_shift:
    padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), mode='edge')
    dy = jax.random.randint(k_dy, (n,), 0, 2 * max_shift + 1)
    dx = jax.random.randint(k_dx, (n,), 0, 2 * max_shift + 1)
    images = jax.vmap(lambda im, y, x: jax.lax.dynamic_slice(im, (y, x, 0), (h, w, im.shape[-1]))
                      )(padded, dy, dx)
  if brightness:
    scale = 1.0 + jax.random.uniform(k_b, (n, 1, 1, 1), minval=-brightness, maxval=brightness)
    images = jnp.clip(images * scale, 0.0, 1.0)
  return images


def _weighted_metrics(logits: jnp.ndarray, labels: jnp.ndarray,
                      weights: jnp.ndarray) -> dict[str, jnp.ndarray]:
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  count = jnp.maximum(jnp.sum(weights), 1.0)
  return {'loss': jnp.sum(losses * weights) / count,
          'accuracy': jnp.sum(correct * weights) / count,
          'count': jnp.sum(weights)}


def _weights(batch: dict[str, jnp.ndarray]) -> jnp.ndarray:
  # A padded last batch carries 'mask' (1 real, 0 padding); full batches may omit it.
  return batch.get('mask', jnp.ones(batch['label'].shape, jnp.float32)).astype(jnp.float32)


@functools.partial(jax.jit, donate_argnums=0)
def train_step(state: TrainState, batch: dict[str, jnp.ndarray]
               ) -> tuple[TrainState, dict[str, jnp.ndarray]]:
  """One Adam step on a batch {'image': N x H x W x 3 in [0,1], 'label': N, 'mask'?: N}.

  Augmentation (if the config asked for it) draws from ``fold_in(state.key, state.step)``, so
  the step stays a pure function of (state, batch).
  """
  weights = _weights(batch)
  images = batch['image']
  if any(state.augment):
    images = augment_images(jax.random.fold_in(state.key, state.step), images, *state.augment)

  def loss_fn(params):
    logits = state.apply_fn(params, images)
    metrics = _weighted_metrics(logits, batch['label'], weights)
    return metrics['loss'], metrics

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), metrics


@functools.partial(jax.jit, static_argnames='apply_fn')
def eval_step(apply_fn: ApplyFn, params: Any, batch: dict[str, jnp.ndarray]
              ) -> dict[str, jnp.ndarray]:
  """Loss, accuracy and example count on a (possibly padded) batch."""
  return _weighted_metrics(apply_fn(params, batch['image']), batch['label'], _weights(batch))


def evaluate(apply_fn: ApplyFn, params: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64) -> dict[str, float]:
  """Mean loss and accuracy over a whole split."""
  totals = {'loss': 0.0, 'accuracy': 0.0, 'count': 0.0}
  for batch in batches(images, labels, batch_size, pad=True):
    m = jax.device_get(eval_step(apply_fn, params, batch))
    for k in ('loss', 'accuracy'):
      totals[k] += float(m[k]) * float(m['count'])
    totals['count'] += float(m['count'])
  count = max(totals['count'], 1.0)
  return {'loss': totals['loss'] / count, 'accuracy': totals['accuracy'] / count,
          'count': int(totals['count'])}


def train(config: TrainConfig, train_images: np.ndarray, train_labels: np.ndarray, *,
          log: Callable[[str], None] = print) -> tuple[TrainState, list[dict[str, float]]]:
  """Trains for ``config.epochs`` from ``config.seed``; returns the state and per-epoch metrics.

  The seed fixes both the initialisation (a JAX key) and the shuffling (a NumPy generator
  seeded from the same number), so a rerun gives the same parameters.
  """
  steps_per_epoch = -(-len(train_images) // config.batch_size)
  if config.steps_per_epoch != steps_per_epoch:
    config = dataclasses.replace(config, steps_per_epoch=steps_per_epoch)
  init_key = jax.random.key(config.seed)
  state = create_train_state(init_key, config)
  rng = np.random.default_rng(config.seed)
  history = []
  # The per-epoch accuracy is over the batches as trained on (augmented, if asked, and
  # with the weights still moving), not the clean training set after training.
  augmented = config.flip or config.max_shift or config.brightness
  seen = 'augmented' if augmented else 'shuffled'
  for epoch in range(1, config.epochs + 1):
    sums = {'loss': 0.0, 'accuracy': 0.0, 'count': 0.0}
    for batch in batches(train_images, train_labels, config.batch_size, rng=rng, pad=True):
      state, m = train_step(state, batch)
      m = jax.device_get(m)
      for k in ('loss', 'accuracy'):
        sums[k] += float(m[k]) * float(m['count'])
      sums['count'] += float(m['count'])
    record = {'epoch': epoch, 'loss': sums['loss'] / sums['count'],
              'accuracy': sums['accuracy'] / sums['count']}
    history.append(record)
    log(f"epoch {epoch}: loss {record['loss']:.4f}, accuracy on the {seen} training "
        f"batches while learning {record['accuracy']:.4f}")
  return state, history


# --- checkpoints -------------------------------------------------------------------------

def save_checkpoint(workdir: str | pathlib.Path, params: Any, config: TrainConfig,
                    metrics: dict[str, Any] | None = None) -> pathlib.Path:
  """Saves params (orbax, written atomically by orbax) and ``config.json`` beside them."""
  import orbax.checkpoint as ocp
  workdir = pathlib.Path(workdir).resolve()
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(workdir / 'checkpoint', jax.device_get(params), force=True)
  checkpointer.wait_until_finished()
  io.write_json(workdir / 'config.json',
                {'config': dataclasses.asdict(config), 'metrics': metrics or {}})
  return workdir / 'checkpoint'


class CheckpointError(ValueError):
  """A checkpoint that cannot be read, or that does not fit the model its config names."""


def _one_line(e: BaseException) -> str:
  text = ' '.join(str(e).split())
  return f'{type(e).__name__}: {text[:200]}' if text else type(e).__name__


def load_checkpoint(workdir: str | pathlib.Path) -> tuple[ApplyFn, Any, TrainConfig]:
  """Restores (apply_fn, params, config) saved by ``save_checkpoint``.

  Raises:
    FileNotFoundError: no ``config.json`` in ``workdir``.
    CheckpointError (a ValueError): an unreadable config or parameter files, or parameters
      whose names or shapes are not those of the model the config describes; the message is
      one line naming the path.
  """
  import orbax.checkpoint as ocp
  workdir = pathlib.Path(workdir).resolve()
  meta_path = workdir / 'config.json'
  if not meta_path.is_file():
    raise FileNotFoundError(f'{meta_path}: no checkpoint config here (train a model first)')
  try:
    config = TrainConfig(**io.read_json(meta_path)['config'])
    model = build_model(config)
  except Exception as e:   # bad JSON, missing or unknown keys, unknown model
    raise CheckpointError(f'{meta_path}: not a usable checkpoint config ({_one_line(e)})'
                          ) from None
  target = jax.eval_shape(
      lambda: model.init(jax.random.key(0),
                         jnp.zeros((1, config.image_size, config.image_size, 3)))['params'])
  path = workdir / 'checkpoint'
  try:
    params = ocp.StandardCheckpointer().restore(path, target)
  except Exception as e:   # missing, truncated or overwritten files; orbax's own checks
    raise CheckpointError(f'{path}: cannot read the checkpoint ({_one_line(e)})') from None
  # Orbax may hand back what is stored whatever the target says: compare it with the model.
  want = {jax.tree_util.keystr(k): v.shape
          for k, v in jax.tree_util.tree_leaves_with_path(target)}
  got = {jax.tree_util.keystr(k): np.shape(v)
         for k, v in jax.tree_util.tree_leaves_with_path(params)}
  if want != got:
    diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    first = diff[0]
    raise CheckpointError(
        f'{path}: parameters do not fit the model in {meta_path.name} ({len(diff)} differ; '
        f"{first}: stored {got.get(first, 'nothing')}, model expects "
        f"{want.get(first, 'nothing')})")
  return ApplyFn(model), params, config
