"""Program fingerprints tell the same program from a different one; photo comparisons count."""
from __future__ import annotations

import numpy as np
import pytest

from fgsm_jax.benchmarks import fingerprint


@pytest.mark.slow
def test_the_same_attack_twice_is_one_fingerprint_and_another_attack_is_not():
  pgd = fingerprint.program_fingerprint('pgd', batch=2)
  assert pgd == fingerprint.program_fingerprint('pgd', batch=2)
  mifgsm = fingerprint.program_fingerprint('mifgsm', batch=2)
  assert mifgsm['hash'] != pgd['hash']
  assert pgd['ops']['stablehlo.convolution'] > 0  # it really is the CNN's program


def test_compare_protected_counts_differing_values():
  a = np.zeros((4, 4, 3), np.uint8)
  b = a.copy()
  b[1, 2, 0] = 5
  b[3, 3, 2] = 2
  verdict = fingerprint.compare_protected({'x': a, 'y': a, 'only_before': a},
                                          {'x': a.copy(), 'y': b})
  assert verdict == {'x': 'identical', 'y': '2 values differ, by at most 5 levels'}
