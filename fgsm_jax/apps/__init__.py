"""The installed commands: ``fgsm-jax-protect`` (`protect_photos`) and ``fgsm-jax-eval``
(`privacy_eval`). Each module's ``main(argv) -> exit status`` composes the library; its
``run()`` is the console entry point. ``experiments/protect_photos.py`` and
``experiments/privacy_eval.py`` run the same code from a checkout."""
