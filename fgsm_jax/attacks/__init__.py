"""Adversarial attacks as pure, jitted JAX functions over ``apply_fn(params, images)``.

Images are float32 in [0, 1], N x H x W x C; budgets (eps, step sizes) are in the same units.
"""
from fgsm_jax.attacks.core import input_gradient, project_l2, project_linf
from fgsm_jax.attacks.fgsm import fgsm
from fgsm_jax.attacks.losses import cross_entropy, dodging, impersonation
