"""End to end: train_classifier.py then fgsm_eval.py on a small generated ORL-like folder."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'experiments'))

import fgsm_eval  # noqa: E402
import train_classifier  # noqa: E402


@pytest.fixture(scope='module')
def fake_orl(tmp_path_factory):
  """3 'people' x 10 grey 92x112 PGMs: each person a distinct stripe pattern plus noise."""
  root = tmp_path_factory.mktemp('orl_faces')
  rng = np.random.default_rng(0)
  for person in range(1, 4):
    folder = root / f's{person}'
    folder.mkdir()
    # A faint stripe (+60 grey levels over the noise): learnable in 3 epochs, and close
    # enough to the other classes that FGSM at 16/255 can cross over.
    base = np.full((112, 92), 100, np.float32)
    base[:, (person - 1) * 30:(person - 1) * 30 + 30] += 60
    for i in range(1, 11):
      img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
      Image.fromarray(img).save(folder / f'{i}.pgm')
  (root / 'README').write_text('not an image')
  return root


@pytest.fixture(scope='module')
def trained(fake_orl, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('run')
  data_dir = tmp_path_factory.mktemp('tfds')
  code = train_classifier.main(['--dataset', 'orl', '--manual-dir', str(fake_orl),
                                '--data-dir', str(data_dir), '--workdir', str(workdir),
                                '--epochs', '3', '--batch-size', '7'])
  assert code == 0
  return workdir


@pytest.mark.slow
def test_train_classifier_writes_metrics_and_checkpoint(trained):
  metrics = json.loads((trained / 'metrics.json').read_text())
  assert set(metrics) >= {'test_accuracy', 'train_accuracy', 'config'}
  assert metrics['config']['dataset'] == 'orl' and metrics['config']['epochs'] == 3
  assert metrics['train_examples'] == 21 and metrics['test_examples'] == 9  # 7 / 3 per person
  # It learned: 3 classes (chance 1/3); measured test accuracy 1.0 on the 9 held-out images.
  assert metrics['test_accuracy'] >= 0.85, metrics
  assert (trained / 'checkpoint').is_dir() and (trained / 'config.json').is_file()


@pytest.mark.slow
def test_fgsm_eval_writes_accuracy_per_eps_and_figures(trained):
  assert fgsm_eval.main(['--workdir', str(trained), '--eps', '0,2,16,48',
                         '--figure-eps', '16', '--figure-examples', '2']) == 0
  result = json.loads((trained / 'fgsm_eval.json').read_text())
  assert list(result['accuracy']) == ['0', '2', '16', '48']  # numeric order, not text order
  metrics = json.loads((trained / 'metrics.json').read_text())
  # eps 0 is the clean accuracy; a large budget can only lower it on this easy data.
  assert result['accuracy']['0'] == pytest.approx(metrics['test_accuracy'])
  # FGSM works: accuracy falls as eps grows, to chance (1/3) or below at 48/255
  # (measured: 1.0, 1.0, 0.67, 0.33 at eps 0, 2, 16, 48).
  accuracy = [result['accuracy'][e] for e in ('0', '2', '16', '48')]
  assert accuracy == sorted(accuracy, reverse=True), accuracy
  assert accuracy[-1] <= 0.5, accuracy
  assert (trained / 'accuracy_vs_eps.png').stat().st_size > 0
  assert (trained / 'triplets_eps16.png').stat().st_size > 0
  assert result['figure']['perturbation_amplification'] == pytest.approx(0.5 * 255 / 16)


@pytest.mark.parametrize('argv, message', [
    (['--eps', '-1'], 'eps must be in [0, 255]'),
    (['--eps', 'a,b'], 'expected comma-separated numbers'),
])
def test_fgsm_eval_bad_flags_are_usage_errors(tmp_path, argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    fgsm_eval.main(['--workdir', str(tmp_path)] + argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_train_classifier_unknown_dataset_is_a_usage_error(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    train_classifier.main(['--dataset', 'mnist', '--workdir', str(tmp_path)])
  assert exit_info.value.code == 2
  assert "invalid choice: 'mnist'" in capsys.readouterr().err


@pytest.mark.slow
def test_missing_dataset_is_one_line_without_traceback(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / 'experiments' / 'train_classifier.py'), '--dataset', 'orl',
       '--manual-dir', str(tmp_path / 'nowhere'), '--data-dir', str(tmp_path / 'tfds'),
       '--workdir', str(tmp_path / 'w')], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert 'Traceback' not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'nowhere' in errors[0]


def test_fgsm_eval_without_a_trained_model_says_so(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    fgsm_eval.main(['--workdir', str(tmp_path)])
  assert exit_info.value.code == 1
  assert 'train_classifier.py' in capsys.readouterr().err
