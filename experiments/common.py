"""What the two photo scripts (protect_photos.py, privacy_eval.py) still share here.

The other scripts' helpers live in `fgsm_jax.cli`; this module goes once those two import
theirs from the package too.
"""
from __future__ import annotations

import argparse

from fgsm_jax import cli

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
