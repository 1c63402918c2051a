"""Models: face recognizers and their weights."""
from fgsm_jax.models.dlib_files import DlibModelPaths, dlib_model_paths  # noqa: F401
