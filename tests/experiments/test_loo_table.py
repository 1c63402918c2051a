"""experiments/loo_table.py: one row per left-out recognizer, its PSR under each defence."""
from __future__ import annotations

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'experiments'))
import loo_table  # noqa: E402


def _measures(s2, lpips):
  return {'ssimulacra2': {'mean': s2, 'worst_tenth': s2 - 10, 'n': 2},
          'lpips': {'mean': lpips, 'worst_tenth': lpips, 'n': 2}}


def _config(attacked, psr):
  return {'name': 'default', 'attacked': attacked, 'seconds_per_photo': 12.5,
          'psr': {'none': psr, 'jpeg75': psr, 'resize_half': {k: v / 2 for k, v in psr.items()}},
          'perceptual': {'protected': _measures(55.0, 0.05), 'jpeg50': _measures(73.0, 0.03)}}


def test_a_row_per_left_out_recognizer_and_none_for_whitebox(tmp_path, capsys):
  run = {'judges': ['dlib', 'mobileface', 'facenet'], 'seed': 1, 'configs': [
      _config(['dlib', 'mobileface', 'facenet'], {'dlib': 1.0, 'mobileface': 1.0, 'facenet': 1.0}),
      _config(['mobileface', 'facenet'], {'dlib': 0.5, 'mobileface': 0.75, 'facenet': 1.0})]}
  path = tmp_path / 'frontier.json'
  path.write_text(json.dumps(run))
  assert loo_table.main([str(path)]) == 0
  header, rule, *body = capsys.readouterr().out.strip().splitlines()
  assert header.count('|') == rule.count('|')
  (row,) = body  # the white-box set leaves nobody out
  cells = [c.strip() for c in row.strip('|').split('|')]
  assert cells[:6] == ['default', '1', 'mobileface+facenet', '**dlib**', '0.50', '0.50']
  assert cells[6] == '–' and cells[7] == '0.25'        # no JPEG 50 in this run; halved
  assert cells[10:] == ['0.75', '55.0 (45.0)', '0.050', '73.0 / 0.030', '12.5']


def test_unreadable_or_foreign_json_is_one_line(tmp_path, capsys):
  assert loo_table.main([str(tmp_path / 'absent.json')]) == 1
  assert 'absent.json: cannot read' in capsys.readouterr().err
  other = tmp_path / 'other.json'
  other.write_text(json.dumps({'runs': []}))
  assert loo_table.main([str(other)]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'not a perceptual_frontier.py result' in err[0]
