#!/usr/bin/env python
"""How well protected photos escape real face recognizers, from a checkout: the installed
command ``fgsm-jax-eval`` (fgsm_jax/apps/privacy_eval.py, whose --help says it all)."""
from __future__ import annotations

from fgsm_jax.apps import privacy_eval
from fgsm_jax.apps.privacy_eval import parse_args  # noqa: F401


def main(argv=None) -> int:
  return privacy_eval.main(argv)


if __name__ == '__main__':
  privacy_eval.run()
