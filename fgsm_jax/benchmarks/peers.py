"""The same FGSM/PGD on the same original CNN with the same weights, in TensorFlow and PyTorch.

Peers (``PEERS``):

* ``tf-eager``: the original notebook's FGSM, ``tf.GradientTape`` run eagerly, on a Keras
  Sequential model of the same architecture (the notebook computed one image at a time; here
  the whole batch goes through one tape, which is faster, so the comparison favours TF).
* ``tf-function``: the same step wrapped in ``tf.function`` (graph mode, traced once).
* ``torch``: torchattacks' ``FGSM`` / ``PGD`` (version 3.5.1) on a ``torch.nn.Module`` of the
  same architecture. torchattacks declares a dependency on torchvision but its FGSM/PGD do
  not import it, so it is installed with ``pip install --no-deps torchattacks==3.5.1``; when
  it is not importable, ``torch_attack`` uses a hand-written copy of the same update
  (``_HandFGSM`` / ``_HandPGD``: cross-entropy averaged over the batch, ``x + eps sign(g)``
  clamped to [0, 1]; PGD projects ``x + alpha sign(g)`` onto the eps-ball and [0, 1]), and
  ``TorchPeer.implementation`` says which ran.

Weights are copied from the Flax parameters of ``fgsm_jax.models.OriginalCNN``: Keras uses
the same HWIO conv kernels and NHWC flatten order, so its weights are copied as they are;
PyTorch convolutions are OIHW (kernel.transpose(3, 2, 0, 1)), and its Flatten runs over
C x H x W, so the first Dense kernel's 2048 rows are permuted from (h, w, c) to (c, h, w)
order and transposed to PyTorch's (out, in).

All peers take and return images N x H x W x C float32 in [0, 1] as NumPy arrays at the
boundary (``prepare`` converts once, outside the timed region; ``run`` is timed).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

PEERS = ("tf", "torch")
# (features, pool) of the original CNN's conv blocks, as in fgsm_jax.models.OriginalCNN.
_BLOCKS = ((8, 2), (16, 3), (32, 3))


def feature_map_size(image_size: int) -> int:
  """Side of the last pooled feature map (8 for 160 x 160 inputs)."""
  side = image_size
  for _, pool in _BLOCKS:
    side //= pool
  return side


def _np(params: Any) -> dict:
  return {layer: {k: np.array(v, np.float32) for k, v in leaves.items()}   # writable copies
          for layer, leaves in params.items()}


# --- TensorFlow ------------------------------------------------------------------------------

def tf_model(params: Any, num_classes: int, image_size: int = 160):
  """A Keras Sequential copy of OriginalCNN carrying ``params`` (Flax pytree)."""
  import tensorflow as tf
  p = _np(params)
  layers = [tf.keras.Input((image_size, image_size, 3))]
  for features, pool in _BLOCKS:
    layers += [tf.keras.layers.Conv2D(features, 3, padding="same", activation="relu"),
               tf.keras.layers.MaxPooling2D(pool)]
  layers += [tf.keras.layers.Flatten(), tf.keras.layers.Dense(512, activation="relu"),
             tf.keras.layers.Dense(num_classes)]
  model = tf.keras.Sequential(layers)
  convs = [l for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
  denses = [l for l in model.layers if isinstance(l, tf.keras.layers.Dense)]
  for i, layer in enumerate(convs):
    layer.set_weights([p[f"Conv_{i}"]["kernel"], p[f"Conv_{i}"]["bias"]])
  for i, layer in enumerate(denses):
    layer.set_weights([p[f"Dense_{i}"]["kernel"], p[f"Dense_{i}"]["bias"]])
  return model


def tf_fgsm_step(model, eps: float) -> Callable:
  """The notebook's FGSM: loss by GradientTape, x + eps sign(grad), clipped to [0, 1]."""
  import tensorflow as tf
  loss_object = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  def step(images, labels):
    with tf.GradientTape() as tape:
      tape.watch(images)
      loss = loss_object(labels, model(images, training=False))
    gradient = tape.gradient(loss, images)
    return tf.clip_by_value(images + eps * tf.sign(gradient), 0.0, 1.0)
  return step


