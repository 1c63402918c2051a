"""Protecting photo files: read upright, protect, verify, then save a metadata-free PNG once.

The input file is only read (EXIF orientation is applied to the decoded pixels). The
output is a PNG built from the pixel array alone -- no EXIF, GPS, ICC profile or text
chunks are carried over -- in the input's kind: grey stays grey (one perturbed channel),
an alpha channel is kept as it was (the colour under it is protected). After every attack
round the judges check the faces on the output's pixels; the PNG is encoded once, from the
last round's pixels, and must decode to exactly those pixels (and the file on disk too),
so the distances reported are those of the bytes written. The file is written once, atomically (temporary file,
then rename), only when the run finished: under ``<stem>.protected.png`` when every face
is protected, else nowhere (or, when asked, as ``<stem>.unverified.png``). An interrupted
or failed run never leaves or replaces a file under the protected name.
"""
from __future__ import annotations

import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from PIL import Image

from fgsm_jax import io as io_lib
from fgsm_jax import perceptual
from fgsm_jax.data import images as images_lib
from fgsm_jax.protect import photo as photo_lib
from fgsm_jax.protect import recognizer, registry
from fgsm_jax.protect.presets import Preset

OUTPUT_SUFFIX = '.protected.png'
# Where a result that failed verification goes, when the caller asks to keep it.
UNVERIFIED_SUFFIX = '.unverified.png'
# Largest photo protected, in pixels: the upright photo must fit (the detector and the
# verification scan it whole). The same limit as the loader's (fgsm_jax.data.MAX_PIXELS).
MAX_PIXELS = images_lib.MAX_PIXELS


class Interrupted(Exception):
  """The caller's stop flag was raised (Ctrl-C): the photo was abandoned, nothing written."""


