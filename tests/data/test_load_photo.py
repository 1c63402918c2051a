"""fgsm_jax.data.images.load_photo on any bytes, grey/alpha kinds, and the pixel limit;
fgsm_jax.io's file modes; fgsm_jax.cli's argparse types."""
from __future__ import annotations

import argparse
import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fgsm_jax import cli
from fgsm_jax import io as io_lib
from fgsm_jax.data import images
from fgsm_jax.data.images import ImageError


def _png(array: np.ndarray, mode: str, **info) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array, mode).save(buf, format='PNG', **info)
  return buf.getvalue()


_SEEDS = [
    _png(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), 'RGB'),
    _png(np.arange(16, dtype=np.uint8).reshape(4, 4), 'L'),
    _png(np.arange(64, dtype=np.uint8).reshape(4, 4, 4), 'RGBA'),
]


def _check(path, data: bytes) -> None:
  path.write_bytes(data)
  with warnings.catch_warnings():
    warnings.simplefilter('error', Image.DecompressionBombWarning)  # never printed
    try:
      photo = images.load_photo(path, max_pixels=1 << 16)
    except ImageError as e:
      text = str(e)
      assert str(path) in text and '\n' not in text
      return
  h, w = photo.rgb.shape[:2]
  assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (h, w, 3) and h * w <= 1 << 16
  assert photo.alpha is None or (photo.alpha.dtype == np.uint8 and photo.alpha.shape == (h, w))
  if photo.grey:
    assert (photo.rgb == photo.rgb[..., :1]).all()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_photo_or_an_image_error(tmp_path, data):
  _check(tmp_path / 'x.img', data)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(_SEEDS), edits=st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(8, 400))
def test_damaged_pngs_give_a_photo_or_an_image_error(tmp_path, seed, edits, cut):
  data = bytearray(seed)
  for at, value in edits:
    data[at % len(data)] = value
  _check(tmp_path / 'x.png', bytes(data[:cut]))


def test_grey_and_alpha_are_reported(tmp_path):
  grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
  (tmp_path / 'l.png').write_bytes(_png(grey, 'L'))
  photo = images.load_photo(tmp_path / 'l.png')
  assert photo.grey and photo.alpha is None
  np.testing.assert_array_equal(photo.rgb, np.repeat(grey[..., None], 3, -1))
  rgba = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)
  (tmp_path / 'a.png').write_bytes(_png(rgba, 'RGBA'))
  photo = images.load_photo(tmp_path / 'a.png')
  assert not photo.grey
  np.testing.assert_array_equal(photo.alpha, rgba[..., 3])
  np.testing.assert_array_equal(photo.rgb, rgba[..., :3])
  la = np.stack([grey, 255 - grey], -1)
  (tmp_path / 'la.png').write_bytes(_png(la, 'LA'))
  photo = images.load_photo(tmp_path / 'la.png')
  assert photo.grey
  np.testing.assert_array_equal(photo.alpha, 255 - grey)
  # A palette PNG with a transparent entry gets its alpha (else hidden pixels would show).
  pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), 'P')
  pal.putpalette([255, 0, 0, 0, 255, 0])
  pal.save(tmp_path / 'p.png', transparency=0)
  photo = images.load_photo(tmp_path / 'p.png')
  np.testing.assert_array_equal(photo.alpha, [[0, 255], [255, 0]])


def _header_only_png(path, width: int, height: int) -> None:
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
  path.write_bytes(b'\x89PNG\r\n\x1a\n'
                   + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
                   + chunk(b'IDAT', zlib.compress(b'\0' * 16)) + chunk(b'IEND', b''))


def test_bomb_header_is_refused_by_our_limit_without_pils_warning(tmp_path):
  bomb = tmp_path / 'bomb.png'
  _header_only_png(bomb, 30000, 30000)  # 900 MP: PIL alone raises DecompressionBombError
  before = Image.MAX_IMAGE_PIXELS
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    for limit in (None, 30000 * 30000 - 1):
      with pytest.raises(ImageError, match='too many pixels') as e:
        images.load_photo(bomb, max_pixels=limit)
      assert str(bomb) in str(e.value)
  assert Image.MAX_IMAGE_PIXELS == before  # PIL's setting is put back


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umasks_mode(tmp_path, umask, mode):
  old = os.umask(umask)
  try:
    path = io_lib.write_json(tmp_path / 'x.json', {'a': 1})
  finally:
    os.umask(old)
  assert path.stat().st_mode & 0o777 == mode
  assert [p.name for p in tmp_path.iterdir()] == ['x.json']


@pytest.mark.parametrize('parse, text', [
    (cli.number(0, 255), 'nan'), (cli.number(0, 255), 'inf'), (cli.number(0, 255), '-inf'),
    (cli.number(0, 255), '-0.5'), (cli.number(0, 255), '256'), (cli.number(0, 255), 'x'),
    (cli.number(0, 1, lo_open=True), '0'), (cli.number(0, 1, hi_open=True), '1'),
    (cli.seed, str(2**32)), (cli.seed, '-1'), (cli.seed, '1.5'), (cli.positive_int, '0'),
    (cli.number_list(0, 255), '1,nan'), (cli.number_list(0, 255), ','),
])
def test_number_types_refuse_non_finite_and_out_of_range(parse, text):
  with pytest.raises(argparse.ArgumentTypeError):
    parse(text)


def test_number_types_accept_the_range():
  assert cli.number(0, 255)('255') == 255.0 and cli.number(0, 255)('0') == 0.0
  assert cli.seed(str(cli.MAX_SEED)) == 2**32 - 1
  assert cli.number_list(0, 255)('0, 1.5,4') == [0.0, 1.5, 4.0]
