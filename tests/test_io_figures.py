"""fgsm_jax.io.write_json key order and the triplet figure's caption of the unread band."""
from __future__ import annotations

import json

import numpy as np

from fgsm_jax import figures, io


def test_json_keys_sort_numbers_by_value(tmp_path):
  path = io.write_json(tmp_path / 'r.json', {'accuracy': {'16': 0.0, '2': 0.5, '0': 0.9,
                                                          '0.5': 0.8}, 'attack': 'fgsm', 'b': [
                                                              {'z': 1, 'a': 2}]})
  text = path.read_text()
  assert list(json.loads(text)['accuracy']) == ['0', '0.5', '2', '16']
  assert text.index('"accuracy"') < text.index('"attack"') < text.index('"b"')
  assert text.index('"a"') < text.index('"z"')


def test_caption_names_the_band_no_example_changed():
  rng = np.random.default_rng(0)
  x = rng.random((3, 160, 160, 3)).astype(np.float32)
  adv = x.copy()
  adv[:, :153, :153] += 0.01  # like the CNN: pixels 153-159 never read
  note = figures._unchanged_band_note(x, adv)
  assert 'columns 153-159 (right)' in note and 'rows 153-159 (bottom)' in note
  adv[1, 159, 2] += 0.01  # one example changed the last row: no bottom band
  note = figures._unchanged_band_note(x, adv)
  assert 'columns 153-159' in note and 'rows' not in note
  assert figures._unchanged_band_note(x, x) == ''
  full = x + 0.01
  assert figures._unchanged_band_note(x, full) == ''


def test_triplet_figure_is_written_with_the_caption(tmp_path):
  x = np.full((2, 32, 32, 3), 0.5, np.float32)
  adv = x.copy()
  adv[:, :28, :28] += 2 / 255
  amp = figures.plot_triplets(x, adv, ['a', 'b'], ['b', 'a'], ['a', 'b'], 2.0,
                              tmp_path / 't.png')
  assert amp == 0.5 / (2 / 255) and (tmp_path / 't.png').stat().st_size > 1000
