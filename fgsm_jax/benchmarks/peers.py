"""The same FGSM/PGD on the same networks with the same weights, in TensorFlow and PyTorch.

Networks: the original face CNN (``fgsm_jax.models.OriginalCNN``; TF and PyTorch peers) and
dlib's face-recognition ResNet (``fgsm_jax.models.dlib_resnet.DlibResNet``; PyTorch only --
the notebook had no dlib network, so there is no TF peer for it).

Peers (``PEERS``):

* ``tf-eager``: the original notebook's FGSM, ``tf.GradientTape`` run eagerly, on a Keras
  Sequential model of the same architecture (the notebook computed one image at a time; here
  the whole batch goes through one tape, which is faster, so the comparison favours TF).
* ``tf-function``: the same step wrapped in ``tf.function`` (graph mode, traced once).
* ``torch``: torchattacks' ``FGSM`` / ``PGD`` on a ``torch.nn.Module`` of the same
  architecture. torchattacks declares a dependency on torchvision but its FGSM/PGD do not
  import it, so ``scripts/install_references.sh`` installs it (pinned) with ``--no-deps``; when
  it is not importable, ``torch_attack`` uses a hand-written copy of the same update
  (``_HandFGSM`` / ``_HandPGD``: cross-entropy averaged over the batch, ``x + eps sign(g)``
  clamped to [0, 1]; PGD projects ``x + alpha sign(g)`` onto the eps-ball and [0, 1]), and
  ``TorchPeer.implementation`` says which ran.

Weights are copied from the Flax parameters of ``fgsm_jax.models.OriginalCNN``: Keras uses
the same HWIO conv kernels and NHWC flatten order, so its weights are copied as they are;
PyTorch convolutions are OIHW (kernel.transpose(3, 2, 0, 1)), and its Flatten runs over
C x H x W, so the first Dense kernel's 2048 rows are permuted from (h, w, c) to (c, h, w)
order and transposed to PyTorch's (out, in). ``torch_dlib_model`` rebuilds DlibResNet layer for
layer (same padding, pooling and ``add_prev`` conventions) with its conv kernels transposed the
same way and its fc kernel transposed.

The dlib ResNet outputs 128-D descriptors and is attacked by ascending fgsm_jax's
``losses.dodging`` (squared distance to a reference descriptor), while torchattacks hard-codes
cross-entropy on ``model(images)`` against integer labels. ``dodging_logits`` bridges the two:
its "logits" are [0, ||f(x) - r||^2] and every label is 0, so torchattacks' loss is
softplus(||f(x) - r||^2), whose input gradient is a positive per-example multiple of the
dodging loss's (see ``dodging_logits``): the same signs, hence the same FGSM/PGD steps. The
hand-written fallback runs on the same wrapper, so it ascends the same loss.

All peers take and return images N x H x W x C float32 in [0, 1] as NumPy arrays at the
boundary (``prepare`` converts once, outside the timed region; ``run`` is timed).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

PEERS = ('tf', 'torch')
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
    layers += [tf.keras.layers.Conv2D(features, 3, padding='same', activation='relu'),
               tf.keras.layers.MaxPooling2D(pool)]
  layers += [tf.keras.layers.Flatten(), tf.keras.layers.Dense(512, activation='relu'),
             tf.keras.layers.Dense(num_classes)]
  model = tf.keras.Sequential(layers)
  convs = [l for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
  denses = [l for l in model.layers if isinstance(l, tf.keras.layers.Dense)]
  for i, layer in enumerate(convs):
    layer.set_weights([p[f'Conv_{i}']['kernel'], p[f'Conv_{i}']['bias']])
  for i, layer in enumerate(denses):
    layer.set_weights([p[f'Dense_{i}']['kernel'], p[f'Dense_{i}']['bias']])
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
  attack: str = 'fgsm'

  def __post_init__(self):
    import tensorflow as tf
    step = tf_fgsm_step(self.model, self.eps)
    self._step = tf.function(step) if self.function else step

  @property
  def name(self) -> str:
    return 'tf-function' if self.function else 'tf-eager'

  @property
  def implementation(self) -> str:
    return f'{self.name} (GradientTape, TensorFlow {_tf_version()})'

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
      conv.weight.copy_(torch.from_numpy(p[f'Conv_{i}']['kernel'].transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(p[f'Conv_{i}']['bias']))
    # Flax flattens (h, w, c); torch flattens (c, h, w).
    k0 = p['Dense_0']['kernel'].reshape(side, side, c_last, -1).transpose(2, 0, 1, 3)
    model.dense0.weight.copy_(torch.from_numpy(k0.reshape(side * side * c_last, -1).T.copy()))
    model.dense0.bias.copy_(torch.from_numpy(p['Dense_0']['bias']))
    model.dense1.weight.copy_(torch.from_numpy(p['Dense_1']['kernel'].T.copy()))
    model.dense1.bias.copy_(torch.from_numpy(p['Dense_1']['bias']))
  return model.eval()


def _tree_np(tree: Any) -> Any:
  """A nested dict of arrays as writable float32 NumPy copies."""
  if isinstance(tree, dict) or hasattr(tree, 'items'):
    return {k: _tree_np(v) for k, v in tree.items()}
  return np.array(tree, np.float32)


def torch_dlib_model(params: Any):
  """A ``torch.nn.Module`` copy of ``DlibResNet`` carrying ``params`` (its Flax pytree).

  Takes chips N x 3 x 150 x 150 (NCHW) float32 RGB in [0, 1], returns N x 128 descriptors,
  in eval mode, weights frozen (only input gradients are needed). Layer for layer as the Flax
  module (see ``fgsm_jax.models.dlib_resnet``): (255 x - mean_rgb) / 256; 7x7/2 conv (no
  padding), affine, relu, 3x3/2 max-pool; 14 residual units; global mean; fc without bias.
  A stride-2 conv pads 0 and a stride-1 3x3 conv pads 1; pools are VALID (floor mode);
  ``add_prev`` zero-pads the smaller tensor at the bottom/right and in the extra channels.
  """
  import torch
  from torch import nn

  from fgsm_jax.models.dlib_resnet import CHIP_SIZE, RESNET_UNITS
  functional = nn.functional
  p = _tree_np(params)

  def conv(leaves: dict, stride: int) -> nn.Conv2d:
    kernel = leaves['kernel']                       # HWIO
    size, _, cin, cout = kernel.shape
    layer = nn.Conv2d(cin, cout, size, stride=stride, padding=size // 2 if stride == 1 else 0)
    with torch.no_grad():
      layer.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))   # -> OIHW
      layer.bias.copy_(torch.from_numpy(leaves['bias']))
    return layer

  class Affine(nn.Module):
    """dlib's affine_ (frozen batch norm): x * scale + bias per channel."""

    def __init__(self, leaves: dict):
      super().__init__()
      self.scale = nn.Parameter(torch.from_numpy(leaves['scale']).reshape(1, -1, 1, 1))
      self.bias = nn.Parameter(torch.from_numpy(leaves['bias']).reshape(1, -1, 1, 1))

    def forward(self, x):
      return x * self.scale + self.bias

  def add_prev(a, b):
    """Sum over the larger shape, the smaller tensor zero-padded bottom/right and in C."""
    shape = [max(s, t) for s, t in zip(a.shape, b.shape)]

    def pad(x):
      _, c, h, w = x.shape
      if (c, h, w) == tuple(shape[1:]):
        return x
      # F.pad lists the last axis first: (W left, W right, H top, H bottom, C front, C back).
      return functional.pad(x, (0, shape[3] - w, 0, shape[2] - h, 0, shape[1] - c))

    return pad(a) + pad(b)

  class ResUnit(nn.Module):
    """dlib's ares / ares_down: relu(block(x) + shortcut(x))."""

    def __init__(self, leaves: dict, down: bool):
      super().__init__()
      self.down = down
      self.conv1 = conv(leaves['conv1'], 2 if down else 1)
      self.affine1 = Affine(leaves['affine1'])
      self.conv2 = conv(leaves['conv2'], 1)
      self.affine2 = Affine(leaves['affine2'])

    def forward(self, x):
      y = torch.relu(self.affine1(self.conv1(x)))
      y = self.affine2(self.conv2(y))
      shortcut = functional.avg_pool2d(x, 2, 2) if self.down else x
      return torch.relu(add_prev(y, shortcut))

  class DlibResNetTorch(nn.Module):
    def __init__(self):
      super().__init__()
      self.register_buffer('mean_rgb', torch.from_numpy(p['mean_rgb']).reshape(1, 3, 1, 1))
      self.stem_conv = conv(p['stem_conv'], 2)
      self.stem_affine = Affine(p['stem_affine'])
      self.units = nn.ModuleList(ResUnit(p[f'unit{u}'], down)
                                 for u, (_, down) in enumerate(RESNET_UNITS))
      kernel = p['fc']['kernel']                    # (in, out)
      self.fc = nn.Linear(kernel.shape[0], kernel.shape[1], bias=False)
      with torch.no_grad():
        self.fc.weight.copy_(torch.from_numpy(kernel.T.copy()))

    def forward(self, chips):
      if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
        raise ValueError(
            f'expected chips N x 3 x {CHIP_SIZE} x {CHIP_SIZE}, got {tuple(chips.shape)}')
      x = (chips * 255.0 - self.mean_rgb) / 256.0
      x = torch.relu(self.stem_affine(self.stem_conv(x)))
      x = functional.max_pool2d(x, 3, 2)
      for unit in self.units:
        x = unit(x)
      return self.fc(x.mean(dim=(2, 3)))

  return DlibResNetTorch().requires_grad_(False).eval()


