#!/usr/bin/env python
"""Protect photos against face recognition, from a checkout: the installed command
``fgsm-jax-protect`` (fgsm_jax/apps/protect_photos.py, whose --help says it all)."""
from __future__ import annotations

from fgsm_jax.apps import protect_photos
from fgsm_jax.apps.protect_photos import build_parser, parse_args  # noqa: F401


def main(argv=None) -> int:
  return protect_photos.main(argv)


if __name__ == '__main__':
  protect_photos.run()
