"""Protecting photo files: read upright, protect, save a metadata-free PNG, verify it.

The input file is only read (EXIF orientation is applied to the decoded pixels). The
output is a PNG built from the pixel array alone -- no EXIF, GPS, ICC profile or text
chunks are carried over -- written atomically (temporary file, then rename). Real dlib
checks the faces on the file read back from disk after every attack round, so the
distances reported are those of the saved file.
"""
from __future__ import annotations

import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
from PIL import Image, UnidentifiedImageError

from fgsm_jax import io as io_lib
from fgsm_jax.data import images as images_lib
from fgsm_jax.protect import photo as photo_lib
from fgsm_jax.protect import recognizer
from fgsm_jax.protect.presets import Preset

OUTPUT_SUFFIX = '.protected.png'
# Largest photo protected, in pixels: the upright photo must fit (the detector and the
# verification scan it whole). The same limit as the loader's (fgsm_jax.data.MAX_PIXELS).
MAX_PIXELS = images_lib.MAX_PIXELS


def output_path(photo: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
  """Where the protected copy of ``photo`` goes: ``out_dir/<stem>.protected.png``."""
  return Path(out_dir) / f'{Path(photo).stem}{OUTPUT_SUFFIX}'


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
  """PNG bytes of a uint8 H x W x 3 array, with no metadata chunks at all."""
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(rgb), 'RGB').save(buf, format='PNG',
                                                          compress_level=compress_level)
  return buf.getvalue()


def check_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> None:
  """Raises ImageError (one line) if the image header says more than ``max_pixels``.

  Unreadable headers are left to `load_rgb`, which names the problem.
  """
  try:
    with Image.open(path) as im:
      w, h = im.size
  except (OSError, UnidentifiedImageError, ValueError):
    return
  if w * h > max_pixels:
    raise images_lib.ImageError(
        f'{path}: too many pixels ({w}x{h} = {w * h} > limit {max_pixels})')


@dataclasses.dataclass
class FileResult:
  """What happened to one input file.

  Attributes:
    path, out_path: the input and where its protected copy was written (None: not written).
    faces: one `photo.FaceResult` per face (empty on error).
    seconds: wall time for this file, verification included.
    error: a one-line message when the file could not be protected, else None.
    cpu_seconds: CPU time of the process (all threads) for this file: on a shared machine
      a steadier measure of the work than wall time.
  """
  path: Path
  out_path: Path | None
  faces: list[photo_lib.FaceResult]
  seconds: float
  error: str | None = None
  cpu_seconds: float | None = None

  @property
  def ok(self) -> bool:
    """Written and every face protected (real dlib distance > 0.6, or no face found)."""
    return self.error is None and bool(self.faces) and all(f.protected for f in self.faces)


def protect_file(path: str | os.PathLike, out_path: str | os.PathLike, preset: Preset,
                 key: jax.Array, *, recognizers: Sequence[photo_lib.Recognizer],
                 judges: Sequence[str] | None = None,
                 models: recognizer.RealDlib | None = None,
                 max_pixels: int = MAX_PIXELS) -> FileResult:
  """Protects one photo file and writes ``out_path`` (a metadata-free PNG).

  Never raises for a bad input: a missing, unreadable or too large file, or a photo with
  no face, comes back as ``FileResult.error`` (one line naming the file); nothing is
  written then.
  """
  path, out_path = Path(path), Path(out_path)
  start, cpu_start = time.perf_counter(), time.process_time()
  models = models or recognizer.load_real_dlib()

  def failed(message: str) -> FileResult:
    return FileResult(path, None, [], time.perf_counter() - start, message,
                      time.process_time() - cpu_start)

  try:
    if path.exists() and out_path.exists() and os.path.samefile(path, out_path):
      return failed(f'{path}: output {out_path} would overwrite the input')
    check_size(path, max_pixels)
    rgb = images_lib.load_rgb(path)
  except images_lib.ImageError as e:
    return failed(str(e))

  seeing = tuple(dict.fromkeys([r.name for r in recognizers] + list(judges or ())))

  def save_and_check(protected: np.ndarray):
    io_lib.atomic_write_bytes(out_path, encode_png(protected))
    return recognizer.describe(images_lib.load_rgb(out_path), models, recognizers=seeing)

  try:
    _, faces = photo_lib.protect_photo(rgb, preset, key, recognizers=recognizers,
                                       judges=judges, models=models, check=save_and_check)
  except photo_lib.NoFaceError:
    return failed(f'{path}: no face found (nothing to protect; no output written)')
  except images_lib.ImageError as e:  # the output could not be read back
    return failed(f'{path}: {e}')
  except OSError as e:
    return failed(f'{path}: cannot write {out_path} ({e.strerror or e})')
  return FileResult(path, out_path, faces, time.perf_counter() - start, None,
                    time.process_time() - cpu_start)
