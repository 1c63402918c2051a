"""JAX's persistent compilation cache, on by default for the photo scripts.

Protecting a photo runs one large jitted program (the attack loop through dlib's ResNet,
`fgsm_jax.protect.attack`) that takes 5-10 s to compile on a 2-core CPU and well under a
second to run; without a cache every new process pays that again. `enable` points JAX's
persistent cache at a user cache folder, so the second run of a script loads the compiled
programs from disk instead. `persistent_jit` also keeps the traced program (`jax.export`)
under ``<folder>/exported/``: a new process then skips tracing it too (~1 s a program).

Default folder: ``$FGSM_JAX_COMPILE_CACHE`` if set, else ``$XDG_CACHE_HOME/fgsm_jax/jax``,
else ``~/.cache/fgsm_jax/jax``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import pathlib
import warnings
from typing import Any, Callable, Sequence

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


# ---------------------------------------------------------------------------------------
# Exported programs: skipping JAX's tracing in a new process.
#
# The persistent cache above skips XLA's compile, but every new process still traces and
# lowers the attack program to find its cache key: about 1 s of CPU a program on a 2-core
# CPU. `persistent_jit` also keeps the traced program itself (`jax.export`, serialized
# StableHLO), keyed by everything the trace depends on, so a later process deserializes it
# (milliseconds) and goes straight to the compile cache.

EXPORTED_SUBDIR = 'exported'


class _Unkeyable(TypeError):
  """A static argument with no stable description across processes."""


def _static_key(v: Any) -> str:
  """A description of a static argument that is equal across processes exactly when the
  program traced from it is: values by repr, dataclasses field by field, functions by
  module and name (closures and lambdas have none: their captured values are not seen)."""
  if v is None or isinstance(v, (bool, int, float, str, bytes)):
    return repr(v)
  if isinstance(v, (tuple, list)):
    return f'{type(v).__name__}({",".join(_static_key(x) for x in v)})'
  if isinstance(v, dict):
    return 'dict(' + ','.join(f'{_static_key(k)}:{_static_key(x)}'
                              for k, x in sorted(v.items(), key=lambda kv: repr(kv[0]))) + ')'
  if dataclasses.is_dataclass(v) and not isinstance(v, type):
    kind = type(v)
    if 'flax' in kind.__module__ or any('flax' in b.__module__ for b in kind.__mro__):
      return f'{kind.__module__}.{kind.__qualname__}:{v!r}'  # a module's repr is its fields
    fields = ','.join(f'{f.name}={_static_key(getattr(v, f.name))}'
                      for f in dataclasses.fields(v))
    return f'{kind.__module__}.{kind.__qualname__}({fields})'
  if isinstance(v, functools.partial):  # its name is "functools.": key what it binds
    return (f'partial({_static_key(v.func)},{_static_key(v.args)},'
            f'{_static_key(dict(v.keywords))})')
  if callable(v):
    inner = getattr(v, '__wrapped__', v)
    name = f'{getattr(inner, "__module__", "")}.{getattr(inner, "__qualname__", "")}'
    if getattr(inner, '__closure__', None) or '<' in name or name == '.':
      raise _Unkeyable(f'{v!r} has no stable name')
    return name
  raise _Unkeyable(f'{type(v).__name__} has no stable description')


@functools.cache
def _source_digest() -> str:
  """sha256 of the fgsm_jax package's sources: any code change makes new keys."""
  root = pathlib.Path(__file__).resolve().parent
  h = hashlib.sha256()
  for path in sorted(root.rglob('*.py')):
    h.update(str(path.relative_to(root)).encode())
    h.update(path.read_bytes())
  return h.hexdigest()


