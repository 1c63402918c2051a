"""Reading face photos from disk, and finding them in a one-folder-per-identity layout.

Everything here only reads: files are opened read-only and never written back (EXIF
orientation is applied to the decoded pixels, not to the file).
"""
from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Largest image we decode, in pixels (width * height). 40 MP is above any camera photo a
# face dataset holds (the GT photos are 0.3 MP) and keeps one decoded RGB image under
# 120 MB. It is checked from the header, before any pixel is decoded; PIL's own
# decompression-bomb guard (Image.MAX_IMAGE_PIXELS) is lifted while our loader opens a file,
# so this limit (or the caller's) is the one that applies.
MAX_PIXELS = 40_000_000

# File name suffixes (lower case) taken as images in a dataset folder.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.pgm', '.ppm', '.bmp')


class ImageError(ValueError):
  """An image file that cannot be used; str() is one line naming the file and the problem."""


class DatasetError(ValueError):
  """A dataset folder that cannot be used; str() is one line naming the folder and the problem."""


@dataclasses.dataclass(frozen=True)
class Photo:
  """A decoded photo, upright, split into what the attack sees and what it must keep.

  Attributes:
    rgb: uint8 H x W x 3 (grey photos replicated to 3 channels).
    alpha: uint8 H x W, or None when the file has no transparency.
    grey: the file is greyscale (1-bit, 8/16-bit grey, grey + alpha): write it back as grey.
  """
  rgb: np.ndarray
  alpha: np.ndarray | None
  grey: bool


def load_photo(path: str | os.PathLike, max_pixels: int | None = None) -> Photo:
  """Reads an image file upright, keeping whether it is grey and its alpha channel.

  Args:
    path: an image file PIL can read (JPEG, PNG, PGM/PPM, BMP, ...).
    max_pixels: larger images (width x height, from the header) are refused before any
      pixel is decoded (default: MAX_PIXELS, read at call time). PIL's own decompression-bomb limit is lifted for the file (ours is
      the one that applies), so neither its warning nor its error shows up.

  Returns:
    `Photo`, with the EXIF orientation applied (H, W are the upright size); 16-bit grey
    is reduced to its high 8 bits; palette images with transparency get their alpha.

  Raises:
    ImageError: the file is missing, not a file, unreadable or corrupt, or has more than
      ``max_pixels`` pixels. The message is one line naming the file.
  """
  path = Path(path)
  max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
  if not path.exists():
    raise ImageError(f'{path}: no such file')
  if not path.is_file():
    raise ImageError(f'{path}: not a file')
  previous = Image.MAX_IMAGE_PIXELS
  try:
    # Why lift PIL's limit: it warns above 89 MP and raises above 179 MP inside open(),
    # before we see the size, so --max-pixels above 40 MP could not take effect. Ours is
    # checked on the header below, before decoding.
    Image.MAX_IMAGE_PIXELS = None
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      with Image.open(path) as im:  # Lazy: reads the header only.
        width, height = im.size
        if width * height > max_pixels:
          raise ImageError(
              f'{path}: too many pixels ({width}x{height} > MAX_PIXELS={max_pixels})')
        im.load()
        im = ImageOps.exif_transpose(im)
        return _to_photo(im, path)
  except ImageError:
    raise
  except Image.DecompressionBombError as e:
    raise ImageError(f'{path}: too many pixels ({_one_line(e)})') from None
  except UnidentifiedImageError:
    raise ImageError(f'{path}: not a readable image (unknown or corrupt format)') from None
  except MemoryError:
    raise ImageError(f'{path}: too large to decode in memory') from None
  except Exception as e:  # pylint: disable=broad-except
    # PIL reports truncated or damaged data as OSError, SyntaxError, ValueError, and
    # damaged headers/EXIF as struct.error, IndexError, ...: all mean the same here.
    raise ImageError(f'{path}: corrupt or unreadable image ({_one_line(e)})') from None
  finally:
    Image.MAX_IMAGE_PIXELS = previous


def load_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
  """Reads an image file as RGB pixels, upright.

  Args:
    path: an image file PIL can read (JPEG, PNG, PGM/PPM, BMP, ...).
    max_pixels: larger images are refused from the header (see `load_photo`).

  Returns:
    uint8 array, H x W x 3, with the EXIF orientation applied (so H, W are the upright
    size). Grey images are replicated to 3 channels; alpha is dropped (`load_photo` keeps
    it); 16-bit grey is reduced to its high 8 bits.

  Raises:
    ImageError: the file is missing, not a file, unreadable or corrupt, or has more than
      ``max_pixels`` pixels.
  """
  return load_photo(path, max_pixels).rgb


_GREY_MODES = ('1', 'L', 'LA', 'La')
_ALPHA_MODES = ('RGBA', 'RGBa', 'LA', 'La', 'PA')


def _to_photo(im: Image.Image, path: Path) -> Photo:
  if im.mode.startswith('I;16'):
    # 16-bit grey (e.g. PGM with maxval > 255): keep the high byte.
    grey = (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
    return Photo(np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)), None, True)
  if im.mode in ('I', 'F'):
    raise ImageError(f'{path}: unsupported pixel mode {im.mode!r} (32-bit)')
  has_alpha = im.mode in _ALPHA_MODES or (im.mode == 'P' and 'transparency' in im.info)
  grey = im.mode in _GREY_MODES
  alpha = None
  if has_alpha:
    rgba = im.convert('RGBA')  # also un-premultiplies RGBa / La
    alpha = np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8)[:, :, 3])
    im = rgba
  rgb = np.asarray(im.convert('RGB') if im.mode != 'RGB' else im, dtype=np.uint8)
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ImageError(f'{path}: decoded to shape {rgb.shape}, expected H x W x 3')
  return Photo(np.ascontiguousarray(rgb), alpha, grey)


def _one_line(e: BaseException) -> str:
  text = ' '.join(str(e).split())
  return text or type(e).__name__


def natural_key(name: str) -> tuple:
  """Sort key putting 's2' before 's10' (digit runs compare as numbers)."""
  return tuple((0, int(part), '') if part.isdigit() else (1, 0, part.lower())
               for part in re.split(r'(\d+)', name) if part)


def is_image_file(path: Path) -> bool:
  """Whether `path` is a visible regular file (or link to one) with an image suffix."""
  return (not path.name.startswith('.') and path.suffix.lower() in IMAGE_SUFFIXES
          and path.is_file())


def identity_folders(root: str | os.PathLike) -> list[tuple[str, list[Path]]]:
  """Lists a dataset laid out as one folder per identity, its images inside.

  Args:
    root: the dataset folder (e.g. gt_db/ holding s01/ .. s50/).

  Returns:
    [(identity, [image paths])], identities in natural order (s1, s2, .., s10), images in
    natural order too. Only folders holding at least one image are listed; hidden entries,
    files directly under `root` and files without an image suffix (README, ...) are ignored.

  Raises:
    DatasetError: `root` is missing or not a folder, or no folder under it holds images.
  """
  root = Path(root)
  if not root.exists():
    raise DatasetError(f'{root}: dataset folder does not exist')
  if not root.is_dir():
    raise DatasetError(f'{root}: not a folder')
  found = []
  for folder in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
    if folder.name.startswith('.') or not folder.is_dir():
      continue
    images = sorted((p for p in folder.iterdir() if is_image_file(p)),
                    key=lambda p: natural_key(p.name))
    if images:
      found.append((folder.name, images))
  if not found:
    raise DatasetError(
        f'{root}: no identity folders with images ({", ".join(IMAGE_SUFFIXES)}) found')
  return found