@dataclasses.dataclass
class TFPeer:
  """FGSM in TensorFlow, eager (``function=False``) or as a ``tf.function``."""
  model: Any
  eps: float
  function: bool
  attack: str = "fgsm"

  def __post_init__(self):
    import tensorflow as tf
    step = tf_fgsm_step(self.model, self.eps)
    self._step = tf.function(step) if self.function else step

  @property
  def name(self) -> str:
    return "tf-function" if self.function else "tf-eager"

  @property
  def implementation(self) -> str:
    return f"{self.name} (GradientTape, TensorFlow {_tf_version()})"

  def prepare(self, images: np.ndarray, labels: np.ndarray):
    import tensorflow as tf
    return tf.constant(images, tf.float32), tf.constant(labels, tf.int64)

  def run(self, inputs) -> Any:
    return self._step(*inputs).numpy()   # .numpy() waits for the result

  def to_numpy(self, out) -> np.ndarray:
    return np.asarray(out)


def _tf_version() -> str:
  import tensorflow as tf
  return tf.__version__


# --- PyTorch ---------------------------------------------------------------------------------

def torch_model(params: Any, num_classes: int, image_size: int = 160):
  """A ``torch.nn.Module`` copy of OriginalCNN carrying ``params``, NCHW, in eval mode."""
  import torch
  from torch import nn
  p = _np(params)
  side = feature_map_size(image_size)

  class OriginalCNNTorch(nn.Module):
    def __init__(self):
      super().__init__()
      channels = [3] + [f for f, _ in _BLOCKS]
      self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1)
                                 for i in range(len(_BLOCKS)))
      self.pools = [pool for _, pool in _BLOCKS]
      self.dense0 = nn.Linear(side * side * channels[-1], 512)
      self.dense1 = nn.Linear(512, num_classes)

    def forward(self, x):
      for conv, pool in zip(self.convs, self.pools):
        x = nn.functional.max_pool2d(torch.relu(conv(x)), pool)
      x = torch.relu(self.dense0(torch.flatten(x, 1)))
      return self.dense1(x)

  model = OriginalCNNTorch()
  c_last = _BLOCKS[-1][0]
  with torch.no_grad():
    for i, conv in enumerate(model.convs):
      conv.weight.copy_(torch.from_numpy(p[f"Conv_{i}"]["kernel"].transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(p[f"Conv_{i}"]["bias"]))
    # Flax flattens (h, w, c); torch flattens (c, h, w).
    k0 = p["Dense_0"]["kernel"].reshape(side, side, c_last, -1).transpose(2, 0, 1, 3)
    model.dense0.weight.copy_(torch.from_numpy(k0.reshape(side * side * c_last, -1).T.copy()))
    model.dense0.bias.copy_(torch.from_numpy(p["Dense_0"]["bias"]))
    model.dense1.weight.copy_(torch.from_numpy(p["Dense_1"]["kernel"].T.copy()))
    model.dense1.bias.copy_(torch.from_numpy(p["Dense_1"]["bias"]))
  return model.eval()


class _HandFGSM:
  """torchattacks.FGSM's update, by hand (used when torchattacks is not importable)."""

  def __init__(self, model, eps):
    self.model, self.eps = model, eps

  def __call__(self, images, labels):
    import torch
    images = images.clone().detach().requires_grad_(True)
    cost = torch.nn.functional.cross_entropy(self.model(images), labels)
    grad = torch.autograd.grad(cost, images)[0]
    return torch.clamp(images + self.eps * grad.sign(), 0, 1).detach()


class _HandPGD:
  """torchattacks.PGD's update without the random start, by hand."""

  def __init__(self, model, eps, alpha, steps):
    self.model, self.eps, self.alpha, self.steps = model, eps, alpha, steps

  def __call__(self, images, labels):
    import torch
    adv = images.clone().detach()
    for _ in range(self.steps):
      adv.requires_grad_(True)
      cost = torch.nn.functional.cross_entropy(self.model(adv), labels)
      grad = torch.autograd.grad(cost, adv)[0]
      adv = adv.detach() + self.alpha * grad.sign()
      delta = torch.clamp(adv - images, -self.eps, self.eps)
      adv = torch.clamp(images + delta, 0, 1).detach()
    return adv


def torch_attack(model, attack: str, eps: float, *, steps: int = 10,
                 alpha: float | None = None) -> tuple[Callable, str]:
  """(attack(images NCHW, labels) -> adversarial NCHW, description). PGD starts at x (no
  random start), so its result is comparable with fgsm_jax's ``pgd(random_init=False)``."""
  if attack not in ("fgsm", "pgd"):
    raise ValueError(f"no PyTorch peer for attack {attack!r} (fgsm, pgd)")
  alpha = eps / steps if alpha is None else alpha
  try:
    import torchattacks
    if attack == "fgsm":
      return torchattacks.FGSM(model, eps=eps), f"torchattacks {torchattacks.__version__} FGSM"
    return (torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False),
            f"torchattacks {torchattacks.__version__} PGD")
  except ImportError:
    if attack == "fgsm":
      return _HandFGSM(model, eps), "hand-written torch FGSM (torchattacks not importable)"
    return (_HandPGD(model, eps, alpha, steps),
            "hand-written torch PGD (torchattacks not importable)")


