"""All attacks behind one call, for sweeps: ``ATTACKS[name](apply_fn, params, images, labels,
key, eps, **overrides) -> adversarial images``.

Every entry takes the key (ignored by the deterministic attacks) and eps in image units (an
L-inf budget, or an L2 radius for the names in ``ATTACK_NORMS`` marked 'l2'), plus keyword
overrides of the attack's own arguments (``loss_fn``, ``targeted``, ``done_fn`` for the
iterative ones, ``steps``, ...). Defaults: 10 steps; step size eps / steps (I-FGSM and the
transfer attacks) or 2.5 eps / steps (PGD, EOT-PGD); momentum 1.0 where used; DI p = 0.5;
TI kernel 7; VMI 20 neighbours, beta 1.5; EOT 4 draws of ``transforms.default_eot()``.
"""
from __future__ import annotations

from typing import Any, Callable

from fgsm_jax.attacks.difgsm import difgsm
from fgsm_jax.attacks.eot import eot_pgd
from fgsm_jax.attacks.fgm import fgm_l2
from fgsm_jax.attacks.fgsm import fgsm
from fgsm_jax.attacks.ifgsm import ifgsm
from fgsm_jax.attacks.iterative import iterative_attack
from fgsm_jax.attacks.mifgsm import mifgsm
from fgsm_jax.attacks.nifgsm import nifgsm
from fgsm_jax.attacks.pgd import pgd
from fgsm_jax.attacks.tifgsm import tifgsm
from fgsm_jax.attacks.transforms import ResizePad
from fgsm_jax.attacks.vmifgsm import vmifgsm

# attack(apply_fn, params, images, labels, key, eps, **overrides) -> adversarial images.
Attack = Callable[..., Any]


def _entry(name: str, fn: Callable, randomised: bool, **defaults) -> Attack:
  def attack(apply_fn, params, images, labels, key, eps, **overrides):
    kwargs = {**defaults, **overrides}
    if randomised:
      return fn(apply_fn, params, images, labels, key, eps, **kwargs)
    return fn(apply_fn, params, images, labels, eps, **kwargs)
  attack.__name__ = name
  settings = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "its defaults"
  attack.__doc__ = (f"``{fn.__name__}`` with {settings}, called as (apply_fn, params, images, "
                    f"labels, key, eps, **overrides)" +
                    ("" if randomised else "; the key is unused") + ".")
  return attack


def _di_ti_mi(apply_fn, params, images, labels, key, eps, **kwargs):
  return iterative_attack(apply_fn, params, images, labels, eps, key=key, **kwargs)


ATTACKS: dict[str, Attack] = {
    "fgsm": _entry("fgsm", fgsm, False),
    "fgm_l2": _entry("fgm_l2", fgm_l2, False),
    "ifgsm": _entry("ifgsm", ifgsm, False, steps=10),
    "pgd": _entry("pgd", pgd, True, steps=10),
    "pgd_l2": _entry("pgd_l2", pgd, True, steps=10, norm="l2"),
    "mifgsm": _entry("mifgsm", mifgsm, False, steps=10, decay=1.0),
    "nifgsm": _entry("nifgsm", nifgsm, False, steps=10, decay=1.0),
    "vmifgsm": _entry("vmifgsm", vmifgsm, True, steps=10, decay=1.0, samples=20, beta=1.5),
    "difgsm": _entry("difgsm", difgsm, True, steps=10, prob=0.5),
    "tifgsm": _entry("tifgsm", tifgsm, False, steps=10, kernel_size=7),
    # The usual strong transfer baseline: DI + TI + MI together.
    "ditimifgsm": _entry("ditimifgsm", _di_ti_mi, True, steps=10, decay=1.0,
                         transform=ResizePad(min_scale=0.9, prob=0.5), kernel_size=7),
    "eot_pgd": _entry("eot_pgd", eot_pgd, True, steps=10, samples=4),
}

# The budget each entry's eps measures: 'linf' (max per pixel) or 'l2' (per image).
ATTACK_NORMS: dict[str, str] = {name: "linf" for name in ATTACKS}
ATTACK_NORMS.update({"fgm_l2": "l2", "pgd_l2": "l2"})
