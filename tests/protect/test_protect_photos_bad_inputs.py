"""experiments/protect_photos.py on bad and unusual inputs, as a user runs it.

One subprocess carries a batch of bad inputs between good ones (imports and compiling cost
~10 s each run, so the cases share it): each bad file gets one line naming it and its
problem, the batch goes on, grey and RGBA photos keep their kind, inputs stay byte-identical,
outputs are 0644. Then: a result that fails verification is not written under the protected
name, Ctrl-C exits 130 without a traceback or a file, and bad flags are usage errors.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'experiments' / 'protect_photos.py'
FAST = ['--preset', 'fast', '--recognizers', 'dlib']  # file handling: one recognizer
# In this process (cli.main), not a child: the persistent cache stays off (tests/conftest.py).
IN_PROCESS = FAST + ['--no-compile-cache']


def _env() -> dict:
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS='cpu')
  return env


def _png_header_only(path: pathlib.Path, width: int, height: int) -> None:
  """A tiny PNG whose IHDR declares width x height (grey) and whose data is a few bytes:
  a decompression bomb as a header, made without allocating the image."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
                   + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def _digests(paths) -> dict:
  return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _umask_022():
  os.umask(0o022)


@pytest.fixture(scope='module')
def cli():
  from fgsm_jax.apps import protect_photos
  return protect_photos


@pytest.mark.slow
def test_batch_of_bad_and_unusual_inputs(gt_dir, tmp_path):
  src = gt_dir / 's09' / '05.jpg'
  photo = Image.open(src).convert('RGB')
  grey = tmp_path / 'grey.png'
  photo.convert('L').save(grey)
  rgba = tmp_path / 'rgba.png'
  pixels = np.asarray(photo.convert('RGBA')).copy()
  pixels[:, :120, 3] = 0  # a hidden strip: must stay hidden
  pixels[:, 120:200, 3] = 128
  Image.fromarray(pixels, 'RGBA').save(rgba)
  bomb = tmp_path / 'bomb30k.png'
  _png_header_only(bomb, 30000, 30000)  # 900 MP: PIL's own error (> 2 x 89 MP) without us
  big = tmp_path / 'big100m.png'
  _png_header_only(big, 10000, 10000)  # 100 MP: PIL's warning without us; > 40 MP default
  junk = tmp_path / 'junk.jpg'
  junk.write_bytes(b'\xff\xd8\xff not really a JPEG')
  missing = tmp_path / 'missing.jpg'
  good = tmp_path / 'good.jpg'
  good.write_bytes(src.read_bytes())
  inputs = [grey, bomb, big, junk, missing, rgba, good, good]  # good given twice
  before = _digests(inputs)
  out_dir = tmp_path / 'out'
  done = subprocess.run([sys.executable, str(SCRIPT)] + [str(p) for p in inputs]
                        + ['--out-dir', str(out_dir)] + FAST, capture_output=True, text=True,
                        env=_env(), timeout=600, preexec_fn=_umask_022)
  err = done.stderr
  assert 'Traceback' not in err and 'DecompressionBomb' not in err, err
  assert done.returncode == 1, err
  errors = [l for l in err.splitlines() if l.startswith('error:')]
  assert len(errors) == 4, errors
  for path, problem in ((bomb, 'too many pixels'), (big, 'too many pixels'),
                        (junk, 'not a readable image'), (missing, 'no such file')):
    assert [l for l in errors if f'{path}:' in l and problem in l], (path, errors)
  assert [l for l in err.splitlines() if l.startswith('note:') and 'same file' in l]
  # The batch went on past every bad file; the summary counts the failures.
  assert '3 protected and written, 4 failed, 1 duplicate skipped' in done.stdout
  assert _digests(inputs) == before
  names = sorted(p.name for p in out_dir.iterdir())
  assert names == ['good.protected.png', 'grey.protected.png', 'rgba.protected.png']
  for name in names:
    assert (out_dir / name).stat().st_mode & 0o777 == 0o644
  with Image.open(out_dir / 'grey.protected.png') as im:
    assert im.mode == 'L' and im.size == (640, 480)
    changed = np.asarray(im) != np.asarray(Image.open(grey))
  assert changed.any()  # perturbed, in grey
  with Image.open(out_dir / 'rgba.protected.png') as im:
    assert im.mode == 'RGBA'
    out = np.asarray(im)
  np.testing.assert_array_equal(out[..., 3], pixels[..., 3])
  assert (out[..., :3] != pixels[..., :3]).any()
  # --max-pixels above PIL's 89 MP takes effect: the 100 MP header passes our limit and
  # fails only as the truncated file it is.
  again = subprocess.run([sys.executable, str(SCRIPT), str(big), '--out-dir', str(out_dir),
                          '--max-pixels', '200000000'] + FAST, capture_output=True, text=True,
                         env=_env(), timeout=600)
  assert again.returncode == 1 and 'Traceback' not in again.stderr
  line, = [l for l in again.stderr.splitlines() if l.startswith('error:')]
  assert str(big) in line and 'too many pixels' not in line and 'corrupt' in line
  assert 'DecompressionBomb' not in again.stderr
  assert '0 protected and written, 1 failed' in again.stdout


