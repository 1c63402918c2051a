"""Small helpers the experiment scripts share: eps lists, one-line errors, logging."""
from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(1, str(pathlib.Path(__file__).resolve().parent.parent))

from fgsm_jax import cli  # noqa: E402


def eps_list_255(text: str) -> list[float]:
  """Parses '0,1,2,4' (eps on the 0-255 scale) for argparse; NaN, inf, negative, > 255 or
  junk -> usage error."""
  return cli.number_list(0, 255, name="eps")(text)


def int_list(text: str) -> list[int]:
  """Parses '1,8,64' into positive ints for argparse."""
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
  if not values or any(v <= 0 for v in values):
    raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
  return values


def eps_key(eps_255: float) -> str:
  """JSON key of an eps on the 0-255 scale: '5' for 5.0, '0.5' for 0.5."""
  return f"{eps_255:g}"


fail = cli.fail  # one-line error, no traceback; exits 1 unless told


def load_protection(args: argparse.Namespace, names=None):
  """What both photo scripts need: the preset with the --eps/--steps/--attack overrides, the
  Flax ports of the recognizers ``names`` (default ``args.recognizers``) and real dlib's
  models. A missing or corrupt model file exits with a one-line message. Turns the
  persistent compilation cache on first (--compile-cache, --no-compile-cache;
  `fgsm_jax.compile_cache`)."""
  from fgsm_jax import compile_cache
  try:
    compile_cache.enable_from_args(args)
  except compile_cache.CompileCacheError as e:
    fail(str(e))
  from fgsm_jax.models.dlib_resnet import DlibModelError
  from fgsm_jax.models.mobileface import MobileFaceModelError
  from fgsm_jax.models.mobileface_files import MobileFaceFilesError
  from fgsm_jax.protect import photo, recognizer
  from fgsm_jax.protect.presets import PRESETS, with_overrides
  preset = with_overrides(PRESETS[args.preset], eps=args.eps, steps=args.steps,
                          attack=args.attack)
  try:
    return (preset, photo.load_recognizers(names or args.recognizers),
            recognizer.load_real_dlib())
  except (DlibModelError, MobileFaceModelError, MobileFaceFilesError, FileNotFoundError) as e:
    fail(str(e))
