"""Faces: dlib's detection and 5-point (optionally 68-point) landmarks, its aligned chip and
the ArcFace 112 x 112 crop (or FaceNet's 160 x 160 one) as differentiable JAX warps of the whole photo, and feathered
per-face regions for attacks."""
from fgsm_jax.faces.arcface import (ARCFACE_SIZE, ARCFACE_TEMPLATE, FACENET_SIZE,
                                    FACENET_TEMPLATE, FACENET_ZOOM, ArcFaceGeometry,
                                    ArcFaceTransform, arcface_crop, arcface_crop_reference,
                                    arcface_geometry, arcface_n_down, arcface_points,
                                    arcface_transform, follow_chip_jitter, scaled_template,
                                    window_crop)
from fgsm_jax.faces.chips import (CHIP_PADDING, CHIP_SIZE, ChipPlan, ChipTransform, chip_plan,
                                  chip_transform, extract_chip, face_chip_rect, pyramid_down2,
                                  similarity_transform)
from fgsm_jax.faces.detect import (Face, FaceModels, dlib_shape, find_faces, landmarks_68,
                                   load_face_models, load_landmarks_68)
from fgsm_jax.faces.regions import (Region, add_masked, crop_region, face_region, face_regions,
                                    feather_mask, full_mask, paste_region)

__all__ = [
    'ARCFACE_SIZE', 'ARCFACE_TEMPLATE', 'ArcFaceGeometry', 'ArcFaceTransform', 'arcface_crop',
    'arcface_crop_reference', 'arcface_geometry', 'arcface_n_down', 'arcface_points',
    'arcface_transform', 'follow_chip_jitter', 'landmarks_68', 'load_landmarks_68', 'window_crop',
    'FACENET_SIZE', 'FACENET_TEMPLATE', 'FACENET_ZOOM', 'scaled_template',
    'CHIP_PADDING', 'CHIP_SIZE', 'ChipPlan', 'ChipTransform', 'Face', 'FaceModels', 'Region',
    'add_masked', 'chip_plan', 'chip_transform', 'crop_region', 'dlib_shape', 'extract_chip',
    'face_chip_rect', 'face_region', 'face_regions', 'feather_mask', 'find_faces', 'full_mask',
    'load_face_models', 'paste_region', 'pyramid_down2', 'similarity_transform',
]
