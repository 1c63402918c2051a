"""fgsm_jax.evaluation on a tiny linear classifier: FGSM curves, attack sweeps (white-box and
transfer), the figure's examples, the recorded data folders."""
from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import evaluation

H, W, C, K, N = 6, 6, 3, 4, 6


@dataclasses.dataclass(frozen=True)
class Linear:   # hashable, as models.ApplyFn is: a static jit argument
  def __call__(self, params, images):
    return images.reshape(images.shape[0], -1) @ params['w'] + params['b']


def _model_and_split(seed=0):
  rng = np.random.default_rng(seed)
  params = {'w': jnp.asarray(rng.normal(0, 0.5, (H * W * C, K)), jnp.float32),
            'b': jnp.zeros((K,), jnp.float32)}
  images = rng.random((N, H, W, C)).astype(np.float32)
  labels = np.asarray(evaluation.predict(Linear(), params, images))   # clean accuracy 1
  return params, images, labels


def test_fgsm_curve_starts_clean_stays_in_budget_and_reports_each_eps_in_order():
  params, images, labels = _model_and_split()
  seen = []
  curve = evaluation.fgsm_curve(Linear(), params, images, labels, [16, 0, 16, 64],
                                num_classes=K, batch_size=4,
                                on_eps=lambda e, acc: seen.append((e, acc)))
  assert list(curve) == [0, 16, 64] and [e for e, _ in seen] == [0, 16, 64]
  adv0, pred0 = curve[0]
  np.testing.assert_array_equal(adv0, images)
  np.testing.assert_array_equal(pred0, labels)
  for e, (adv, pred) in curve.items():
    assert adv.shape == images.shape and pred.shape == labels.shape
    assert np.abs(adv - images).max() <= e / 255 + 1e-6
  accuracies = [acc for _, acc in seen]
  assert accuracies[0] == 1.0 and accuracies[-1] < 1.0   # a linear model gives way


def test_attack_sweep_white_box_and_transfer():
  params, images, labels = _model_and_split()
  white = (Linear(), params)
  lines = []
  out = evaluation.attack_sweep({'white-box': white, 'source': white, 'target': white},
                                images, labels, ['fgsm'], [0, 8, 32], batch_size=4,
                                log=lines.append, label='tiny')
  assert out['clean'] == {'0': 1.0} and lines[0].startswith('tiny: 6 images')
  assert set(out['fgsm']) == {'0', '8', '32'} and out['fgsm']['0'] == 1.0
  assert out['fgsm']['32'] <= out['fgsm']['8'] and out['fgsm']['32'] < 1.0
  # Source and target are the white-box model: transfer is the white-box figure.
  assert out['transfer']['fgsm'] == out['fgsm'] == out['transfer']['source_white_box']['fgsm']
  assert len(lines) == 1 + 3   # the clean line, then one per budget


@pytest.mark.slow
def test_attack_sweep_results_do_not_depend_on_the_batch_size():
  # PGD's random start draws example i's numbers from its index, not from its batch.
  params, images, labels = _model_and_split(seed=1)
  runs = [evaluation.attack_sweep({'white-box': (Linear(), params)}, images, labels,
                                  ['fgsm', 'pgd'], [4, 32], batch_size=size, log=lambda _: None)
          for size in (2, 4)]
  assert runs[0] == runs[1] and 'transfer' not in runs[0] and runs[0]['pgd']['32'] < 1.0


def test_figure_examples_prefer_faces_the_attack_turned():
  labels = np.array([0, 1, 2, 3, 4])
  clean = np.array([0, 1, 2, 3, 0])        # 4 misclassified already
  adversarial = np.array([0, 2, 2, 0, 0])  # 1 and 3 turned
  picked = evaluation.figure_examples(labels, clean, adversarial, count=2, seed=0)
  assert sorted(picked) == [1, 3]
  fallback = evaluation.figure_examples(labels, clean, clean, count=3, seed=0)
  assert set(fallback) <= {0, 1, 2, 3} and len(fallback) == 3   # correct ones, none turned


def test_recorded_data_dirs_come_from_metrics_unless_given(tmp_path):
  (tmp_path / 'metrics.json').write_text(json.dumps(
      {'data': {'manual_dir': '/photos', 'data_dir': '/tfds'}, 'epochs': 3}))
  manual, tfds_dir, metrics = evaluation.recorded_data_dirs(tmp_path)
  assert (str(manual), str(tfds_dir), metrics['epochs']) == ('/photos', '/tfds', 3)
  manual, tfds_dir, _ = evaluation.recorded_data_dirs(tmp_path, manual_dir=tmp_path)
  assert manual == tmp_path and str(tfds_dir) == '/tfds'
  assert evaluation.recorded_data_dirs(tmp_path / 'none') == (None, None, {})