def output_path(photo: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
  """Where the protected copy of ``photo`` goes: ``out_dir/<stem>.protected.png``."""
  return Path(out_dir) / f'{Path(photo).stem}{OUTPUT_SUFFIX}'


def unverified_path(out_path: str | os.PathLike) -> Path:
  """``<stem>.unverified.png`` beside ``<stem>.protected.png``."""
  out_path = Path(out_path)
  name = out_path.name
  stem = name[:-len(OUTPUT_SUFFIX)] if name.endswith(OUTPUT_SUFFIX) else out_path.stem
  return out_path.with_name(f'{stem}{UNVERIFIED_SUFFIX}')


_PNG_MODES = {(2, 1): 'L', (3, 1): 'L', (3, 2): 'LA', (3, 3): 'RGB', (3, 4): 'RGBA'}


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
  """PNG bytes of a uint8 array (H x W grey, H x W x 1/2/3/4: L, LA, RGB, RGBA), with no
  metadata chunks at all."""
  pixels = np.ascontiguousarray(pixels)
  channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
  mode = _PNG_MODES.get((pixels.ndim, channels))
  if pixels.dtype != np.uint8 or mode is None:
    raise ValueError(f'expected uint8 H x W or H x W x 1/2/3/4, got {pixels.dtype} '
                     f'{pixels.shape}')
  if pixels.ndim == 3 and channels == 1:
    pixels = pixels[:, :, 0]
  buf = io.BytesIO()
  Image.fromarray(pixels, mode).save(buf, format='PNG', compress_level=compress_level)
  return buf.getvalue()


def compose(protected_rgb: np.ndarray, photo: images_lib.Photo) -> np.ndarray:
  """The output pixels in the input's kind: grey (the mean of the three perturbed channels,
  rounded: within the budget, since the three started equal) and/or the original alpha."""
  out = protected_rgb
  if photo.grey:
    out = np.round(protected_rgb.astype(np.float32).mean(axis=-1)).astype(np.uint8)[..., None]
  if photo.alpha is not None:
    out = np.concatenate([out, photo.alpha[..., None]], axis=-1)
  return out[..., 0] if out.shape[-1] == 1 else out


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
  """What real dlib sees of composed pixels: the colour (or grey) channels, as RGB."""
  if pixels.ndim == 2:
    return np.repeat(pixels[..., None], 3, axis=-1)
  colour = pixels[..., :1] if pixels.shape[-1] in (1, 2) else pixels[..., :3]
  return np.ascontiguousarray(np.broadcast_to(colour, pixels.shape[:2] + (3,)))


def check_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> None:
  """Raises ImageError (one line) if the image header says more than ``max_pixels``
  (a decompression bomb included). Unreadable headers are left to the loader."""
  previous = Image.MAX_IMAGE_PIXELS
  try:
    Image.MAX_IMAGE_PIXELS = None  # ours is the limit; see images.load_photo
    with Image.open(path) as im:
      w, h = im.size
  except Exception:  # pylint: disable=broad-except
    return
  finally:
    Image.MAX_IMAGE_PIXELS = previous
  if w * h > max_pixels:
    raise images_lib.ImageError(
        f'{path}: too many pixels ({w}x{h} = {w * h} > limit {max_pixels})')


@dataclasses.dataclass
class FileResult:
  """What happened to one input file.

  Attributes:
    path, out_path: the input and the file written (None: nothing written). out_path is
      ``<stem>.protected.png`` when verified, ``<stem>.unverified.png`` when a result that
      failed verification was kept on request.
    faces: one `photo.FaceResult` per face (empty on error).
    seconds: wall time for this file, verification included.
    error: a one-line message when the file could not be protected, else None.
    cpu_seconds: CPU time of the process (all threads) for this file: on a shared machine
      a steadier measure of the work than wall time.
    verified: every face is protected (real dlib distance > 0.6, or no face found there).
    perceptual: with ``measure``, per face (as ``faces``): {'protected': what a person
      sees of the change on the face region (`fgsm_jax.perceptual.face_measures`),
      'jpeg75', 'jpeg50': the same measures of a JPEG re-save of the original}; not timed.
  """
  path: Path
  out_path: Path | None
  faces: list[photo_lib.FaceResult]
  seconds: float
  error: str | None = None
  cpu_seconds: float | None = None
  verified: bool = False
  perceptual: list[dict[str, Any]] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    """Written under the protected name and every face protected."""
    return self.error is None and self.verified and bool(self.faces)


def protect_file(path: str | os.PathLike, out_path: str | os.PathLike, preset: Preset,
                 key: jax.Array, *, recognizers: Sequence[photo_lib.Recognizer],
                 judges: Sequence[str] | None = None,
                 models: recognizer.RealDlib | None = None,
                 max_pixels: int = MAX_PIXELS, keep_unverified: bool = False,
                 stop: Callable[[], bool] | None = None,
                 person: Sequence[recognizer.FaceRecord] = (),
                 clean: Sequence[recognizer.FaceRecord] | None = None,
                 measure: bool = False, carry: photo_lib.Carried | None = None,
                 target_identity: Mapping[str, np.ndarray] | None = None) -> FileResult:
  """Protects one photo file and, when every face is protected, writes ``out_path``.

  Args:
    path: the photo (read only).
    out_path: ``<stem>.protected.png``; written once, atomically, after verification.
    preset, key, recognizers, judges, models, person, carry, target_identity: as
      `photo.protect_photo`.
    clean: the faces of this file's photo as `images.load_photo` reads it, if already
      described (every judge's descriptors; `photo.protect_photo`'s ``clean``).
    max_pixels: larger photos are refused from the header.
    keep_unverified: write a result whose faces are not all protected as
      ``unverified_path(out_path)`` (default: write nothing).
    stop: polled between attack rounds; when it returns True the photo is abandoned and
      `Interrupted` raised (nothing written).
    measure: also measure what a person sees of each face's change (``perceptual``),
      after the timing ends.

  Never raises for a bad input: a missing, unreadable or too large file, or a photo with
  no face, comes back as ``FileResult.error`` (one line naming the file); nothing is
  written then. A result that fails verification comes back with ``verified=False`` and
  ``error`` saying so.
  """
  path, out_path = Path(path), Path(out_path)
  start, cpu_start = time.perf_counter(), time.process_time()
  stop = stop or (lambda: False)

  def failed(message: str, faces=()) -> FileResult:
    return _measured(FileResult(path, None, list(faces), time.perf_counter() - start, message,
                                time.process_time() - cpu_start))

  def _measured(result: FileResult) -> FileResult:
    if measure and result.faces and 'rgb' in last:
      original = _as_rgb(photo.rgb)
      result.perceptual = [{'protected': perceptual.face_measures(original, last['rgb'], f.box),
                            **perceptual.jpeg_reference(original, f.box)} for f in result.faces]
    return result

  try:
    for target in (out_path, unverified_path(out_path)):
      if path.exists() and target.exists() and os.path.samefile(path, target):
        return failed(f'{path}: output {target} would overwrite the input')
    check_size(path, max_pixels)
    photo = images_lib.load_photo(path, max_pixels)
  except images_lib.ImageError as e:
    return failed(str(e))
  except OSError as e:
    return failed(f'{path}: cannot read ({e.strerror or e})')
  if stop():
    raise Interrupted(str(path))
  models = models or recognizer.load_real_dlib()
  last: dict[str, Any] = {}

  def check(protected: np.ndarray, names: Sequence[str], known=None):
    # Runs after each round: the judges see the pixels the file will hold (in the input's
    # kind). PNG is lossless, so they are the decoded bytes; the bytes are made once, from
    # the last round's pixels, and checked to decode to them before anything is written.
    # ``known``: faces found on these same pixels, to complete with more descriptors.
    if stop():
      raise Interrupted(str(path))
    if known is None:
      last['pixels'] = compose(protected, photo)
      last['rgb'] = _as_rgb(last['pixels'])
    return recognizer.describe(last['rgb'], models, recognizers=names, known=known)

  try:
    _, faces = photo_lib.protect_photo(photo.rgb, preset, key, recognizers=recognizers,
                                       judges=judges, models=models, check=check,
                                       person=person, clean=clean, carry=carry,
                                       target_identity=target_identity)
  except photo_lib.NoFaceError:
    return failed(f'{path}: no face found (nothing to protect; no output written)')
  verified = all(f.protected for f in faces)
  target = out_path if verified else unverified_path(out_path)
  if not verified and not keep_unverified:
    short = sorted({f'{n} {d:.3f} <= {registry.spec(n).threshold}' for f in faces
                    for n, d in f.distances.items() if not f.fools(n)})
    kept = f'; the earlier {out_path} is left as it was' if out_path.exists() else ''
    return failed(f'{path}: not protected (distance {", ".join(short)}); no output '
                  f'written{kept} (--keep-unverified writes it as {target.name}; a larger '
                  "budget, --eps above the preset's, protects more but shows)", faces)
  data = encode_png(last['pixels'])
  with Image.open(io.BytesIO(data)) as im:
    if not np.array_equal(np.asarray(im), last['pixels']):  # never: PNG is lossless
      return failed(f'{path}: the PNG encoding differs from the pixels verified; no output '
                    'written', faces)
  try:
    io_lib.atomic_write_bytes(target, data)
    with Image.open(target) as im:  # the file on disk holds the pixels verified
      if not np.array_equal(np.asarray(im), last['pixels']):
        target.unlink()
        return failed(f'{path}: {target} read back differs from what was verified; removed',
                      faces)
  except OSError as e:
    return failed(f'{path}: cannot write {target} ({e.strerror or e})', faces)
  # verified=False here means kept on request as <stem>.unverified.png: not an error.
  return _measured(FileResult(path, target, faces, time.perf_counter() - start, None,
                              time.process_time() - cpu_start, verified))
