"""Reader of TF.js graph models (``model.json`` + ``.bin`` weight shards) into numpy.

The TF.js format (tfjs-converter, ``format: "graph-model"``): ``model.json`` holds
``modelTopology`` (a TensorFlow GraphDef as JSON: ``node`` list with ``name``, ``op``,
``input`` and ``attr``) and ``weightsManifest``, a list of groups, each naming its shard
files (``paths``, relative to the json) and its ``weights`` (``name``, ``shape``, ``dtype``,
optional ``quantization``). The bytes of all shards, concatenated in manifest order, hold
the weights back to back, little-endian. A quantised weight stores ``uint8``/``uint16``
codes ``q`` dequantised as ``q * scale + min``, or ``float16`` values widened to float32.

Nothing here runs the graph: ``read_tfjs_graph`` returns the node list and the named
arrays, and a Flax port (e.g. ``models.mobileface``) maps them onto its parameters.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any

import numpy as np


class TfjsModelError(ValueError):
  """The model.json or its weight shards are missing, malformed or inconsistent."""


# Stored dtype -> numpy dtype (little-endian) of the unquantised TF.js dtypes we read.
_PLAIN_DTYPES = {'float32': '<f4', 'int32': '<i4', 'bool': 'u1'}
_NATIVE = {'float32': np.float32, 'int32': np.int32, 'bool': np.bool_}
_QUANT_DTYPES = {'uint8': 'u1', 'uint16': '<u2', 'float16': '<f2'}


@dataclasses.dataclass(frozen=True)
class TfjsGraph:
  """A parsed TF.js graph model.

  Attributes:
    nodes: the GraphDef nodes (dicts with ``name``, ``op``, optional ``input``, ``attr``),
      in file order.
    weights: every manifest weight by name, dequantised: float32 for float weights
      (quantised ones included), int32 for int32, bool for bool.
    signature: the model's ``signature`` (inputs/outputs), ``{}`` when absent.
  """
  nodes: list[dict[str, Any]]
  weights: dict[str, np.ndarray]
  signature: dict[str, Any]

  def node(self, name: str) -> dict[str, Any]:
    """The node called ``name``; KeyError naming it when absent."""
    for n in self.nodes:
      if n['name'] == name:
        return n
    raise KeyError(f'graph has no node {name!r}')


def _decode_weight(spec: dict[str, Any], buf: memoryview, pos: int) -> tuple[np.ndarray, int]:
  """One manifest entry read from ``buf`` at ``pos``; returns (array, next position)."""
  name, dtype = spec.get('name'), spec.get('dtype')
  shape = tuple(int(s) for s in spec.get('shape', []))
  count = math.prod(shape)
  quant = spec.get('quantization')
  if quant is not None:
    qdtype = quant.get('dtype')
    if qdtype not in _QUANT_DTYPES:
      raise TfjsModelError(f'weight {name!r}: unsupported quantization dtype {qdtype!r}')
    stored = np.dtype(_QUANT_DTYPES[qdtype])
  elif dtype in _PLAIN_DTYPES:
    stored = np.dtype(_PLAIN_DTYPES[dtype])
  else:
    raise TfjsModelError(f'weight {name!r}: unsupported dtype {dtype!r}')
  nbytes = count * stored.itemsize
  if pos + nbytes > len(buf):
    raise TfjsModelError(f'weight {name!r} {shape} needs bytes {pos}..{pos + nbytes}, '
                         f'shards hold {len(buf)}')
  raw = np.frombuffer(buf[pos:pos + nbytes], dtype=stored)
  if quant is None:
    out = raw.astype(_NATIVE[dtype])
  elif quant['dtype'] == 'float16':
    out = raw.astype(np.float32)
  else:
    # Affine quantisation: q * scale + min (tfjs-core io/io_utils.ts). Integer originals
    # (``original_dtype`` int32) are rounded back.
    out = raw.astype(np.float32) * np.float32(quant['scale']) + np.float32(quant['min'])
    if dtype == 'int32':
      out = np.round(out).astype(np.int32)
  return out.reshape(shape), pos + nbytes


def parse_tfjs_graph(model: dict[str, Any], shards: list[bytes]) -> TfjsGraph:
  """A TF.js graph model from its decoded ``model.json`` and the bytes of its shards.

  Args:
    model: the json object.
    shards: the contents of every path of every manifest group, in manifest order.

  Raises:
    TfjsModelError: not a graph model, or shards too short/long for the manifest.
  """
  if not isinstance(model, dict) or 'modelTopology' not in model or 'weightsManifest' not in model:
    raise TfjsModelError('not a TF.js model.json (needs modelTopology and weightsManifest)')
  nodes = model['modelTopology'].get('node')
  if not isinstance(nodes, list):
    raise TfjsModelError('modelTopology has no node list (not a graph model)')
  buf = memoryview(b''.join(shards))
  weights: dict[str, np.ndarray] = {}
  pos = 0
  for group in model['weightsManifest']:
    for spec in group.get('weights', []):
      weights[spec['name']], pos = _decode_weight(spec, buf, pos)
  if pos != len(buf):
    raise TfjsModelError(f'manifest uses {pos} bytes, shards hold {len(buf)}')
  return TfjsGraph(nodes=nodes, weights=weights, signature=model.get('signature', {}) or {})


def read_tfjs_graph(json_path: str | os.PathLike) -> TfjsGraph:
  """Reads ``model.json`` and the shards it names (beside it).

  Raises:
    TfjsModelError: one line naming the file and the problem.
  """
  json_path = pathlib.Path(json_path)
  try:
    model = json.loads(json_path.read_text())
  except OSError as e:
    raise TfjsModelError(f'{json_path}: cannot read: {e.strerror or e}') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise TfjsModelError(f'{json_path}: not JSON: {e}') from None
  shards = []
  try:
    for group in model.get('weightsManifest', []) if isinstance(model, dict) else []:
      for rel in group.get('paths', []):
        shard = json_path.parent / rel
        try:
          shards.append(shard.read_bytes())
        except OSError as e:
          raise TfjsModelError(f'{shard}: cannot read weight shard: {e.strerror or e}') from None
    return parse_tfjs_graph(model, shards)
  except TfjsModelError as e:
    if str(e).startswith(str(json_path.parent)):
      raise
    raise TfjsModelError(f'{json_path}: {e}') from None
