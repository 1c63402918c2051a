"""Privacy protection of whole photos against an ensemble of real face recognizers.

  from fgsm_jax.protect import files, presets, registry
  recognizers = registry.load(('dlib', 'mobileface'))
  result = files.protect_file('me.jpg', 'me.protected.png', presets.PRESETS['default'],
                              jax.random.key(0), recognizers=recognizers)

Modules:
  registry    the recognizers as data: one spec per network (Flax port and weights loader,
              alignment, metric, threshold, judge, reference runtime); the one distance.
  recognizer  the judges: real dlib (detector, 5 and 68 landmarks, its own descriptors) and
              every other recognizer's reference crop through its Flax port; `FaceRecord`.
  warp        dlib's face chip from a window of the photo, geometry as traced data.
  attack      the jitted per-face attack on an ensemble (`Surrogate`: a spec with its weight,
              each through its own crop; 8-bit aware, momentum, EOT views, per-pixel budgets).
  photo       every face of a photo: feathered windows, rounds (attack, check, decide) over a
              frozen per-face state, the judges.
  presets     named settings (fast, default, robust, transfer) and overrides (--set).
  files       file in, metadata-free PNG out, written once when verified, one-line errors.
  evaluate    per-recognizer galleries, identification, white-box / leave-one-out summaries.
  timing      the attack's compute per preset on any device (experiments/protect_timing.py).
"""
