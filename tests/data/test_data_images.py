"""fgsm_jax.data.images: reading image files, listing identity folders."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fgsm_jax.data import images
from fgsm_jax.data.images import DatasetError, ImageError, identity_folders, load_rgb


def _halves(width: int, height: int) -> np.ndarray:
  """Left half red, right half blue."""
  rgb = np.zeros((height, width, 3), np.uint8)
  rgb[:, :width // 2, 0] = 255
  rgb[:, width // 2:, 2] = 255
  return rgb


def _snapshot(path):
  st = os.stat(path)
  return path.read_bytes(), st.st_mtime_ns, st.st_size


def test_exif_orientation_applied_and_file_untouched(tmp_path):
  path = tmp_path / 'rotated.jpg'
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: the stored image must be turned 90 deg clockwise.
  Image.fromarray(_halves(40, 20)).save(path, quality=95, exif=exif)
  before = _snapshot(path)

  rgb = load_rgb(path)

  assert rgb.dtype == np.uint8 and rgb.shape == (40, 20, 3)  # Upright: 20 wide, 40 high.
  # Turned clockwise, the stored left (red) half is on top, the right (blue) at the bottom.
  assert rgb[:15, :, 0].mean() > 200 and rgb[:15, :, 2].mean() < 50
  assert rgb[25:, :, 2].mean() > 200 and rgb[25:, :, 0].mean() < 50
  assert _snapshot(path) == before


def test_no_exif_keeps_stored_orientation(tmp_path):
  path = tmp_path / 'plain.png'
  Image.fromarray(_halves(40, 20)).save(path)
  np.testing.assert_array_equal(load_rgb(path), _halves(40, 20))


@pytest.mark.parametrize('mode,suffix', [('L', '.pgm'), ('L', '.png'), ('RGBA', '.png'),
                                         ('P', '.bmp'), ('RGB', '.ppm')])
def test_modes_become_rgb(tmp_path, mode, suffix):
  rng = np.random.default_rng(0)
  grey = rng.integers(0, 256, (12, 9), dtype=np.uint8)
  path = tmp_path / f'img{suffix}'
  Image.fromarray(grey).convert(mode).save(path)

  rgb = load_rgb(path)

  assert rgb.dtype == np.uint8 and rgb.shape == (12, 9, 3)
  if mode in ('L', 'RGBA', 'RGB'):  # Lossless for grey content: every channel equals it.
    for c in range(3):
      np.testing.assert_array_equal(rgb[:, :, c], grey)


def test_16_bit_grey_keeps_high_byte(tmp_path):
  path = tmp_path / 'deep.png'
  values = np.array([[0, 256, 65535], [1000, 30000, 511]], np.uint16)
  Image.fromarray(values).save(path)
  rgb = load_rgb(path)
  np.testing.assert_array_equal(rgb[:, :, 1], values >> 8)


def _assert_one_line_naming(err: pytest.ExceptionInfo, path, words: str):
  text = str(err.value)
  assert '\n' not in text
  assert str(path) in text
  assert words in text


def test_corrupt_file_names_the_file(tmp_path):
  path = tmp_path / 'broken.jpg'
  path.write_bytes(b'this is not a JPEG at all' * 10)
  before = _snapshot(path)
  with pytest.raises(ImageError) as err:
    load_rgb(path)
  _assert_one_line_naming(err, path, 'not a readable image')
  assert _snapshot(path) == before


def test_truncated_jpeg_names_the_file(tmp_path):
  whole = tmp_path / 'whole.jpg'
  rng = np.random.default_rng(1)
  Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole)
  path = tmp_path / 'truncated.jpg'
  path.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
  with pytest.raises(ImageError) as err:
    load_rgb(path)
  _assert_one_line_naming(err, path, 'corrupt or unreadable')


def test_missing_file_and_folder(tmp_path):
  with pytest.raises(ImageError) as err:
    load_rgb(tmp_path / 'nope.jpg')
  _assert_one_line_naming(err, tmp_path / 'nope.jpg', 'no such file')
  with pytest.raises(ImageError) as err:
    load_rgb(tmp_path)
  _assert_one_line_naming(err, tmp_path, 'not a file')


def test_image_errors_are_value_errors():
  assert issubclass(ImageError, ValueError) and issubclass(DatasetError, ValueError)


def test_too_many_pixels(tmp_path, monkeypatch):
  path = tmp_path / 'big.png'
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
  monkeypatch.setattr(images, 'MAX_PIXELS', 599)
  with pytest.raises(ImageError) as err:
    load_rgb(path)
  _assert_one_line_naming(err, path, 'too many pixels (30x20 > MAX_PIXELS=599)')
  monkeypatch.setattr(images, 'MAX_PIXELS', 600)
  assert load_rgb(path).shape == (20, 30, 3)


def _touch_image(path):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(path, format='PNG')


def test_identity_folders_natural_order_and_filtering(tmp_path):
  for name in ['s10/1.jpg', 's2/10.pgm', 's2/2.PNG', 's2/1.jpeg', 's1/a.bmp', 's1/b.ppm']:
    _touch_image(tmp_path / name)
  (tmp_path / 'README').write_text('not an image')
  (tmp_path / 's1' / 'README').write_text('not an image')
  (tmp_path / 's1' / 'notes.txt').write_text('not an image')
  (tmp_path / 's1' / '.hidden.jpg').write_text('hidden')
  _touch_image(tmp_path / 'loose.jpg')  # Not in an identity folder.
  (tmp_path / 'empty').mkdir()
  (tmp_path / '.git').mkdir()
  _touch_image(tmp_path / '.git' / 'x.png')

  found = identity_folders(tmp_path)

  assert [name for name, _ in found] == ['s1', 's2', 's10']
  assert [[p.name for p in paths] for _, paths in found] == [
      ['a.bmp', 'b.ppm'], ['1.jpeg', '2.PNG', '10.pgm'], ['1.jpg']]
  assert all(p.parent.name == name for name, paths in found for p in paths)


def test_identity_folders_follows_symlinks(tmp_path):
  _touch_image(tmp_path / 'real' / 'face.png')
  (tmp_path / 'root' / 'bob').mkdir(parents=True)
  (tmp_path / 'root' / 'bob' / 'face.png').symlink_to(tmp_path / 'real' / 'face.png')
  assert identity_folders(tmp_path / 'root') == [('bob', [tmp_path / 'root/bob/face.png'])]


def test_identity_folders_bad_roots(tmp_path):
  cases = {'missing': 'does not exist', 'empty': 'no identity folders',
           'only_files': 'no identity folders', 'no_images': 'no identity folders',
           'a_file': 'not a folder'}
  (tmp_path / 'empty').mkdir()
  _touch_image(tmp_path / 'only_files' / 'x.jpg')
  (tmp_path / 'no_images' / 's1').mkdir(parents=True)
  (tmp_path / 'no_images' / 's1' / 'README').write_text('text')
  (tmp_path / 'a_file').write_text('text')
  for name, words in cases.items():
    with pytest.raises(DatasetError) as err:
      identity_folders(tmp_path / name)
    _assert_one_line_naming(err, tmp_path / name, words)


def test_real_gt_layout(gt_dir):
  gt = identity_folders(gt_dir)
  assert [name for name, _ in gt] == [f's{i:02d}' for i in range(1, 51)]
  assert all([p.name for p in paths] == [f'{i:02d}.jpg' for i in range(1, 16)]
             for _, paths in gt)
  assert load_rgb(gt[0][1][0]).shape == (480, 640, 3)


def test_real_orl_layout(orl_dir):
  orl = identity_folders(orl_dir)  # Its README at the top is not an identity.
  assert [name for name, _ in orl] == [f's{i}' for i in range(1, 41)]
  assert all([p.name for p in paths] == [f'{i}.pgm' for i in range(1, 11)]
             for _, paths in orl)
  rgb = load_rgb(orl[0][1][0])
  assert rgb.shape == (112, 92, 3)
  assert (rgb[:, :, 0] == rgb[:, :, 2]).all()
