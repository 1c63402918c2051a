"""Command-line plumbing the experiment scripts share: argparse types, help, one-line errors.

Every script takes its numbers through these types, so NaN, inf, negative or out-of-range
values are usage errors (exit 2, one line naming the flag) in all of them alike, and its
``--help`` through `parser`, so it starts with the script's one-sentence summary and shows
no "default: None" for required or unset options.
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import signal
import sys
import tempfile
from typing import Callable, NoReturn

# jax.random.key takes a uint32 seed without jax_enable_x64; larger ones overflow inside.
MAX_SEED = 2**32 - 1


def one_line(e: BaseException | str) -> str:
  """The message of ``e`` on one line (its type name when it has no message)."""
  text = ' '.join(str(e).split())
  return text or (type(e).__name__ if isinstance(e, BaseException) else '')


def fail(message: str, code: int = 1) -> NoReturn:
  """Prints ``error: <message>`` (one line, no traceback) on stderr and exits ``code``."""
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  raise SystemExit(code)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False, name: str = ''
           ) -> Callable[[str], float]:
  """An argparse ``type`` for a finite number in [lo, hi] (either end open or absent).

  NaN, inf and out-of-range values raise ArgumentTypeError, which argparse turns into a
  one-line usage error (exit 2). ``integer=True`` parses an int (no float rounding).
  """
  def show(v: float) -> str:
    return str(int(v)) if integer else f'{v:g}'

  lo_text = '' if lo is None else f"{'(' if lo_open else '['}{show(lo)}"
  hi_text = '' if hi is None else f"{show(hi)}{')' if hi_open else ']'}"
  if lo is not None and hi is not None:
    want = f'in {lo_text}, {hi_text}'
  elif lo is not None:
    want = f"{'>' if lo_open else '>='} {show(lo)}"
  elif hi is not None:
    want = f"{'<' if hi_open else '<='} {show(hi)}"
  else:
    want = ''

  def parse(text: str):
    try:
      value = int(text) if integer else float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"expected {'an integer' if integer else 'a number'}, got {text!r}") from None
    if not math.isfinite(value):
      raise argparse.ArgumentTypeError(f'{name} must be a finite number, got {text!r}'.lstrip())
    bad = lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and (value >= hi if hi_open else value > hi)
    if bad:
      raise argparse.ArgumentTypeError(f'{name} must be {want}, got {text!r}'.lstrip())
    return value

  parse.__name__ = 'integer' if integer else 'number'  # argparse names it in errors
  return parse


def positive_int(text: str) -> int:
  """argparse type: an integer >= 1."""
  return number(1, integer=True)(text)


def non_negative_int(text: str) -> int:
  """argparse type: an integer >= 0."""
  return number(0, integer=True)(text)


def seed(text: str) -> int:
  """argparse type: a PRNG seed in [0, 2**32 - 1] (what jax.random.key accepts)."""
  return number(0, MAX_SEED, integer=True)(text)


def number_list(lo: float, hi: float, name: str = '') -> Callable[[str], list[float]]:
  """argparse type: comma-separated finite numbers, each in [lo, hi], at least one."""
  one = number(lo, hi, name=name)

  def parse(text: str) -> list[float]:
    parts = [v.strip() for v in text.split(',') if v.strip()]
    if not parts:
      raise argparse.ArgumentTypeError(f'expected at least one number, got {text!r}')
    for v in parts:
      try:
        float(v)
      except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated numbers, got {text!r}') from None
    return [one(v) for v in parts]

  parse.__name__ = 'list'
  return parse


def eps_list_255(text: str) -> list[float]:
  """argparse type: '0,1,2,4', budgets on the 0-255 scale, each in [0, 255]."""
  return number_list(0, 255, name='eps')(text)


def recognizer_list(text: str) -> tuple[str, ...]:
  """Parses 'dlib,mobileface' (names of `fgsm_jax.protect.registry.NAMES`)."""
  from fgsm_jax.protect.registry import NAMES  # pylint: disable=import-outside-toplevel
  names = tuple(dict.fromkeys(v.strip() for v in text.split(',') if v.strip()))
  bad = [n for n in names if n not in NAMES]
  if bad or not names:
    raise argparse.ArgumentTypeError(
        f"expected a comma-separated list of {', '.join(NAMES)}, got {text!r}")
  return names


def with_preset_recognizers(args: argparse.Namespace) -> argparse.Namespace:
  """``args`` with ``recognizers`` set to ``args.preset``'s own when --recognizers was not
  given (None): `transfer` attacks and checks with all five, the others with two."""
  if getattr(args, 'recognizers', None) is None:
    from fgsm_jax.protect.presets import PRESETS  # pylint: disable=import-outside-toplevel
    args.recognizers = tuple(PRESETS[args.preset].recognizers)
  return args


def existing_dir(text: str) -> pathlib.Path:
  """argparse type: a folder that exists (not a file)."""
  path = pathlib.Path(text)
  if not text:
    raise argparse.ArgumentTypeError('empty path')
  if not path.exists():
    raise argparse.ArgumentTypeError(f'{text}: no such folder')
  if not path.is_dir():
    raise argparse.ArgumentTypeError(f'{text}: not a folder')
  return path


def check_dir(path: str | os.PathLike, what: str = 'folder') -> pathlib.Path:
  """Raises OSError (one line naming ``path``) unless it is an existing folder."""
  path = pathlib.Path(path)
  if not path.exists():
    raise OSError(f'{path}: {what} does not exist')
  if not path.is_dir():
    raise OSError(f'{path}: {what} is not a folder')
  return path


def nonempty_path(text: str) -> pathlib.Path:
  """argparse type: a path that is not '' (which pathlib would read as the current folder)."""
  if not text.strip():
    raise argparse.ArgumentTypeError("empty path (give a folder, e.g. '.')")
  return pathlib.Path(text)


def writable_dir(path: str | os.PathLike, what: str = 'output folder') -> pathlib.Path:
  """Creates ``path`` (and parents) if needed and checks a file can be written in it.

  Called before any long computation, so a bad output folder costs nothing.

  Raises:
    OSError: with a one-line message naming the folder and the problem.
  """
  path = pathlib.Path(path)
  try:
    if path.exists() and not path.is_dir():
      raise OSError(f'{path}: {what} is not a folder')
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path, prefix='.write-test.'):
      pass
  except OSError as e:
    if e.errno is None:
      raise
    raise OSError(f'{path}: cannot write the {what} ({e.strerror or one_line(e)})') from None
  return path


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
  """Raw description (the docstring as written), defaults shown only where they say
  something: not for required options, unset (None) ones or flags."""

  def _get_help_string(self, action: argparse.Action) -> str:
    if (action.required or action.default in (None, False, [])
        or '%(default)' in (action.help or '') or 'default' in (action.help or '')):
      return action.help or ''
    return super()._get_help_string(action)


def parser(doc: str, **kwargs) -> argparse.ArgumentParser:
  """An ArgumentParser whose --help is the script's docstring (first line: what it does)."""
  return argparse.ArgumentParser(description=doc.strip(), formatter_class=_Formatter, **kwargs)


