"""Face data: image files, face detection/cropping, TFDS builders, arrays and batches.

Importing this package loads numpy and PIL only; tensorflow_datasets (and with it
TensorFlow, when a dataset is built or read) is imported on first use of the builders,
`load_split` and friends.
"""
from __future__ import annotations

from fgsm_jax.data.detect import (Box, box_of_rect, box_size, crop_face, detect_faces,
                                  hog_detector, largest_face)
from fgsm_jax.data.images import (IMAGE_SUFFIXES, MAX_PIXELS, DatasetError, ImageError,
                                  identity_folders, load_rgb)
from fgsm_jax.data.pipeline import (DATASETS, SPLITS, batches, builder_class, class_names,
                                    get_builder, load_split, num_classes, skipped)

# Names whose modules import tensorflow_datasets: loaded on first access.
_LAZY = {'FaceConfig': 'fgsm_jax.data.face_builder',
         'GtFaces': 'fgsm_jax.data.gt_faces',
         'OrlFaces': 'fgsm_jax.data.orl_faces'}


def __getattr__(name: str):
  if name in _LAZY:
    import importlib  # pylint: disable=import-outside-toplevel
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['Box', 'box_of_rect', 'box_size', 'hog_detector', 'DATASETS', 'DatasetError', 'FaceConfig', 'GtFaces', 'IMAGE_SUFFIXES',
           'ImageError', 'MAX_PIXELS', 'OrlFaces', 'SPLITS', 'batches', 'builder_class',
           'class_names', 'crop_face', 'detect_faces', 'get_builder', 'identity_folders',
           'largest_face', 'load_rgb', 'load_split', 'num_classes', 'skipped']
