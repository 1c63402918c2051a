"""experiments/plot_frontier.py: which configs become points, and the figure is written."""
from __future__ import annotations

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'experiments'))
import plot_frontier  # noqa: E402


def _config(name, attacked, s2, psr):
  measures = lambda v: {'ssimulacra2': {'mean': v, 'worst_tenth': v - 5, 'n': 2}}
  return {'name': name, 'attacked': attacked, 'psr': {'none': psr},
          'perceptual': {'protected': measures(s2), 'jpeg75': measures(80.0),
                         'jpeg50': measures(73.0)}}


def test_whitebox_points_by_default_and_left_out_judges_with_all_sets(tmp_path):
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'frontier.json').write_text(json.dumps({'judges': ['dlib', 'mobileface'], 'configs': [
      _config('u4', ['dlib', 'mobileface'], 72.5, {'dlib': 0.3, 'mobileface': 0.1}),
      _config('u4', ['mobileface'], 73.0, {'dlib': 0.0, 'mobileface': 0.1})]}))
  points, refs = plot_frontier.load_points([run])
  assert [(p['label'], p['ssimulacra2'], p['psr']) for p in points] == [
      ('u4', 72.5, {'dlib': 0.3, 'mobileface': 0.1})]
  assert refs == {'jpeg75': [80.0], 'jpeg50': [73.0]}
  points, _ = plot_frontier.load_points([run], all_sets=True)
  # Leave-one-out: only the judge the attack never saw is a point of its own.
  assert points[1]['label'] == 'u4 [mobileface]' and points[1]['psr'] == {'dlib': 0.0}
  assert plot_frontier.main([str(run), '--out', str(tmp_path / 'f.png')]) == 0
  assert (tmp_path / 'f.png').stat().st_size > 5000


def test_a_left_out_judge_gets_its_transfer_curve(tmp_path):
  runs = []
  for name, s2, left in (('eps13', 61.0, 0.75), ('default', 52.0, 0.92), ('eps9', 73.0, 0.25)):
    run = tmp_path / name
    run.mkdir()
    (run / 'frontier.json').write_text(json.dumps({'judges': ['dlib', 'mobileface'], 'configs': [
        _config(name, ['mobileface'], s2, {'dlib': left, 'mobileface': 1.0})]}))
    runs.append(run)
  points, _ = plot_frontier.load_points(runs, all_sets=True)
  assert plot_frontier.left_out_curve(points, 'dlib') == [(52.0, 0.92), (61.0, 0.75),
                                                          (73.0, 0.25)]
  assert plot_frontier.left_out_curve(points, 'mobileface') == []  # never left out
  out = tmp_path / 'curve.png'
  assert plot_frontier.main([str(r) for r in runs] + ['--all-sets', '--out', str(out)]) == 0
  assert out.stat().st_size > 5000