class StopFlag:
  """Ctrl-C as a request: the first SIGINT sets the flag (the caller stops at its next
  check, between photos or attack rounds, and exits 130); a second one exits at once.

  Use as a context manager; the previous handler is restored on exit. Why not let
  KeyboardInterrupt fly: raised inside a running XLA computation it leaves threads behind
  and the interpreter's teardown then crashed (exit 139) in 2 of 3 tries.
  """

  def __init__(self):
    self.stopped = False
    self._previous = None

  def __call__(self) -> bool:
    return self.stopped

  def _handle(self, signum, frame):  # noqa: ARG002
    if self.stopped:  # second Ctrl-C: no more waiting
      print('interrupted', file=sys.stderr, flush=True)
      os._exit(130)
    self.stopped = True
    print('stopping after the current step (Ctrl-C again to quit now)', file=sys.stderr,
          flush=True)

  def __enter__(self) -> 'StopFlag':
    try:
      self._previous = signal.signal(signal.SIGINT, self._handle)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
      self._previous = None
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)


def load_protection(args: argparse.Namespace, names=None):
  """What the photo scripts (protect_photos, privacy_eval) need, from their flags: the preset
  with the --eps/--steps/--attack overrides, the Flax ports of the recognizers ``names``
  (default ``args.recognizers``) and real dlib's models. Turns the persistent compilation
  cache on first (--compile-cache, --no-compile-cache; `fgsm_jax.compile_cache`). A missing
  or corrupt model file exits with a one-line message."""
  # pylint: disable=import-outside-toplevel
  from fgsm_jax import compile_cache
  try:
    compile_cache.enable_from_args(args)
  except compile_cache.CompileCacheError as e:
    fail(str(e))
  from fgsm_jax.protect import recognizer, registry
  from fgsm_jax.protect.presets import PRESETS, with_fields, with_overrides
  preset = with_overrides(PRESETS[args.preset], eps=args.eps, steps=args.steps,
                          attack=args.attack)
  try:
    preset = with_fields(preset, getattr(args, 'set', None) or ())
  except ValueError as e:
    fail(str(e), 2)
  try:
    return (preset, registry.load(names or args.recognizers), recognizer.load_real_dlib())
  except (*registry.LOAD_ERRORS, FileNotFoundError) as e:
    fail(str(e))
