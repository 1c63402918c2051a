"""fgsm_jax: adversarial attacks on face recognition as pure JAX functions.

Modules, one per concern: ``data`` (TFDS builders, batches), ``models`` (the original CNN,
dlib's face ResNet), ``train`` (create_train_state / train_step / eval_step), ``attacks``
(FGSM and the iterative family), ``faces`` (detection, alignment, differentiable chips),
``evaluation``, ``figures``, ``sharding``. Images are float32 in [0, 1], N x H x W x C.
"""

__version__ = '0.1.0'