@pytest.mark.slow
def test_unverified_result_is_not_written_under_the_protected_name(cli, gt_dir, tmp_path,
                                                                     capsys):
  src = gt_dir / 's09' / '05.jpg'
  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  earlier = out_dir / '05.protected.png'
  earlier.write_bytes(b'an earlier, verified output')
  # eps 0.01/255 cannot change an 8-bit pixel: real dlib sees the same face (distance 0).
  rc = cli.main([str(src), '--out-dir', str(out_dir), '--eps', '0.01', '--steps', '1'] + IN_PROCESS)
  captured = capsys.readouterr()
  assert rc == 1
  assert earlier.read_bytes() == b'an earlier, verified output'
  assert sorted(p.name for p in out_dir.iterdir()) == ['05.protected.png']
  line, = [l for l in captured.err.splitlines() if l.startswith('error:')]
  assert str(src) in line and 'not protected' in line and 'no output written' in line
  assert '0 protected and written, 1 failed' in captured.out
  # Kept on request: under a name that says so, and still exit 1.
  rc = cli.main([str(src), '--out-dir', str(out_dir), '--eps', '0.01', '--steps', '1',
                 '--keep-unverified'] + IN_PROCESS)
  captured = capsys.readouterr()
  assert rc == 1
  assert earlier.read_bytes() == b'an earlier, verified output'
  assert sorted(p.name for p in out_dir.iterdir()) == ['05.protected.png', '05.unverified.png']
  assert 'NOT protected' in captured.out and '1 NOT protected' in captured.out


@pytest.mark.slow
def test_ctrl_c_exits_130_without_traceback_or_file(gt_dir, tmp_path):
  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  earlier = out_dir / '05.protected.png'
  earlier.write_bytes(b'earlier')
  proc = subprocess.Popen([sys.executable, '-u', str(SCRIPT), str(gt_dir / 's09' / '05.jpg'),
                           str(gt_dir / 's10' / '05.jpg'), '--out-dir', str(out_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env())
  try:
    banner = proc.stdout.readline()  # printed once the models are loaded, before any attack
    assert banner.startswith('preset '), banner
    time.sleep(1.0)  # inside the first photo's attack (it compiles for seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 130, err
  assert 'Traceback' not in err and 'KeyboardInterrupt' not in err
  assert 'interrupted' in err
  assert sorted(p.name for p in out_dir.iterdir()) == ['05.protected.png']
  assert earlier.read_bytes() == b'earlier'


@pytest.mark.parametrize('argv, message', [
    (['--eps', 'nan'], 'argument --eps: must be a finite number'),
    (['--eps', 'inf'], 'argument --eps: must be a finite number'),
    (['--eps', '0'], 'argument --eps: must be in (0, 255]'),
    (['--eps', '-1'], 'argument --eps: must be in (0, 255]'),
    (['--steps', '0'], 'argument --steps: must be >= 1'),
    (['--seed', '99999999999999999999999'], 'argument --seed: must be in [0, 4294967295]'),
    (['--seed', '-1'], 'argument --seed: must be in [0, 4294967295]'),
    (['--max-pixels', '0'], 'argument --max-pixels: must be >= 1'),
    (['--out-dir', ''], 'argument --out-dir: empty path'),
])
def test_bad_flags_are_one_line_usage_errors(cli, argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.parse_args(['x.jpg', '--out-dir', 'o'] + argv)
  assert e.value.code == 2
  last = capsys.readouterr().err.strip().splitlines()[-1]
  assert message in last


def test_unwritable_out_dir_is_found_before_any_attack(cli, tmp_path, capsys, monkeypatch):
  afile = tmp_path / 'afile'
  afile.write_text('a regular file')
  monkeypatch.setattr(cli, 'load_protection',
                      lambda args: pytest.fail('models loaded before the out dir was checked'))
  with pytest.raises(SystemExit) as e:
    cli.main([str(afile), '--out-dir', str(afile / 'sub')])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and str(afile / 'sub') in err[0] and 'cannot write' in err[0]


def test_banner_says_what_the_views_are(cli):
  from fgsm_jax.protect.presets import PRESETS
  for preset in PRESETS.values():
    text = cli._banner(preset)
    assert 'views none' not in text and (
        'one view a step' in text or f'{preset.attack.eot_samples} random views' in text)
