"""Data parallelism over all devices: attacks and training with the batch split across a Mesh.

Every attack here treats examples independently, so data parallelism needs no communication:
``sharded_attack`` runs the attack on each device's slice of the batch (``jax.shard_map``;
the model's parameters are replicated) and returns the adversarial images as one array
sharded along the batch. Training (``sharded_train_step``) is ``fgsm_jax.train.train_step``
on a batch sharded along the batch axis and a replicated state: XLA's SPMD partitioner
inserts the all-reduce of the gradients, so the update equals the single-device one up to
float summation order.

A batch whose size is not a multiple of the device count is padded by repeating its last
example (``pad_batch``); attacks slice the padding off their result, training masks it out
of the loss and metrics (``train_step`` honours ``batch['mask']``).

Example (one host, all its devices):

  >>> mesh = batch_mesh()                                   # 1-D mesh, axis 'batch'
  >>> params = replicate(params, mesh)                      # once, not on every call
  >>> attack = sharded_attack(functools.partial(fgsm, apply_fn), mesh)
  >>> adv = attack(params, images, labels, 5 / 255)         # images N x H x W x 3, any N
  >>> step = sharded_train_step(mesh)
  >>> state, metrics = step(state, {'image': images, 'label': labels})

On a CPU-only host the same functions use every core: XLA:CPU runs one program's operations
one after another, each spreading over the cores only inside itself, so one FGSM program on
the original CNN kept ~1.3 of 2 cores busy; ``use_cpu_devices()`` (called right after
``import jax``) makes one JAX device per core, and ``sharded_attack`` then runs one slice of
the batch per core (~1.9 of 2 busy, ~1.4x the images/s; BENCHMARKS.md, throughput).

One process per core on one host is the multi-host path run on one machine: process i of n
calls ``pin_process_to_core(i)`` (``fgsm_jax.processes``) and
``jax.distributed.initialize('127.0.0.1:PORT', n, i)`` before anything else, and from there
on everything reads as below. On the 2-core dev machine this is the fastest way to use both cores (``experiments/benchmark_fgsm.py --cpu-processes``),
and ``tests/test_sharding.py`` runs it to check that it equals one process bit for bit.

Multi-host (e.g. 4 hosts x 8 GPUs; planned on paper, not run across hosts here): start the
same program on every host and call ``jax.distributed.initialize()`` first (on Cloud TPU and
SLURM it finds the coordinator itself; elsewhere pass ``coordinator_address='host0:1234',
num_processes=4, process_id=i``). ``jax.devices()`` then lists all 32 devices and
``batch_mesh()`` spans them. Each host reads only its own part of the data -- e.g. the
files ``i::4`` of a sorted list, a per-host batch of B / 4 -- and ``shard_batch`` assembles
the global batch from the hosts' parts with ``jax.make_array_from_process_local_data`` (no
host ever holds the whole batch); ``sharded_attack``/``sharded_train_step`` accept such
global arrays. Results are global arrays too: each host writes the rows it owns
(``adv.addressable_shards``), or gathers them with
``jax.experimental.multihost_utils.process_allgather``. Per-host batches must be equal in
size: pad the last one (``pad_batch``) on every host. Checkpoints of the replicated training
state are written by process 0 only.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# The batcher's padding: re-exported here, where sharded attacks and training use it.
from fgsm_jax.data.pipeline import leading_size, pad_batch  # noqa: F401

BATCH_AXIS = 'batch'


def use_cpu_devices(count: int | None = None) -> int:
  """Makes the CPU backend ``count`` devices (default: one per core); returns the count.

  Call it right after ``import jax``, before any JAX computation: the CPU backend reads the
  setting when it starts (this raises RuntimeError saying so if it has started). The devices
  share the host's memory and cores; each runs its own program, so a sharded batch
  (``sharded_attack``, ``sharded_train_step`` over ``batch_mesh()``) keeps every core busy.
  Other backends (GPU, TPU) are unaffected.
  """
  if count is None:   # the cores this process may run on, not the host's
    count = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  if count < 1:
    raise ValueError(f'expected a device count >= 1, got {count}')
  try:
    jax.config.update('jax_num_cpu_devices', count)
  except RuntimeError as e:
    raise RuntimeError(f'use_cpu_devices({count}) must run before any JAX computation, '
                       f"right after 'import jax' ({e})") from None
  return count


def batch_mesh(devices: Sequence[jax.Device] | None = None, axis: str = BATCH_AXIS) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all devices, of every host) named ``axis``."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError('expected at least one device')
  return Mesh(np.asarray(devices), (axis,))


def batch_sharding(mesh: Mesh, axis: str = BATCH_AXIS) -> NamedSharding:
  """Leading axis split over ``axis``, the other axes whole."""
  return NamedSharding(mesh, P(axis))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of ``tree`` (e.g. a model's parameters) whole on every device of ``mesh``.

  Do it once, before calling a sharded function repeatedly: arguments that are not yet
  replicated are copied to every device on every call (for the original CNN's 4 MB of
  parameters, about 1 ms of each 45 ms FGSM call at batch 64 on 2 CPU devices).
  """
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  # Under multi-process every process passes the same whole value; device_put cannot place
  # onto other processes' devices.
  def one(leaf):
    if jax.dtypes.issubdtype(getattr(leaf, 'dtype', None), jax.dtypes.prng_key):
      data = jax.make_array_from_process_local_data(sharding,
                                                    np.asarray(jax.random.key_data(leaf)))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

  return jax.tree.map(one, tree)


