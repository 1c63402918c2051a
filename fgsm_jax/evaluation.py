"""Evaluating classifiers under attack: accuracy on clean and adversarial test splits.

The experiment scripts compose these: `fgsm_curve` (experiments/fgsm_eval.py) and
`attack_sweep` (experiments/attack_sweep.py) over a split loaded with
`fgsm_jax.data.load_split` from the folders `recorded_data_dirs` finds beside a checkpoint.
Batches come from the one batcher, `fgsm_jax.data.pipeline.batches` (padded, masked).
"""
from __future__ import annotations

import functools
import os
import pathlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import io
from fgsm_jax.io import eps_key
from fgsm_jax.data.pipeline import batches

# attack(images N x H x W x C, labels N) -> adversarial images; a closure over model and eps.
BatchAttack = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
# (apply_fn, params, ...): a trained model, e.g. as train.load_checkpoint returns it.
Model = tuple


@jax.jit
def _correct(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  return jnp.argmax(logits, -1) == labels


def predict(apply_fn, params: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """Predicted class per image (N,), in fixed-size padded batches (one compile)."""
  labels = np.zeros(len(images), np.int32)
  out = []
  for batch in batches(images, labels, batch_size, pad=True):
    logits = apply_fn(params, batch['image'])
    keep = int(batch['mask'].sum())
    out.append(np.asarray(jnp.argmax(logits, -1))[:keep])
  return np.concatenate(out) if out else np.zeros(0, np.int32)


def attack_split(attack: BatchAttack, images: np.ndarray, labels: np.ndarray,
                 batch_size: int = 64) -> np.ndarray:
  """Runs ``attack`` over a whole split in fixed-size padded batches; returns N x H x W x C."""
  out = []
  for batch in batches(images, labels, batch_size, pad=True):
    adv = attack(jnp.asarray(batch['image']), jnp.asarray(batch['label']))
    keep = int(batch['mask'].sum())
    out.append(np.asarray(adv)[:keep])
  return np.concatenate(out) if out else np.zeros_like(images)


def accuracy(apply_fn, params: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 64) -> float:
  """Top-1 accuracy of the classifier on ``images``."""
  if len(images) == 0:
    raise ValueError('accuracy of an empty split is undefined')
  return float(np.mean(predict(apply_fn, params, images, batch_size) == labels))


def recorded_data_dirs(workdir: str | os.PathLike, manual_dir: pathlib.Path | None = None,
                       data_dir: pathlib.Path | None = None
                       ) -> tuple[pathlib.Path | None, pathlib.Path | None, dict]:
  """The photo and TFDS folders of a trained classifier: the given ones, else those
  experiments/train_classifier.py recorded in ``workdir/metrics.json``.

  Returns (manual_dir, data_dir, metrics): ``metrics`` is the whole metrics.json ({} when
  there is none). Raises OSError / ValueError for an unreadable metrics.json.
  """
  path = pathlib.Path(workdir) / 'metrics.json'
  metrics = io.read_json(path) if path.is_file() else {}
  data = metrics.get('data') or {}
  manual = manual_dir or (pathlib.Path(data['manual_dir']) if data.get('manual_dir') else None)
  tfds_dir = data_dir or (pathlib.Path(data['data_dir']) if data.get('data_dir') else None)
  return manual, tfds_dir, metrics


def fgsm_curve(apply_fn, params: Any, images: np.ndarray, labels: np.ndarray,
               eps_255: Sequence[float], *, num_classes: int, targeted: bool = False,
               batch_size: int = 64, on_eps: Callable[[float, float], Any] | None = None
               ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
  """White-box FGSM (Goodfellow et al. 2015) on a split at each eps (0-255 scale).

  Targeted: toward the next identity, (y + 1) mod ``num_classes``. ``on_eps(eps_255,
  accuracy)`` is called as each budget finishes (progress). Returns {eps_255: (adversarial
  images N x H x W x C, predicted classes N)}, in increasing eps.
  """
  from fgsm_jax.attacks import fgsm  # pylint: disable=import-outside-toplevel
  out = {}
  for e in sorted(set(eps_255)):
    def attack(x, y, eps=e / 255.0):
      target = (y + 1) % num_classes if targeted else y
      return fgsm(apply_fn, params, x, target, eps, targeted=targeted)
    adv = attack_split(attack, images, labels, batch_size)
    predictions = predict(apply_fn, params, adv, batch_size)
    if on_eps is not None:
      on_eps(e, float(np.mean(predictions == labels)))
    out[e] = (adv, predictions)
  return out


def figure_examples(labels: np.ndarray, clean_predictions: np.ndarray,
                    adversarial_predictions: np.ndarray, count: int, seed: int) -> np.ndarray:
  """Indices of up to ``count`` faces for a figure of what the attack changes: faces the
  model got right and the attack turned; failing that, any correctly classified (then any)
  face. Drawn without replacement from ``seed``."""
  candidates = np.flatnonzero((clean_predictions == labels) & (adversarial_predictions != labels))
  if len(candidates) < count:
    candidates = np.flatnonzero(clean_predictions == labels)
  if len(candidates) == 0:
    candidates = np.arange(len(labels))
  rng = np.random.default_rng(seed)
  return rng.choice(candidates, size=min(count, len(candidates)), replace=False)


@jax.jit
def _example_keys(key: jax.Array, indices: jnp.ndarray) -> jax.Array:
  # One key per example from its index in the split: results do not depend on batching.
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)


@functools.partial(jax.jit, static_argnums=0)
def _count_correct(apply_fn, params, x, y, mask):
  return jnp.sum((jnp.argmax(apply_fn(params, x), -1) == y) * mask)


def _correct_count(model: Model, x, y, mask) -> float:
  return float(_count_correct(model[0], model[1], x, y, mask))


def attack_sweep(models: dict[str, Model], images: np.ndarray, labels: np.ndarray,
                 attacks: Sequence[str], eps_255: Sequence[float], *, batch_size: int = 64,
                 seed: int = 0, label: str = 'split', log: Callable[[str], None] = print,
                 on_attack: Callable[[dict], None] | None = None) -> dict:
  """Accuracy under each attack of ``fgsm_jax.attacks.ATTACKS`` at each budget.

  Args:
    models: 'white-box' (attacked and scored), and for transfer also 'source' (attacked;
      may be the white-box model itself) and 'target' (scores the source's images).
    eps_255: budgets on the 0-255 scale: L-inf eps/255; for the L2 attacks
      (``ATTACK_NORMS``) an L2 radius of eps/255 * sqrt(H*W*C), the norm of a full-budget
      L-inf sign perturbation.
    seed: randomised attacks draw example i's numbers from fold_in(key(seed), i).
    label: names the split in the first line logged (e.g. 'gt test').
    on_attack: called with the result so far after each attack (to save it).

  Returns:
    {"clean": {"0": acc}, "<attack>": {"<eps>": acc}, ..., "transfer"?: {"clean",
    "source_clean", "<attack>": {...}, "source_white_box": {...}}}.
  """
  from fgsm_jax.attacks import ATTACK_NORMS, ATTACKS  # pylint: disable=import-outside-toplevel
  n = len(images)
  l2_scale = float(np.sqrt(np.prod(images.shape[1:])))
  root = jax.random.key(seed)
  size = min(batch_size, n)

  def padded():
    for b in batches(images, labels, size, pad=True, index=True):
      yield (jnp.asarray(b['image']), jnp.asarray(b['label']), jnp.asarray(b['mask']),
             _example_keys(root, jnp.asarray(b['index'])))

  clean = dict.fromkeys(models, 0.0)
  for x, y, mask, _ in padded():
    for role in clean:
      clean[role] += _correct_count(models[role], x, y, mask)
  result: dict[str, Any] = {'clean': {'0': clean['white-box'] / n}}
  if 'target' in models:
    result['transfer'] = {'clean': {'0': clean['target'] / n},
                          'source_clean': {'0': clean['source'] / n}, 'source_white_box': {}}
  log(f'{label}: {n} images; clean accuracy '
      + ', '.join(f'{role} {clean[role] / n:.4f}' for role in clean))
  white = models['white-box']
  for name in attacks:
    attack = ATTACKS[name]
    result[name] = {}
    for e in eps_255:
      eps = e / 255.0 * (l2_scale if ATTACK_NORMS[name] == 'l2' else 1.0)
      hits = {'white-box': 0.0, 'source': 0.0, 'target': 0.0}
      for x, y, mask, keys in padded():
        adv = attack(white[0], white[1], x, y, eps, key=keys)
        hits['white-box'] += _correct_count(white, adv, y, mask)
        if 'target' in models:
          source = models['source']
          if source is not white:
            adv = attack(source[0], source[1], x, y, eps, key=keys)
          hits['source'] += _correct_count(source, adv, y, mask)
          hits['target'] += _correct_count(models['target'], adv, y, mask)
      result[name][eps_key(e)] = hits['white-box'] / n
      line = f"{name} eps {eps_key(e)}/255: white-box accuracy {hits['white-box'] / n:.4f}"
      if 'transfer' in result:
        result['transfer'].setdefault(name, {})[eps_key(e)] = hits['target'] / n
        result['transfer']['source_white_box'].setdefault(name, {})[eps_key(e)] = (
            hits['source'] / n)
        line += f", transfer to target {hits['target'] / n:.4f}"
      log(line)
    if on_attack is not None:
      on_attack(result)
  return result
