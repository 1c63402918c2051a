"""files.protect_file: the judges' last check is of the very pixels the written file holds."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from fgsm_jax.data import images
from fgsm_jax.protect import attack, files, photo, recognizer
from fgsm_jax.protect.presets import Preset

# One short round against dlib alone: cheap; protection itself is not what is tested. (A
# config of its own: test_photo counts the programs compiled for its config.)
QUICK = Preset(name='quick', summary='test', eps=6.0, steps=4, rounds=1,
               attack=attack.AttackConfig(step=0.5, eot_samples=1))


@pytest.fixture(scope='module')
def recognizers():
  return photo.load_recognizers(['dlib'])


@pytest.fixture
def seen(monkeypatch):
  """Every array real dlib is asked to describe, in order."""
  calls = []
  describe = recognizer.describe

  def spy(rgb, *args, **kwargs):
    calls.append(np.array(rgb))
    return describe(rgb, *args, **kwargs)

  monkeypatch.setattr(recognizer, 'describe', spy)
  return calls


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['RGB', 'L'])
def test_the_last_check_describes_the_pixels_of_the_written_file(gt_dir, tmp_path, seen,
                                                                 recognizers, mode):
  source = tmp_path / f'in_{mode}.png'
  Image.open(gt_dir / 's09' / '05.jpg').convert(mode).save(source)
  out = tmp_path / 'out.protected.png'
  res = files.protect_file(source, out, QUICK, jax.random.key(0), recognizers=recognizers,
                           keep_unverified=True)
  assert res.error is None and res.out_path is not None, res.error
  with Image.open(res.out_path) as im:
    assert im.mode == mode
  written = images.load_rgb(res.out_path)
  # seen[0]: the clean photo; seen[-1]: the check after the last round.
  assert len(seen) == 2 and not np.array_equal(seen[0], written)
  np.testing.assert_array_equal(seen[-1], written)


@pytest.mark.slow
def test_bytes_that_do_not_decode_to_the_verified_pixels_are_not_written(
    gt_dir, tmp_path, monkeypatch, recognizers):
  encode = files.encode_png
  monkeypatch.setattr(files, 'encode_png', lambda px: encode(np.ascontiguousarray(px[::-1])))
  out = tmp_path / 'out.protected.png'
  res = files.protect_file(gt_dir / 's09' / '05.jpg', out, QUICK, jax.random.key(0),
                           recognizers=recognizers, keep_unverified=True)
  assert res.out_path is None and 'differs from the pixels verified' in res.error
  assert list(tmp_path.iterdir()) == []
