"""experiments/perceptual_frontier.py on one GT probe: configs side by side, with a target
identity and a chosen subset of the observer's defences."""
from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / 'experiments'


@pytest.fixture(scope='module')
def frontier():
  spec = importlib.util.spec_from_file_location('frontier_under_test',
                                                EXPERIMENTS / 'perceptual_frontier.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_a_target_config_beside_a_plain_one_with_one_defence(frontier, gt_dir, orl_dir,
                                                             link_dataset, tmp_path, capsys):
  data = link_dataset(gt_dir, tmp_path / 'gt', ('s01', 's02'), [f'{k:02d}.jpg' for k in range(1, 7)])
  orl = link_dataset(orl_dir, tmp_path / 'orl', ('s1', 's2'), ['1.pgm'])
  work = tmp_path / 'work'
  assert frontier.main([
      '--dataset-dir', str(data), '--workdir', str(work), '--people', '1',
      '--recognizers', 'dlib', '--protocol', 'whitebox', '--degradations', 'jpeg75',
      '--targets-dir', str(orl), '--target-photos', '1',
      '--config', 'plain:preset=fast;steps=2',
      '--config', 'pulled:preset=fast;steps=2;attack.target_weight=1.0']) == 0
  out = json.loads((work / 'frontier.json').read_text())
  rows = {r['name']: r for r in out['configs']}
  assert list(rows) == ['plain', 'pulled']
  for row in rows.values():
    # Judged as saved and after the one defence asked for, nothing else.
    assert set(row['psr']) == {'none', 'jpeg75'}
    assert 0.0 <= row['psr']['none']['dlib'] <= 1.0
    assert row['perceptual']['protected']['ssimulacra2']['n'] == 1
  printed = [l for l in capsys.readouterr().out.splitlines() if l.startswith('FRONTIER')]
  assert len(printed) == 2 and all('PSR (none/jpeg75) dlib ' in l for l in printed)