@dataclasses.dataclass
class TorchPeer:
  model: Any
  attack: str
  eps: float
  steps: int = 10
  alpha: float | None = None
  name: str = "torch"

  def __post_init__(self):
    import torch
    # The GPU when this torch build has one (a CUDA wheel), as fgsm_jax's JAX would use it.
    self.device = "cuda" if torch.cuda.is_available() else "cpu"
    self.model = self.model.to(self.device)
    self._fn, self.implementation = torch_attack(self.model, self.attack, self.eps,
                                                 steps=self.steps, alpha=self.alpha)
    self.implementation += f" on {self.device}"

  def prepare(self, images: np.ndarray, labels: np.ndarray):
    import torch
    return (torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(self.device),
            torch.from_numpy(np.asarray(labels, np.int64)).to(self.device))

  def run(self, inputs):
    import torch
    out = self._fn(*inputs)
    if self.device == "cuda":
      torch.cuda.synchronize()   # CPU torch is synchronous already
    return out

  def to_numpy(self, out) -> np.ndarray:
    return out.detach().cpu().numpy().transpose(0, 2, 3, 1)


def build_peers(names: list[str], attack: str, params: Any, num_classes: int, eps: float, *,
                image_size: int = 160, steps: int = 10, alpha: float | None = None) -> list:
  """The peers called ``names`` (from PEERS) that exist for ``attack``.

  'tf' gives two peers (eager and tf.function) and has FGSM only, as in the notebook;
  'torch' has FGSM and PGD.
  """
  peers = []
  for name in names:
    if name not in PEERS:
      raise ValueError(f"unknown peer {name!r}; expected some of {PEERS}")
    if name == "tf" and attack == "fgsm":
      model = tf_model(params, num_classes, image_size)
      peers += [TFPeer(model, eps, function=False), TFPeer(model, eps, function=True)]
    elif name == "torch" and attack in ("fgsm", "pgd"):
      peers.append(TorchPeer(torch_model(params, num_classes, image_size), attack, eps,
                             steps=steps, alpha=alpha))
  return peers


def compare_adversarials(ours: np.ndarray, theirs: np.ndarray, eps: float) -> dict[str, float]:
  """How far two attacks' adversarial images are apart.

  A pixel whose gradient is ~0 can get opposite signs from two float implementations, which
  moves it by up to 2 eps (1 eps where one side rounds to exactly 0), so besides the largest
  difference this reports the fraction of pixels differing by more than eps / 10.
  """
  ours = np.asarray(ours, np.float32)
  theirs = np.asarray(theirs, np.float32)
  if ours.shape != theirs.shape:
    raise ValueError(f"shape mismatch: {ours.shape} vs {theirs.shape}")
  diff = np.abs(ours - theirs)
  return {"max_abs_diff": float(diff.max()),
          "frac_pixels_differ": float(np.mean(diff > eps / 10)),
          "mean_abs_diff": float(diff.mean())}