def dodging_logits(descriptor_model):
  """Wraps a descriptor network so that torchattacks' cross-entropy ascends the dodging loss.

  ``wrapper.references`` (N x D, set by ``TorchPeer.run`` for the current batch) are the
  reference descriptors r; ``wrapper(x)`` returns N x 2 "logits" [0, d] with
  d = ||f(x) - r||^2, the per-example dodging loss (``fgsm_jax.attacks.losses.dodging``).
  With every label 0, the cross-entropy torchattacks takes is, per example,

    -log softmax([0, d])_0 = log(1 + exp d) = softplus(d),

  whose gradient with respect to x is sigmoid(d) * grad d, and torchattacks averages over
  the batch: grad = (sigmoid(d) / N) grad d. sigmoid(d) >= 1/2 since d >= 0, so that is a
  positive per-example multiple of the dodging gradient: sign(grad) -- and with it every
  FGSM/PGD step -- equals fgsm_jax's ascent of ``losses.dodging`` (up to float rounding where
  a gradient component is ~0).
  """
  import torch
  from torch import nn

  class DodgingLogits(nn.Module):
    def __init__(self, model):
      super().__init__()
      self.model = model
      self.references = None

    def forward(self, x):
      if self.references is None:
        raise ValueError('set .references (N x D reference descriptors) before calling')
      diff = self.model(x) - self.references
      d = torch.sum(diff * diff, dim=1)
      return torch.stack([torch.zeros_like(d), d], dim=1)

  return DodgingLogits(descriptor_model).eval()


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
  if attack not in ('fgsm', 'pgd'):
    raise ValueError(f'no PyTorch peer for attack {attack!r} (fgsm, pgd)')
  alpha = eps / steps if alpha is None else alpha
  try:
    import torchattacks
    if attack == 'fgsm':
      return torchattacks.FGSM(model, eps=eps), f'torchattacks {torchattacks.__version__} FGSM'
    return (torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False),
            f'torchattacks {torchattacks.__version__} PGD')
  except ImportError:
    if attack == 'fgsm':
      return _HandFGSM(model, eps), 'hand-written torch FGSM (torchattacks not importable)'
    return (_HandPGD(model, eps, alpha, steps),
            'hand-written torch PGD (torchattacks not importable)')


