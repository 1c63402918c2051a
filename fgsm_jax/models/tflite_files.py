"""Reader of TFLite flatbuffers (``.tflite``) into numpy: tensors, constants and operators.

A ``.tflite`` file is a FlatBuffer of the TFLite schema (``tensorflow/lite/schema/
schema.fbs``), file identifier ``TFL3`` at bytes 4..8. What is read here, by field number:

  Model:     operator_codes (1), subgraphs (2), buffers (4)
  SubGraph:  tensors (0), inputs (1), outputs (2), operators (3)
  Tensor:    shape (0), type (1), buffer (2), name (3)
  Operator:  opcode_index (0), inputs (1), outputs (2), builtin_options_type (3),
             builtin_options (4)
  OperatorCode: deprecated_builtin_code (0, int8), builtin_code (3, int32); the op is the
             larger of the two (codes >= 127 live only in the second)
  Buffer:    data (0, bytes), offset (1) and size (2) for data stored after the FlatBuffer

A tensor is a constant when its buffer holds data. Builtin options are read for the ops
the project's ports use (convolutions, element-wise arithmetic); others keep ``{}``.

Only reading: no interpreter, no TensorFlow import (the reference runtime for tests is
``tf.lite.Interpreter``). Little-endian, as every FlatBuffer.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
from typing import Any

import numpy as np

from fgsm_jax.io import read_bytes


class TfliteModelError(ValueError):
  """The ``.tflite`` file is missing, not a TFLite model, or malformed."""


# BuiltinOperator codes of the schema (the ones named in messages and checks).
BUILTIN_OPS = {
    0: 'ADD', 3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D', 18: 'MUL', 19: 'RELU', 22: 'RESHAPE',
    41: 'SUB', 54: 'PRELU', 101: 'ABS',
}
# TensorType -> numpy dtype (little-endian).
_TENSOR_TYPES = {0: '<f4', 1: '<f2', 2: '<i4', 3: 'u1', 4: '<i8', 9: 'i1', 10: '<f8'}
_PADDING = {0: 'SAME', 1: 'VALID'}
# builtin_options_type and the fields read (name, scalar format, default) per op.
_OPTIONS: dict[str, tuple[int, tuple[tuple[str, str, int], ...]]] = {
    'CONV_2D': (1, (('padding', 'b', 0), ('stride_w', 'i', 0), ('stride_h', 'i', 0),
                    ('fused_activation', 'b', 0), ('dilation_w', 'i', 1),
                    ('dilation_h', 'i', 1))),
    'DEPTHWISE_CONV_2D': (2, (('padding', 'b', 0), ('stride_w', 'i', 0),
                              ('stride_h', 'i', 0), ('depth_multiplier', 'i', 0),
                              ('fused_activation', 'b', 0), ('dilation_w', 'i', 1),
                              ('dilation_h', 'i', 1))),
    'ADD': (11, (('fused_activation', 'b', 0),)),
    'MUL': (21, (('fused_activation', 'b', 0),)),
    'SUB': (28, (('fused_activation', 'b', 0),)),
}


@dataclasses.dataclass(frozen=True)
class TfliteTensor:
  name: str
  shape: tuple[int, ...]
  dtype: np.dtype
  data: np.ndarray | None  # The constant's value; None for activations and inputs.


@dataclasses.dataclass(frozen=True)
class TfliteOp:
  op: str                   # e.g. "CONV_2D" ("BUILTIN_<code>" for codes not named above)
  inputs: tuple[int, ...]   # tensor indices (-1: an omitted optional input)
  outputs: tuple[int, ...]
  options: dict[str, Any]   # e.g. {"padding": "SAME", "stride_h": 2, ...}


@dataclasses.dataclass(frozen=True)
class TfliteGraph:
  """The first subgraph of a TFLite model: tensors by index, operators in execution order."""
  tensors: list[TfliteTensor]
  ops: list[TfliteOp]
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]

  def constant(self, index: int) -> np.ndarray | None:
    return self.tensors[index].data if 0 <= index < len(self.tensors) else None


class _Table:
  """A FlatBuffer table at ``pos`` of ``buf``: fields by number, defaults when absent."""

  def __init__(self, buf: bytes, pos: int):
    self.buf, self.pos = buf, pos
    vtable = pos - _unpack(buf, '<i', pos)
    self.vt_size = _unpack(buf, '<H', vtable)
    self.vtable = vtable

  def _field(self, n: int) -> int:
    """Absolute position of field ``n``, 0 when absent."""
    slot = 4 + 2 * n
    if slot >= self.vt_size:
      return 0
    off = _unpack(self.buf, '<H', self.vtable + slot)
    return self.pos + off if off else 0

  def scalar(self, n: int, fmt: str, default: int = 0) -> int:
    at = self._field(n)
    return _unpack(self.buf, '<' + fmt, at) if at else default

  def _ref(self, n: int) -> int:
    at = self._field(n)
    return at + _unpack(self.buf, '<I', at) if at else 0

  def table(self, n: int) -> _Table | None:
    at = self._ref(n)
    return _Table(self.buf, at) if at else None

  def vector(self, n: int, fmt: str) -> tuple:
    """A vector of scalars (``fmt`` one struct code), () when absent."""
    at = self._ref(n)
    if not at:
      return ()
    count = _unpack(self.buf, '<I', at)
    if at + 4 + count * struct.calcsize(fmt) > len(self.buf):
      raise TfliteModelError(f'vector at {at} runs past the end of the file')
    return struct.unpack_from(f'<{count}{fmt}', self.buf, at + 4)

  def bytes(self, n: int) -> memoryview:
    at = self._ref(n)
    if not at:
      return memoryview(b'')
    count = _unpack(self.buf, '<I', at)
    if at + 4 + count > len(self.buf):
      raise TfliteModelError(f'byte vector at {at} runs past the end of the file')
    return memoryview(self.buf)[at + 4:at + 4 + count]

  def tables(self, n: int) -> list[_Table]:
    at = self._ref(n)
    if not at:
      return []
    count = _unpack(self.buf, '<I', at)
    out = []
    for k in range(count):
      p = at + 4 + 4 * k
      out.append(_Table(self.buf, p + _unpack(self.buf, '<I', p)))
    return out

  def string(self, n: int) -> str:
    return bytes(self.bytes(n)).decode('utf-8', 'replace')


def _unpack(buf: bytes, fmt: str, at: int) -> int:
  if not 0 <= at <= len(buf) - struct.calcsize(fmt):
    raise TfliteModelError(f'offset {at} is outside the file ({len(buf)} bytes)')
  return struct.unpack_from(fmt, buf, at)[0]


def _options(op: str, opt_type: int, table: _Table | None) -> dict[str, Any]:
  if op not in _OPTIONS:
    return {}
  want, fields = _OPTIONS[op]
  if table is not None and opt_type != want:
    raise TfliteModelError(f'{op} has builtin options of type {opt_type}, expected {want}')
  out: dict[str, Any] = {}
  for k, (name, fmt, default) in enumerate(fields):
    out[name] = table.scalar(k, fmt, default) if table is not None else default
  if 'padding' in out:
    out['padding'] = _PADDING.get(out['padding'], f"padding {out['padding']}")
  return out


def parse_tflite(buf: bytes) -> TfliteGraph:
  """The first subgraph of the TFLite model in ``buf``.

  Raises:
    TfliteModelError: not a TFLite FlatBuffer, or malformed (offsets out of range).
  """
  if len(buf) < 8 or buf[4:8] != b'TFL3':
    raise TfliteModelError('not a TFLite model (no TFL3 identifier)')
  try:
    model = _Table(buf, _unpack(buf, '<I', 0))
    codes = []
    for c in model.tables(1):
      code = max(c.scalar(0, 'b', 0), c.scalar(3, 'i', 0))
      codes.append(BUILTIN_OPS.get(code, f'BUILTIN_{code}'))
    buffers = []
    for b in model.tables(4):
      data = b.bytes(0)
      offset, size = b.scalar(1, 'Q', 0), b.scalar(2, 'Q', 0)
      if not len(data) and offset > 1:  # Data placed after the FlatBuffer (large models).
        if offset + size > len(buf):
          raise TfliteModelError(f'buffer at {offset} + {size} runs past the end of the file')
        data = memoryview(buf)[offset:offset + size]
      buffers.append(data)
    subgraphs = model.tables(2)
    if not subgraphs:
      raise TfliteModelError('model has no subgraph')
    sg = subgraphs[0]
    tensors = []
    for t in sg.tables(0):
      shape = tuple(int(s) for s in t.vector(0, 'i'))
      ttype, name = t.scalar(1, 'b', 0), t.string(3)
      if ttype not in _TENSOR_TYPES:
        raise TfliteModelError(f'tensor {name!r} has unsupported type {ttype}')
      dtype = np.dtype(_TENSOR_TYPES[ttype])
      raw = buffers[t.scalar(2, 'I', 0)] if t.scalar(2, 'I', 0) < len(buffers) else None
      if raw is None:
        raise TfliteModelError(f"tensor {name!r} names buffer {t.scalar(2, 'I', 0)}, "
                               f'the model has {len(buffers)}')
      data = None
      if len(raw):
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dtype.itemsize:
          raise TfliteModelError(f'constant {name!r} {shape} {dtype.name} needs '
                                 f'{count * dtype.itemsize} bytes, its buffer holds {len(raw)}')
        data = np.frombuffer(raw, dtype).reshape(shape).astype(dtype.newbyteorder('='))
      tensors.append(TfliteTensor(name=name, shape=shape, dtype=dtype, data=data))
    ops = []
    for o in sg.tables(3):
      index = o.scalar(0, 'I', 0)
      if index >= len(codes):
        raise TfliteModelError(f'operator {len(ops)} names opcode {index}, the model has '
                               f'{len(codes)}')
      name = codes[index]
      ops.append(TfliteOp(op=name, inputs=tuple(o.vector(1, 'i')),
                          outputs=tuple(o.vector(2, 'i')),
                          options=_options(name, o.scalar(3, 'B', 0), o.table(4))))
    n = len(tensors)
    for k, op in enumerate(ops):
      if any(not -1 <= i < n for i in op.inputs + op.outputs):
        raise TfliteModelError(f'operator {k} ({op.op}) names a tensor outside 0..{n - 1}')
    return TfliteGraph(tensors=tensors, ops=ops, inputs=tuple(sg.vector(1, 'i')),
                       outputs=tuple(sg.vector(2, 'i')))
  except (struct.error, IndexError, ValueError) as e:
    if isinstance(e, TfliteModelError):
      raise
    raise TfliteModelError(f'malformed TFLite FlatBuffer ({e})') from None


def read_tflite(path: str | os.PathLike) -> TfliteGraph:
  """Reads and parses a ``.tflite`` file.

  Raises:
    TfliteModelError: one line naming the file and the problem.
  """
  path = pathlib.Path(path)
  buf = read_bytes(path, TfliteModelError)
  try:
    return parse_tflite(buf)
  except TfliteModelError as e:
    raise TfliteModelError(f'{path}: {e}') from None
