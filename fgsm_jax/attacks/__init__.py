"""Adversarial attacks as pure, jitted JAX functions over ``apply_fn(params, images)``.

Images are float32 in [0, 1], N x H x W x C; budgets (eps, step sizes) are in the same units.
One signature for all: ``attack(apply_fn, params, images, labels, eps, *, key=None, ...)``.
One-step: fgsm (``fgsm.py``: x + eps * sign(grad_x J), vmap(grad)), fgm_l2. Iterative (one
jit for all steps, see ``iterative``): ifgsm (bim), pgd, pgd_l2, mifgsm, nifgsm, vmifgsm,
difgsm, tifgsm, eot_pgd, each a ``iterative.Config`` filled with its paper's defaults, and
``iterative_attack`` for combinations. ``ATTACKS`` is the table of defaults (``registry``).
Every attack checks its inputs (``validate``; ``with validation(False):`` turns them off).
"""
from fgsm_jax.attacks import goals, transforms
from fgsm_jax.attacks.core import input_gradient, project_l2, project_linf
from fgsm_jax.attacks.difgsm import difgsm
from fgsm_jax.attacks.ensemble import EnsembleLoss, LogitEnsemble, OutputsTuple, ensemble
from fgsm_jax.attacks.eot import eot_pgd
from fgsm_jax.attacks.fgm import fgm_l2
from fgsm_jax.attacks.fgsm import fgsm
from fgsm_jax.attacks.goals import DistanceAbove, DistanceBelow, Misclassified, ReachedTarget
from fgsm_jax.attacks.ifgsm import bim, ifgsm
from fgsm_jax.attacks.iterative import Config, example_keys, iterative_attack, random_start
from fgsm_jax.attacks.losses import cross_entropy, dodging, impersonation
from fgsm_jax.attacks.mifgsm import mifgsm
from fgsm_jax.attacks.nifgsm import nifgsm
from fgsm_jax.attacks.pgd import pgd, pgd_l2
from fgsm_jax.attacks.registry import ATTACK_NORMS, ATTACKS
from fgsm_jax.attacks.tifgsm import tifgsm
from fgsm_jax.attacks.validate import check_attack_inputs, validation
from fgsm_jax.attacks.vmifgsm import vmifgsm