LOSSES = ('cross_entropy', 'dodging')


@dataclasses.dataclass
class TorchPeer:
  """torchattacks' (or the hand-written) FGSM/PGD on a torch model.

  ``loss='cross_entropy'``: ``model`` gives logits and the labels are class indices (N,).
  ``loss='dodging'``: ``model`` gives descriptors and the "labels" are the reference
  descriptors N x D; the model is wrapped by ``dodging_logits`` so that the attack ascends
  ``losses.dodging``, and ``run`` hands it the batch's references.
  """
  model: Any
  attack: str
  eps: float
  steps: int = 10
  alpha: float | None = None
  name: str = 'torch'
  loss: str = 'cross_entropy'

  def __post_init__(self):
    import torch
    if self.loss not in LOSSES:
      raise ValueError(f'unknown loss {self.loss!r}; expected one of {LOSSES}')
    if self.loss == 'dodging':
      self.model = dodging_logits(self.model)
    # The GPU when this torch build has one (a CUDA wheel), as fgsm_jax's JAX would use it.
    self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    self.model = self.model.to(self.device)
    self._fn, self.implementation = torch_attack(self.model, self.attack, self.eps,
                                                 steps=self.steps, alpha=self.alpha)
    if self.loss == 'dodging':
      self.implementation += ' (dodging loss as cross-entropy of [0, ||f(x) - r||^2])'
    self.implementation += f' on {self.device}'

  def prepare(self, images: np.ndarray, labels: np.ndarray) -> tuple:
    """(images NCHW, labels[, references]) as tensors on the peer's device."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(self.device)
    if self.loss == 'dodging':
      refs = np.array(labels, np.float32)
      if refs.ndim != 2 or refs.shape[0] != images.shape[0]:
        raise ValueError(f'expected reference descriptors N x D for {images.shape[0]} images, '
                         f'got shape {refs.shape}')
      return (x, torch.zeros(len(refs), dtype=torch.int64, device=self.device),
              torch.from_numpy(refs).to(self.device))   # refs: a fresh writable copy
    return x, torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)

  def run(self, inputs):
    import torch
    if self.loss == 'dodging':
      images, zeros, self.model.references = inputs
      inputs = (images, zeros)
    out = self._fn(*inputs)
    if self.device == 'cuda':
      torch.cuda.synchronize()   # CPU torch is synchronous already
    return out

  def to_numpy(self, out) -> np.ndarray:
    return out.detach().cpu().numpy().transpose(0, 2, 3, 1)


MODELS = ('cnn', 'dlib')


def build_peers(names: list[str], attack: str, params: Any, num_classes: int, eps: float, *,
                image_size: int = 160, steps: int = 10, alpha: float | None = None,
                model: str = 'cnn') -> list:
  """The peers called ``names`` (from PEERS) that exist for ``attack`` on ``model``.

  ``model='cnn'``: OriginalCNN's ``params``, cross-entropy on ``num_classes`` logits of
  ``image_size`` images; 'tf' gives two peers (eager and tf.function) and has FGSM only, as
  in the notebook; 'torch' has FGSM and PGD.
  ``model='dlib'``: DlibResNet's ``params`` (``num_classes`` and ``image_size`` unused),
  the dodging loss (labels are reference descriptors); only 'torch' (FGSM and PGD).
  """
  if model not in MODELS:
    raise ValueError(f'no peers for model {model!r}; expected one of {MODELS}')
  peers = []
  for name in names:
    if name not in PEERS:
      raise ValueError(f'unknown peer {name!r}; expected some of {PEERS}')
    if name == 'tf' and attack == 'fgsm' and model == 'cnn':
      keras_model = tf_model(params, num_classes, image_size)
      peers += [TFPeer(keras_model, eps, function=False),
                TFPeer(keras_model, eps, function=True)]
    elif name == 'torch' and attack in ('fgsm', 'pgd'):
      if model == 'cnn':
        peers.append(TorchPeer(torch_model(params, num_classes, image_size), attack, eps,
                               steps=steps, alpha=alpha))
      else:
        peers.append(TorchPeer(torch_dlib_model(params), attack, eps, steps=steps,
                               alpha=alpha, loss='dodging'))
  return peers


# A pixel whose |input gradient| is under this fraction of its image's largest is "zero up to
# float32 rounding": on an H200 the plain and the fast CNN disagreed in sign on 2.7% of
# pixels, whose |gradient| was a median 5.5e-9 of the maximum (99% under 4.1e-8), against
# 0.065 over all pixels (BENCHMARKS.md section 7). sign() of those is rounding noise.
GRADIENT_FLOOR = 1e-6


def compare_adversarials(ours: np.ndarray, theirs: np.ndarray, eps: float,
                         gradient: np.ndarray | None = None,
                         floor: float = GRADIENT_FLOOR) -> dict[str, float]:
  """How far two attacks' adversarial images are apart.

  A pixel whose gradient is ~0 can get opposite signs from two float implementations, which
  moves it by up to 2 eps (1 eps where one side rounds to exactly 0), so besides the largest
  difference this reports the fraction of pixels differing by more than eps / 10. Given
  ``gradient`` (one side's input gradient, the shape of the images: single-step attacks),
  it also reports that fraction among the pixels whose |gradient| is above ``floor`` times
  its image's largest (``frac_pixels_differ_above_floor``; where the sign is decided by the
  network, not by rounding) and the share of pixels below the floor.
  """
  ours = np.asarray(ours, np.float32)
  theirs = np.asarray(theirs, np.float32)
  if ours.shape != theirs.shape:
    raise ValueError(f'shape mismatch: {ours.shape} vs {theirs.shape}')
  diff = np.abs(ours - theirs)
  out = {'max_abs_diff': float(diff.max()),
         'frac_pixels_differ': float(np.mean(diff > eps / 10)),
         'mean_abs_diff': float(diff.mean())}
  if gradient is not None:
    g = np.abs(np.asarray(gradient, np.float32))
    if g.shape != ours.shape:
      raise ValueError(f"expected a gradient of the images' shape {ours.shape}, got {g.shape}")
    peak = g.reshape(len(g), -1).max(axis=1).reshape((-1,) + (1,) * (g.ndim - 1))
    decided = g > floor * peak
    out['frac_pixels_below_floor'] = float(1.0 - decided.mean())
    out['frac_pixels_differ_above_floor'] = (float(np.mean(diff[decided] > eps / 10))
                                             if decided.any() else 0.0)
  return out
