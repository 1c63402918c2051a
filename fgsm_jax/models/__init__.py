"""Models: the original face CNN and dlib's face-recognition ResNet."""
from fgsm_jax.models.apply import ApplyFn
from fgsm_jax.models.cnn import OriginalCNN
