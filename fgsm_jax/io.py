"""Atomic writes: an output is either the old file or the complete new one, never a torn one."""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def _sorted_keys(obj: Any) -> Any:
  """Dicts with sorted keys, numbers as numbers ("2" before "16", e.g. eps), recursively."""
  if isinstance(obj, dict):
    def key(k):
      try:
        return (0, float(k), "")
      except (TypeError, ValueError):
        return (1, 0.0, str(k))
    return {k: _sorted_keys(obj[k]) for k in sorted(obj, key=key)}
  if isinstance(obj, (list, tuple)):
    return [_sorted_keys(v) for v in obj]
  return obj


def write_json(path: str | os.PathLike, obj: Any) -> pathlib.Path:
  """Writes ``obj`` as indented JSON, atomically; keys sorted, numeric ones by value."""
  return atomic_write_bytes(path, (json.dumps(_sorted_keys(obj), indent=2) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
  with open(path, "rb") as f:
    return json.load(f)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> pathlib.Path:
  """Saves a matplotlib figure atomically (format from the suffix)."""
  import io
  path = pathlib.Path(path)
  buf = io.BytesIO()
  fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
  return atomic_write_bytes(path, buf.getvalue())
