"""Faces: dlib's detection and 5-point landmarks, its aligned chip as a differentiable JAX
warp of the whole photo, and feathered per-face regions for attacks."""
from fgsm_jax.faces.chips import (CHIP_PADDING, CHIP_SIZE, ChipPlan, ChipTransform, chip_plan,
                                  chip_transform, extract_chip, face_chip_rect, pyramid_down2,
                                  similarity_transform)
from fgsm_jax.faces.detect import Face, FaceModels, dlib_shape, find_faces, load_face_models
from fgsm_jax.faces.regions import (Region, add_masked, crop_region, face_region, face_regions,
                                    feather_mask, full_mask, paste_region)

__all__ = [
    'CHIP_PADDING', 'CHIP_SIZE', 'ChipPlan', 'ChipTransform', 'Face', 'FaceModels', 'Region',
    'add_masked', 'chip_plan', 'chip_transform', 'crop_region', 'dlib_shape', 'extract_chip',
    'face_chip_rect', 'face_region', 'face_regions', 'feather_mask', 'find_faces', 'full_mask',
    'load_face_models', 'paste_region', 'pyramid_down2', 'similarity_transform',
]