def shard_batch(batch: Any, mesh: Mesh, axis: str = BATCH_AXIS) -> Any:
  """Places ``batch`` (pytree, leading batch axis) split along ``axis`` of ``mesh``.

  On one host the batch is the whole batch, whose size must be a multiple of the mesh's
  ``axis`` size (``pad_batch`` first). Under multi-host (``jax.process_count() > 1``) each
  host passes its own part and gets the global array assembled from all hosts' parts.
  """
  sharding = batch_sharding(mesh, axis)
  count = mesh.shape[axis]
  if jax.process_count() > 1:
    return jax.tree.map(
        lambda leaf: jax.make_array_from_process_local_data(sharding, np.asarray(leaf)), batch)
  n = leading_size(batch)
  if n % count:
    raise ValueError(f'batch of {n} does not split over {count} devices; pad it first '
                     f'(pad_batch(batch, {count}))')
  return jax.device_put(batch, sharding)


def data_parallel(attack_fn: Callable[..., jnp.ndarray], mesh: Mesh, num_args: int,
                  batched_argnums: Sequence[int] = (1, 2),
                  axis: str = BATCH_AXIS) -> Callable[..., jnp.ndarray]:
  """The jitted ``shard_map`` of ``attack_fn`` over ``mesh``, without ``sharded_attack``'s padding.

  ``attack_fn`` takes ``num_args`` positional arguments; those at ``batched_argnums`` are split
  along ``axis`` (their batch must be a multiple of the device count), the others replicated.
  For ahead-of-time use (``.lower(...).compile()``) and for callers that place batches
  themselves; ``sharded_attack`` is this plus padding and placement.
  """
  specs = tuple(P(axis) if i in batched_argnums else P() for i in range(num_args))
  return jax.jit(jax.shard_map(attack_fn, mesh=mesh, in_specs=specs, out_specs=P(axis),
                               check_vma=False))


def sharded_attack(attack_fn: Callable[..., jnp.ndarray], mesh: Mesh, *,
                   batched_argnums: Sequence[int] = (1, 2),
                   axis: str = BATCH_AXIS) -> Callable[..., jnp.ndarray]:
  """``attack_fn`` run data-parallel: each device attacks its slice of the batch.

  Args:
    attack_fn: ``attack_fn(params, images, labels, *rest, **static) -> adversarial images``
      with the model already bound, e.g. ``functools.partial(fgsm, apply_fn)``. Examples must
      be independent (true of every attack in fgsm_jax.attacks).
    mesh: e.g. ``batch_mesh()``.
      The other arguments (params, ...) are best placed on it once with ``replicate``;
      otherwise each call copies them to every device.
    batched_argnums: positions of the positional arguments split along the batch (default
      images and labels); the others (params, eps, ...) are replicated. A randomised attack
      (PGD's random start, DI, ...) given one key would draw the same numbers on every device
      (each splits the key for its own examples): pass one key per example,
      ``jax.random.split(key, N)``, and list its position here, e.g. (1, 2, 3) for
      ``lambda params, images, labels, keys, eps: pgd(apply_fn, params, images, labels, eps,
      key=keys)`` (keys are keyword-only in the attacks); per-example results then do not
      depend on the device count.
    axis: the mesh axis to split over.

  Returns:
    ``run(*args, **static)``: ``static`` keyword arguments (steps=..., targeted=...) are
    passed to ``attack_fn`` as Python values; the result has the input batch's size
    (padding, when N is not a multiple of the device count, is removed) and is sharded
    along ``axis``. Under multi-process each process passes its own rows (a multiple of its
    local device count) and gets the global array, whose shards on its devices are its rows.
  """
  batched = tuple(sorted(set(batched_argnums)))
  count = mesh.shape[axis]

  @functools.lru_cache(maxsize=None)
  def compiled(num_args: int, static_items: tuple):
    static = dict(static_items)
    return data_parallel(lambda *a: attack_fn(*a, **static), mesh, num_args, batched, axis)

  def run(*args, **static):
    if not batched or max(batched) >= len(args):
      raise ValueError(f'batched_argnums {batched} out of range for {len(args)} arguments')
    parts = {i: args[i] for i in batched}
    if jax.process_count() > 1:
      # Each process passes its own rows; the result is the global array (each process
      # owns its rows' shards). Padding would interleave rows of different processes.
      local = count // jax.process_count()
      if leading_size(parts) % local:
        raise ValueError(f"under multi-process each process's batch must be a multiple of "
                         f'its {local} devices; got {leading_size(parts)} (pad_batch first)')
      n = None
    else:
      parts, n = pad_batch(parts, count)
    args = tuple(parts[i] if i in batched else a for i, a in enumerate(args))
    placed = tuple(shard_batch(a, mesh, axis) if i in batched else a
                   for i, a in enumerate(args))
    out = compiled(len(args), tuple(sorted(static.items())))(*placed)
    return out if n is None or out.shape[0] == n else out[:n]

  return run


def sharded_train_step(mesh: Mesh, axis: str = BATCH_AXIS,
                       step_fn: Callable | None = None) -> Callable:
  """``train.train_step`` data-parallel: state replicated, batch split along ``axis``.

  Returns ``step(state, batch) -> (state, metrics)``; ``batch`` is {'image', 'label',
  'mask'?} of any size (padded to a multiple of the device count, padding masked out). The
  new state is replicated on every device; the gradient is the global batch's (XLA
  all-reduces it), so the step equals the single-device one up to float summation order.
  """
  if step_fn is None:
    from fgsm_jax import train
    step_fn = train.train_step
  count = mesh.shape[axis]

  def step(state, batch):
    batch, _ = pad_batch(batch, count, mask_key='mask')
    state = replicate(state, mesh)
    return step_fn(state, shard_batch(batch, mesh, axis))

  return step
