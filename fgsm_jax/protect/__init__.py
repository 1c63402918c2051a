"""Privacy protection of whole photos against dlib's face recognizer.

  from fgsm_jax.protect import files, presets
  result = files.protect_file('me.jpg', 'me.protected.png', presets.PRESETS['default'],
                              jax.random.key(0), params=load_dlib_resnet(),
                              apply_fn=dlib_resnet_apply)

Modules:
  recognizer  real dlib (detector, 5 landmarks, descriptors): the judge of every figure.
  warp        dlib's face chip from a window of the photo, geometry as traced data.
  attack      the jitted per-face attack (8-bit aware, momentum, EOT views, budgets).
  photo       every face of a photo: feathered windows, rounds of re-alignment.
  presets     named settings (fast, default, robust) and command-line overrides.
  files       file in, metadata-free PNG out, atomic writes, one-line errors.
  evaluate    gallery recognizer, identification and summaries for privacy_eval.
"""
