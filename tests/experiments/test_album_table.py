"""experiments/album_table.py: an album against the same photos alone, per person."""
from __future__ import annotations

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'experiments'))
import album_table  # noqa: E402


def _probe(who, seconds, cpu, rounds, rank1):
  return {'identity': who, 'seconds': seconds, 'cpu_seconds': cpu, 'rounds': rounds,
          'judged': {'none': {'judges': {n: {'rank1': v} for n, v in rank1.items()}}}}


def _run(album, probes):
  return {'album': album, 'judges': ['dlib', 'mobileface'],
          'runs': [{'attacked': ['dlib', 'mobileface'], 'probes': probes}]}


def test_a_row_per_person_with_the_ratio_to_one_photo(tmp_path, capsys):
  first = _probe('s26', 10.0, 12.0, [2], {'dlib': False, 'mobileface': False})
  first['album_seconds'] = [5.0, 4.0]  # the person's change, made once: wall, CPU
  album = _run(True, [first,
                      _probe('s26', 2.0, 2.5, [0], {'dlib': False, 'mobileface': True}),
                      _probe('s26', 4.0, 5.5, [1], {'dlib': False, 'mobileface': False})])
  alone = _run(False, [_probe('s26', 8.0, 9.0, [2], {'dlib': False, 'mobileface': False}),
                       _probe('s26', 10.0, 11.0, [2], {'dlib': False, 'mobileface': False}),
                       _probe('s26', 12.0, 13.0, [3], {'dlib': True, 'mobileface': False})])
  paths = []
  for name, run in (('album', album), ('alone', alone)):
    paths.append(tmp_path / f'{name}.json')
    paths[-1].write_text(json.dumps(run))
  assert album_table.main([str(p) for p in paths]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  cells = [c.strip() for c in lines[-1].strip('|').split('|')]
  # 5 + 16 s in all against 10 s for one (the median alone): 2.1x; CPU 24 against 11.
  assert cells == ['s26', 'dlib+mobileface', '3', '21.0 (24.0)', '10.0 (11.0)', '2.1x (2.2x)',
                   '1 of 3', '1.00 / 0.67', '0.67 / 1.00']


def test_the_files_must_be_an_album_and_its_photos_alone(tmp_path, capsys):
  a, b = tmp_path / 'a.json', tmp_path / 'b.json'
  a.write_text(json.dumps(_run(False, [])))
  b.write_text(json.dumps(_run(False, [])))
  with pytest.raises(SystemExit) as e:
    album_table.main([str(a), str(b)])
  assert e.value.code != 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'not a fgsm-jax-eval result with --album' in err[0]


def test_a_run_without_cpu_seconds_is_one_line(tmp_path, capsys):
  probe = _probe('s26', 8.0, 9.0, [2], {'dlib': False, 'mobileface': False})
  old = dict(probe)
  del old['cpu_seconds']
  a, b = tmp_path / 'a.json', tmp_path / 'b.json'
  a.write_text(json.dumps(_run(True, [probe])))
  b.write_text(json.dumps(_run(False, [old])))
  with pytest.raises(SystemExit):
    album_table.main([str(a), str(b)])
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'cpu_seconds' in err[0]
