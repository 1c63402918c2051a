"""Privacy protection of whole photos against an ensemble of real face recognizers.

  from fgsm_jax.protect import files, photo, presets
  recognizers = photo.load_recognizers(('dlib', 'mobileface'))
  result = files.protect_file('me.jpg', 'me.protected.png', presets.PRESETS['default'],
                              jax.random.key(0), recognizers=recognizers)

Modules:
  recognizer  the judges: real dlib (detector, 5 landmarks, descriptors) and MobileFace
              (68 landmarks, ArcFace crop, the Flax port); metrics and thresholds.
  warp        dlib's face chip from a window of the photo, geometry as traced data.
  attack      the jitted per-face attack on an ensemble (`Surrogate`: each recognizer through
              its own crop; 8-bit aware, momentum, EOT views, per-pixel budgets).
  photo       every face of a photo: feathered windows, rounds of re-alignment, the judges.
  presets     named settings (fast, default, robust, transfer) and overrides (--set).
  files       file in, metadata-free PNG out, written once when verified, one-line errors.
  evaluate    per-recognizer galleries, identification, white-box / leave-one-out summaries.
  timing      the attack's compute per preset on any device (experiments/protect_timing.py).
"""
