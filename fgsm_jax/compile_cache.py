"""JAX's persistent compilation cache, on by default for the photo scripts.

Protecting a photo runs one large jitted program (the attack loop through dlib's ResNet,
`fgsm_jax.protect.attack`) that takes 5-10 s to compile on a 2-core CPU and well under a
second to run; without a cache every new process pays that again. `enable` points JAX's
persistent cache at a user cache folder, so the second run of a script loads the compiled
programs from disk instead.

Default folder: ``$FGSM_JAX_COMPILE_CACHE`` if set, else ``$XDG_CACHE_HOME/fgsm_jax/jax``,
else ``~/.cache/fgsm_jax/jax``.
"""
from __future__ import annotations

import os
import pathlib

# Programs that took at least this long to compile are written to the cache. The attack and
# its final check take seconds; JAX's default (1 s) would skip the check's forward pass on a
# fast machine, while 0 would write hundreds of tiny eager ops (milliseconds each) as files.
MIN_COMPILE_SECONDS = 0.1


class CompileCacheError(ValueError):
  """The cache folder cannot be created or written."""


def default_dir() -> pathlib.Path:
  """The cache folder used when none is given (see the module docstring)."""
  if os.environ.get('FGSM_JAX_COMPILE_CACHE'):
    return pathlib.Path(os.environ['FGSM_JAX_COMPILE_CACHE']).expanduser()
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'fgsm_jax' / 'jax'


def enable(path: str | os.PathLike | None = None,
           min_compile_seconds: float = MIN_COMPILE_SECONDS) -> pathlib.Path:
  """Turns JAX's persistent compilation cache on, in ``path`` (default `default_dir()`).

  Call it before the first jitted call of the process (programs compiled earlier are not
  written). Returns the folder.

  Raises:
    CompileCacheError: the folder cannot be created or is not writable (one-line message
      naming it).
  """
  import jax
  folder = pathlib.Path(path).expanduser() if path is not None else default_dir()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise CompileCacheError(f'{folder}: cannot create the compilation cache folder '
                            f'({e.strerror or e})') from None
  if not os.access(folder, os.W_OK | os.X_OK):
    raise CompileCacheError(f'{folder}: the compilation cache folder is not writable')
  jax.config.update('jax_compilation_cache_dir', str(folder))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', float(min_compile_seconds))
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return folder


def add_arguments(parser) -> None:
  """``--compile-cache DIR`` and ``--no-compile-cache`` on an argparse parser."""
  group = parser.add_mutually_exclusive_group()
  group.add_argument('--compile-cache', type=pathlib.Path, default=None, metavar='DIR',
                     help='keep compiled programs in DIR across runs (JAX persistent cache; '
                          f'default {default_dir()}, or $FGSM_JAX_COMPILE_CACHE)')
  group.add_argument('--no-compile-cache', action='store_true',
                     help='do not read or write the compilation cache (every run compiles)')


def enable_from_args(args) -> pathlib.Path | None:
  """`enable` as the flags of `add_arguments` ask; None when turned off."""
  if getattr(args, 'no_compile_cache', False):
    return None
  return enable(getattr(args, 'compile_cache', None))
