"""fgsm_jax.protect.evaluate on made-up descriptors: identification by the nearest gallery
photo (L2 for dlib, cosine for MobileFace), the summary rates, the attack sets."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from fgsm_jax.protect import evaluate, recognizer


def _gallery(name, rows, who):
  return evaluate.Gallery(np.asarray(rows, np.float32), list(who),
                          [pathlib.Path(f'{w}.jpg') for w in who], [], name)


def test_identify_is_the_nearest_gallery_photo_with_dlibs_threshold():
  gallery = _gallery('dlib', [[0, 0], [0, 0.5], [1, 0]], ['ann', 'ann', 'bob'])
  seen = evaluate.identify(gallery, np.array([0.0, 0.7]), 'ann')
  assert seen['predicted'] == 'ann' and seen['rank1']
  assert seen['nearest_distance'] == pytest.approx(0.2)
  assert seen['verified'] == (0.2 < recognizer.THRESHOLDS['dlib'])
  moved = evaluate.identify(gallery, np.array([0.9, 0.0]), 'ann')   # nearer bob's photo
  assert moved['predicted'] == 'bob' and not moved['rank1']
  assert moved['own_distance'] == pytest.approx(0.9)
  stranger = evaluate.identify(gallery, np.array([0.0, 0.0]), 'cat')   # not in the gallery
  assert stranger['own_distance'] is None and not stranger['verified']
  lost = evaluate.identify(gallery, None, 'ann')
  assert not lost['face_found'] and lost['predicted'] is None and not lost['rank1']


def test_mobileface_galleries_compare_by_cosine_distance():
  gallery = _gallery('mobileface', [[1, 0, 0], [0, 1, 0]], ['ann', 'bob'])
  seen = evaluate.identify(gallery, np.array([5.0, 0.0, 0.0]), 'ann')   # length is ignored
  assert seen['rank1'] and seen['nearest_distance'] == pytest.approx(0.0)
  assert evaluate.identify(gallery, np.array([0, 0, 1.0]), 'ann')['own_distance'] == (
      pytest.approx(1.0))


def test_summary_rates_count_every_probe():
  gallery = _gallery('dlib', [[0, 0], [1, 0]], ['ann', 'bob'])
  records = [evaluate.identify(gallery, np.array([0.1, 0.0]), 'ann'),   # recognised
             evaluate.identify(gallery, np.array([0.9, 0.0]), 'ann'),   # protected
             evaluate.identify(gallery, None, 'bob')]                   # no face found
  records[0]['face_ssim'], records[1]['face_ssim'] = 0.9, 0.8
  out = evaluate.summarize(records)
  assert out['probes'] == 3 and out['rank1'] == pytest.approx(1 / 3)
  assert out['psr'] == pytest.approx(2 / 3) and out['no_face'] == pytest.approx(1 / 3)
  assert out['psr_face_found'] == pytest.approx(1 / 2)
  assert out['mean_face_ssim'] == pytest.approx(0.85) and out['min_face_ssim'] == 0.8
  assert evaluate.summarize([]) == {'probes': 0}


def test_attack_sets_per_protocol():
  names = ('dlib', 'mobileface')
  assert evaluate.attack_sets(names, 'whitebox') == [names]
  assert evaluate.attack_sets(names, 'leave-one-out') == [('mobileface',), ('dlib',)]
  assert evaluate.attack_sets(names, 'both') == [names, ('mobileface',), ('dlib',)]
  with pytest.raises(ValueError, match='protocol must be'):
    evaluate.attack_sets(names, 'greybox')
