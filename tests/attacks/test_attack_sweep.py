"""experiments/attack_sweep.py end to end on tiny synthetic checkpoints (1 epoch on 16 random
32 x 32 images), with a fake load_split; and its command-line errors."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fgsm_jax import train

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'experiments' / 'attack_sweep.py'
SIZE = 32


def _load_script():
  spec = importlib.util.spec_from_file_location('attack_sweep', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


sweep = _load_script()


def _data(n, seed):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3).astype(np.int32)
  images = rng.uniform(0, 0.6, (n, SIZE, SIZE, 3)).astype(np.float32)
  images[np.arange(n), :, :, labels] += 0.4   # learnable in one epoch: class = bright channel
  return images, labels


def fake_load_split(dataset, split, *, manual_dir=None, data_dir=None):
  assert dataset == 'gt' and split == 'test'
  return _data(10, seed=1)   # 10 images: batches of 4 leave a padded last batch


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp('sweep')
  images, labels = _data(16, seed=0)
  paths = {}
  for name, seed in (('a', 0), ('b', 1)):
    config = train.TrainConfig(num_classes=3, image_size=SIZE, epochs=1, batch_size=8,
                               seed=seed)
    state, _ = train.train(config, images, labels, log=lambda _: None)
    train.save_checkpoint(root / name, state.params, config)
    paths[name] = root / name
  return paths


@pytest.mark.slow
def test_sweep_end_to_end(checkpoints, tmp_path, capsys):
  out = tmp_path / 'out'
  argv = ['--workdir', str(out), '--checkpoint', str(checkpoints['a']),
          '--target', str(checkpoints['b']), '--attacks', 'fgsm,pgd,fgm_l2',
          '--eps', '0,16', '--batch-size', '4']
  assert sweep.main(argv, load_split=fake_load_split) == 0
  result = json.loads((out / 'attack_sweep.json').read_text())
  png = (out / 'attack_sweep.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 5000
  assert not list(out.glob('.*.tmp'))
  clean = result['clean']['0']
  for name in ('fgsm', 'pgd', 'fgm_l2'):
    assert set(result[name]) == {'0', '16'}
    assert all(0.0 <= v <= 1.0 for v in result[name].values())
    assert result[name]['0'] == clean        # eps 0 leaves the images as they are
    assert result[name]['16'] <= clean       # a white-box attack does not help the model
    assert set(result['transfer'][name]) == {'0', '16'}
    assert result['transfer'][name]['0'] == result['transfer']['clean']['0']
    # The source is the white-box model here: its scores are the white-box ones.
    assert result['transfer']['source_white_box'][name] == result[name]
  assert clean > 0.5   # the tiny model learned something, so the attacks have work to do
  assert result['pgd']['16'] < clean
  assert result['transfer']['target'] == str(checkpoints['b'].resolve())
  config = result['config']
  assert config['examples'] == 10 and config['batch_size'] == 4
  assert config['norms'] == {'fgsm': 'linf', 'pgd': 'linf', 'fgm_l2': 'l2'}
  assert 'fgsm eps 16/255' in capsys.readouterr().out

  # Per-example keys come from each image's index: other batch sizes give the same numbers.
  out2 = tmp_path / 'out2'
  assert sweep.main(['--workdir', str(out2), '--checkpoint', str(checkpoints['a']),
                     '--attacks', 'pgd', '--eps', '0,16', '--batch-size', '3'],
                    load_split=fake_load_split) == 0
  again = json.loads((out2 / 'attack_sweep.json').read_text())
  assert again['pgd'] == result['pgd']
  assert 'transfer' not in again


@pytest.mark.parametrize('argv, message', [
    (['--eps', '-1'], 'eps must be in [0, 255]'),
    (['--eps', '1,x'], 'comma-separated numbers'),
    (['--attacks', 'fgsm,nope'], "unknown attack 'nope'"),
    (['--batch-size', '0'], '--batch-size must be positive'),
    (['--source', 's'], '--source needs --target'),
])
def test_usage_errors_are_one_line(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    sweep.parse_args(['--workdir', 'w'] + argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert message in err[-1] and not err[-1].startswith('usage:')
  assert 'Traceback' not in '\n'.join(err)


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    sweep.main(['--workdir', str(tmp_path)], load_split=fake_load_split)
  assert exit_info.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'config.json' in err[0]


@pytest.mark.slow
def test_help_runs_as_a_script():
  done = subprocess.run([sys.executable, str(SCRIPT), '--help'], capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 0
  assert '--attacks' in done.stdout and '0-255' in done.stdout
