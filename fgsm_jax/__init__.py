"""fgsm_jax: adversarial attacks on face recognition as pure JAX functions."""
