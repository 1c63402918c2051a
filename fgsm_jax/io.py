"""Atomic writes: an output is either the old file or the complete new one, never a torn one."""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any, Callable


def _umask() -> int:
  # The only portable way to read the umask is to set it; put it straight back.
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``.

  The file gets the mode any new file would (0666 less the umask: 0644 by default), not
  the 0600 of the temporary file it starts as.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
  try:
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def read_bytes(path: str | os.PathLike, error: Callable[[str], Exception],
               what: str = '') -> bytes:
  """The bytes of ``path``; a missing or unreadable file raises ``error`` with one line
  naming it (``what`` says what the file was meant to be, e.g. "dlib model")."""
  try:
    return pathlib.Path(path).read_bytes()
  except OSError as e:
    raise error(f'{path}: cannot read{" " + what if what else ""}: {e.strerror or e}') from None


def _sorted_keys(obj: Any) -> Any:
  """Dicts with sorted keys, numbers as numbers ("2" before "16", e.g. eps), recursively."""
  if isinstance(obj, dict):
    def key(k):
      try:
        return (0, float(k), '')
      except (TypeError, ValueError):
        return (1, 0.0, str(k))
    return {k: _sorted_keys(obj[k]) for k in sorted(obj, key=key)}
  if isinstance(obj, (list, tuple)):
    return [_sorted_keys(v) for v in obj]
  return obj


def eps_key(eps_255: float) -> str:
  """JSON key of an eps on the 0-255 scale: '5' for 5.0, '0.5' for 0.5."""
  return f'{eps_255:g}'


def write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = True) -> pathlib.Path:
  """Writes ``obj`` as indented JSON, atomically; keys sorted, numeric ones by value
  (``sort_keys=False``: in the dicts' own order)."""
  obj = _sorted_keys(obj) if sort_keys else obj
  return atomic_write_bytes(path, (json.dumps(obj, indent=2) + '\n').encode())


def read_json(path: str | os.PathLike) -> Any:
  with open(path, 'rb') as f:
    return json.load(f)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> pathlib.Path:
  """Saves a matplotlib figure atomically (format from the suffix)."""
  import io
  path = pathlib.Path(path)
  buf = io.BytesIO()
  fig.savefig(buf, format=path.suffix.lstrip('.') or 'png', **kwargs)
  return atomic_write_bytes(path, buf.getvalue())
