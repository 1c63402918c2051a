"""Rooflines for attack throughput: an attack's least work per image, and the device's ceilings.

The original CNN's FGSM step (``cnn_fgsm_cost``) is counted by hand; the device's ceilings
(``measure_ceilings``) are measured on the device, not taken from a datasheet; and
``roofline_rows`` sets each benchmark record (experiments/benchmark_fgsm.py JSON) against the
attainable rate min(P / (S F), BW / (S B)) images/s -- F and B one step's FLOPs and bytes per
image, S the attack's steps (each PGD / MI-FGSM step is one forward + backward pass, as
FGSM), P the matrix-product ceiling for the record's dtype, BW the copy ceiling.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

DTYPE_BYTES = {'float32': 4, 'bfloat16': 2}
# (features, pool) of the original CNN's conv blocks (fgsm_jax.models.OriginalCNN).
_CNN_BLOCKS = ((8, 2), (16, 3), (32, 3))


def cnn_fgsm_cost(image_size: int = 160, num_classes: int = 50,
                  dtype_bytes: int = 4) -> dict[str, float]:
  """FLOPs and least memory traffic (bytes) of one FGSM step per image on the original CNN.

  FLOPs (2 per multiply-add; elementwise ops, pooling and the loss are < 1% and left out):
  forward = sum over convs of H W Cout (9 Cin) + Dense 2048 x 512 + 512 x classes;
  backward to the input = the same again (each conv's and Dense's input gradient costs as
  much as its forward; no weight gradients are needed). 160 x 160: 17.1 M MACs each way,
  68.5 MFLOP per image (XLA's own count of the compiled step, cost_analysis(), is 72.7 with
  the elementwise work).
  Bytes (the least traffic of a per-layer implementation): every activation written once and
  read once forward, every activation gradient written once and read once backward, plus
  each layer's saved input read again for its mask (ReLU/pool): about 5 x (sum of
  activation sizes) x ``dtype_bytes``, + the float32 image read twice and the result written.
  Weights (4.3 MB, mostly Dense_0) are read once per batch, not per image, and left out.
  At float32 that is 10.3 MB per image: 6.6 FLOP per byte, below the ridge point of every
  current GPU, so the CNN's attacks are memory-bound there.
  """
  side, cin = image_size, 3
  macs = 0
  elements = side * side * cin
  for features, pool in _CNN_BLOCKS:
    macs += side * side * features * 9 * cin
    elements += side * side * features          # conv output
    side //= pool
    elements += side * side * features          # pooled
    cin = features
  macs += side * side * cin * 512 + 512 * num_classes
  elements += 512 + num_classes
  image = image_size * image_size * 3
  return {'flops_per_image': 2.0 * 2 * macs,
          'bytes_per_image': dtype_bytes * 5.0 * elements + 4.0 * 3 * image}


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
  fn()   # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure_ceilings(copy_mib: int = 4096, matmul_n: int = 8192, repeats: int = 10) -> dict:
  """The default JAX device's copy bandwidth and matrix-product rates.

  copy_bytes_per_s: (bytes read + bytes written) / median time of ``x * 1.5`` over a float32
  array of ``copy_mib`` MiB. matmul_flops_per_s[dtype]: 2 n^3 / median time of an n x n
  product of random matrices (float32 at XLA's default precision, which may use TF32 on
  NVIDIA GPUs; bfloat16). Size them well past the caches (the defaults suit a GPU).
  """
  import jax
  import jax.numpy as jnp
  x = jnp.ones((copy_mib * 2**20 // 4,), jnp.float32)
  scale = jax.jit(lambda v: v * 1.5)
  t = _median_seconds(lambda: scale(x).block_until_ready(), repeats)
  out = {'device': jax.devices()[0].device_kind, 'backend': jax.default_backend(),
         'jax': jax.__version__, 'copy_bytes': 2 * x.nbytes, 'copy_s': t,
         'copy_bytes_per_s': 2 * x.nbytes / t, 'matmul_n': matmul_n, 'matmul_flops_per_s': {}}
  del x
  keys = jax.random.split(jax.random.key(0))
  matmul = jax.jit(jnp.matmul)
  for dtype in DTYPE_BYTES:
    a = jax.random.normal(keys[0], (matmul_n, matmul_n), jnp.float32).astype(dtype)
    b = jax.random.normal(keys[1], (matmul_n, matmul_n), jnp.float32).astype(dtype)
    t = _median_seconds(lambda: matmul(a, b).block_until_ready(), repeats)
    out['matmul_flops_per_s'][dtype] = 2.0 * matmul_n**3 / t
  return out


def roofline_rows(records: list[dict], ceilings: dict) -> list[dict]:
  """Each original-CNN record with a rate, against its roofline.

  Returns dicts with the record's framework, attack, model, dtype, batch_size, steps and
  images_per_s, plus attainable_images_per_s, share (measured / attainable), bound ('memory'
  or 'compute') and the achieved bytes/s and FLOP/s under ``cnn_fgsm_cost``'s counts.
  """
  bw = ceilings['copy_bytes_per_s']
  peaks = ceilings['matmul_flops_per_s']
  rows = []
  for r in records:
    if r.get('model') not in ('cnn', 'cnn-xla', 'cnn-fused') or not r.get('images_per_s'):
      continue
    dtype = r.get('dtype', 'float32')
    steps = r.get('steps') or 1
    cost = cnn_fgsm_cost(dtype_bytes=DTYPE_BYTES.get(dtype, 4))
    flops, traffic = steps * cost['flops_per_image'], steps * cost['bytes_per_image']
    compute_rate, memory_rate = peaks.get(dtype, peaks['float32']) / flops, bw / traffic
    attainable = min(compute_rate, memory_rate)
    rows.append({**{k: r.get(k) for k in ('framework', 'attack', 'model', 'dtype',
                                          'batch_size', 'steps', 'images_per_s')},
                 'attainable_images_per_s': attainable,
                 'share': r['images_per_s'] / attainable,
                 'bound': 'memory' if memory_rate < compute_rate else 'compute',
                 'achieved_bytes_per_s': r['images_per_s'] * traffic,
                 'achieved_flops_per_s': r['images_per_s'] * flops})
  return rows