def _program_key(name: str, static: dict, treedef: Any, leaves: Sequence[Any]) -> str:
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel
  avals = ';'.join(str(jax.typeof(x)) for x in leaves)  # shape, dtype, weak type
  import flax  # pylint: disable=import-outside-toplevel
  text = '\n'.join([name, _static_key(static), str(treedef), avals, _source_digest(),
                    jax.__version__, jaxlib.__version__, flax.__version__,
                    jax.default_backend(),
                    str(jax.devices()[0].device_kind), str(jax.config.jax_enable_x64),
                    str(jax.config.jax_default_matmul_precision)])
  return hashlib.sha256(text.encode()).hexdigest()


def persistent_jit(jitted: Callable, static_argnames: Sequence[str]) -> Callable:
  """``jitted`` (a ``jax.jit`` function with these static keyword arguments), with its traced
  programs kept on disk beside the compilation cache.

  Called with the same arguments it returns what ``jitted`` returns (the same program:
  bit-identical results). When the compilation cache is on (`enable`), the first call of a
  process for given static values and argument shapes loads the program exported by an
  earlier process under ``<cache>/exported/`` instead of tracing it (else traces, exports
  and writes it there). Keys: the function's name, the static values (`_static_key`), the
  arguments' tree and avals, the package's source digest, the jax / jaxlib / flax versions
  and the backend. With the cache off, or static values that have no stable key (a closure), it is
  ``jitted`` itself (warned once).
  """
  import jax  # pylint: disable=import-outside-toplevel
  static_argnames = tuple(static_argnames)
  name = f'{jitted.__module__}.{getattr(jitted, "__qualname__", jitted.__name__)}'
  programs: dict = {}
  warned: set = set()

  signature = inspect.signature(jitted)

  @functools.wraps(jitted)
  def call(*args, **kwargs):
    folder = jax.config.jax_compilation_cache_dir
    if not folder:
      return jitted(*args, **kwargs)
    # By name (static ones may come positionally); jit traces the same program either way.
    kwargs = signature.bind(*args, **kwargs).arguments
    static = {k: kwargs.pop(k) for k in static_argnames if k in kwargs}
    args = ()
    leaves, treedef = jax.tree.flatten((args, kwargs))
    memo = (tuple(static.items()), treedef, tuple(jax.typeof(x) for x in leaves))
    program = programs.get(memo)
    if program is None:
      try:
        key = _program_key(name, static, treedef, leaves)
      except _Unkeyable as e:
        if name not in warned:
          warned.add(name)
          warnings.warn(f'{name}: traced in every process ({e})', stacklevel=2)
        return jitted(*args, **kwargs, **static)
      program = programs[memo] = _load_or_export(
          pathlib.Path(folder) / EXPORTED_SUBDIR / f'{key}.bin', jitted, static, treedef,
          leaves)
    return program(*leaves)

  call.jitted = jitted
  # Programs this process holds: jit's own (cache off) plus those exported or loaded.
  call._cache_size = lambda: jitted._cache_size() + len(programs)  # pylint: disable=protected-access
  return call


def _load_or_export(path: pathlib.Path, jitted: Callable, static: dict, treedef: Any,
                    leaves: Sequence[Any]) -> Callable:
  """The program of ``jitted`` on these arguments as a function of the flat leaves: from
  ``path`` if an earlier process wrote it, else traced, exported and written there."""
  import jax  # pylint: disable=import-outside-toplevel
  from jax import export  # pylint: disable=import-outside-toplevel
  exported = None
  if path.is_file():
    try:
      exported = export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # pylint: disable=broad-except
      exported = None  # a truncated or foreign file: trace again and replace it
  if exported is None:
    def flat(*lv):
      args, kwargs = jax.tree.unflatten(treedef, lv)
      return jitted(*args, **kwargs, **static)
    exported = export.export(jax.jit(flat))(*leaves)
    try:
      from fgsm_jax import io as io_lib  # pylint: disable=import-outside-toplevel
      path.parent.mkdir(parents=True, exist_ok=True)
      io_lib.atomic_write_bytes(path, exported.serialize())
    except OSError as e:
      warnings.warn(f'{path}: cannot keep the exported program ({e.strerror or e})',
                    stacklevel=3)
  return jax.jit(exported.call)
