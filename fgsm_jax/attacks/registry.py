"""Every attack with its default settings, for sweeps: a table name -> (attack, defaults, norm).

All attacks share one signature, ``attack(apply_fn, params, images, labels, eps, *, key=None,
**options)``, so ``ATTACKS[name](apply_fn, params, images, labels, eps, key=key, **overrides)``
runs any of them (the key is ignored by the deterministic ones); overrides replace the
defaults below (``loss_fn``, ``targeted``, ``done_fn``, ``steps``, ...). eps is an L-inf
budget, or an L2 radius where ``ATTACK_NORMS`` says 'l2'.

Defaults: 10 steps; step size eps / steps (I-FGSM and the transfer attacks) or 2.5 eps / steps
(PGD, EOT-PGD); momentum 1.0 where used; DI p = 0.5; TI kernel 7; VMI 20 neighbours, beta 1.5;
EOT 4 draws of ``transforms.default_eot()``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from fgsm_jax.attacks import iterative
from fgsm_jax.attacks.difgsm import difgsm
from fgsm_jax.attacks.eot import eot_pgd
from fgsm_jax.attacks.fgm import fgm_l2
from fgsm_jax.attacks.fgsm import fgsm
from fgsm_jax.attacks.ifgsm import ifgsm
from fgsm_jax.attacks.mifgsm import mifgsm
from fgsm_jax.attacks.nifgsm import nifgsm
from fgsm_jax.attacks.pgd import pgd
from fgsm_jax.attacks.tifgsm import tifgsm
from fgsm_jax.attacks.transforms import ResizePad
from fgsm_jax.attacks.vmifgsm import vmifgsm

# attack(apply_fn, params, images, labels, eps, *, key=None, **overrides) -> adversarial images.
Attack = Callable[..., Any]

# name: (attack, its defaults here, the norm eps measures).
TABLE: dict[str, tuple[Attack, dict[str, Any], str]] = {
    'fgsm': (fgsm, {}, 'linf'),
    'fgm_l2': (fgm_l2, {}, 'l2'),
    'ifgsm': (ifgsm, dict(steps=10), 'linf'),
    'pgd': (pgd, dict(steps=10), 'linf'),
    'pgd_l2': (pgd, dict(steps=10, norm='l2'), 'l2'),
    'mifgsm': (mifgsm, dict(steps=10, decay=1.0), 'linf'),
    'nifgsm': (nifgsm, dict(steps=10, decay=1.0), 'linf'),
    'vmifgsm': (vmifgsm, dict(steps=10, decay=1.0, samples=20, beta=1.5), 'linf'),
    'difgsm': (difgsm, dict(steps=10, prob=0.5), 'linf'),
    'tifgsm': (tifgsm, dict(steps=10, kernel_size=7), 'linf'),
    # The usual strong transfer baseline: DI + TI + MI together, straight from the engine.
    'ditimifgsm': (iterative.run, dict(steps=10, decay=1.0, kernel_size=7,
                                       transform=ResizePad(min_scale=0.9, prob=0.5)), 'linf'),
    'eot_pgd': (eot_pgd, dict(steps=10, samples=4), 'linf'),
}

ATTACKS: dict[str, Attack] = {name: functools.partial(fn, **defaults)
                              for name, (fn, defaults, _) in TABLE.items()}
# The budget each entry's eps measures: 'linf' (max per pixel) or 'l2' (per image).
ATTACK_NORMS: dict[str, str] = {name: norm for name, (_, _, norm) in TABLE.items()}
