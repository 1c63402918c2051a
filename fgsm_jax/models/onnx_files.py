"""Reader of ONNX models (``.onnx``) into numpy: nodes, attributes and initializers.

Uses the ``onnx`` package only to decode the protobuf (``onnx.load``) and to turn
initializers and attributes into numpy and Python values; nothing here runs the graph (the
reference runtime for tests is onnxruntime). The result is plain Python, so a Flax port
(e.g. ``models.mobilefacenet``) maps it onto its parameters without ONNX types.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np

from fgsm_jax.io import read_bytes


class OnnxModelError(ValueError):
  """The ``.onnx`` file is missing, not an ONNX model, or malformed."""


@dataclasses.dataclass(frozen=True)
class OnnxNode:
  op: str                    # op_type, e.g. "Conv"
  name: str
  inputs: tuple[str, ...]    # value names ("" for an omitted optional input)
  outputs: tuple[str, ...]
  attrs: dict[str, Any]      # attribute values as Python ints, floats, lists, arrays


@dataclasses.dataclass(frozen=True)
class OnnxGraph:
  """The main graph of an ONNX model: nodes in file (topological) order, constants by name.

  Attributes:
    inputs: the graph inputs that are not initializers, with their shapes (None for a
      symbolic dimension).
    outputs: the graph output names.
    initializers: every initializer as a numpy array.
    opset: the default-domain opset version.
  """
  nodes: list[OnnxNode]
  initializers: dict[str, np.ndarray]
  inputs: dict[str, tuple[int | None, ...]]
  outputs: tuple[str, ...]
  opset: int


def read_onnx(path: str | os.PathLike) -> OnnxGraph:
  """Reads an ``.onnx`` file (weights inside it, no external data).

  Raises:
    OnnxModelError: one line naming the file and the problem.
  """
  import onnx  # Deferred: only the ONNX ports need it.
  from onnx import numpy_helper

  path = pathlib.Path(path)
  data = read_bytes(path, OnnxModelError)
  try:
    model = onnx.load_from_string(data)
  except Exception as e:  # noqa: BLE001 -- protobuf's DecodeError and friends.
    raise OnnxModelError(f'{path}: not an ONNX model ({type(e).__name__}: {e})') from None
  g = model.graph
  if not g.node:
    raise OnnxModelError(f'{path}: not an ONNX model (no graph nodes)')
  try:
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = [OnnxNode(op=n.op_type, name=n.name, inputs=tuple(n.input),
                      outputs=tuple(n.output),
                      attrs={a.name: _attr(onnx.helper.get_attribute_value(a))
                             for a in n.attribute})
             for n in g.node]
  except Exception as e:  # noqa: BLE001 -- external data, unknown types.
    raise OnnxModelError(f'{path}: cannot read its weights or attributes '
                         f'({type(e).__name__}: {e})') from None
  inputs = {}
  for i in g.input:
    if i.name in inits:  # Older exporters list initializers as inputs too.
      continue
    dims = i.type.tensor_type.shape.dim
    inputs[i.name] = tuple(d.dim_value if d.HasField('dim_value') else None for d in dims)
  opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')),
              default=0)
  return OnnxGraph(nodes=nodes, initializers=inits, inputs=inputs,
                   outputs=tuple(o.name for o in g.output), opset=int(opset))


def _attr(value: Any) -> Any:
  if isinstance(value, bytes):
    return value.decode('utf-8', 'replace')
  if isinstance(value, (list, tuple)):
    return [_attr(v) for v in value]
  return value
