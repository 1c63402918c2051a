"""Process plumbing for one JAX process per CPU core on one host: core pinning, a local port.

Process i of n calls ``pin_process_to_core(i)`` and then
``jax.distributed.initialize(f'127.0.0.1:{port}', n, i)`` (``port`` from ``free_local_port()``
in the parent) before any JAX computation; from there on ``fgsm_jax.sharding`` treats the
processes as hosts of one mesh (``experiments/benchmark_fgsm.py --cpu-processes``,
``tests/test_sharding.py``).
"""
from __future__ import annotations

import os
import socket


def pin_process_to_core(index: int) -> int:
  """Pins this process to one CPU core, the ``index``-th (modulo their count) of the cores it
  may run on, and returns that core's number (Linux only).

  For one JAX process per core on one host: e.g. process ``i`` of ``n`` calls
  ``pin_process_to_core(i)`` and then ``jax.distributed.initialize('127.0.0.1:PORT', n, i)``;
  ``batch_mesh()`` then spans the n processes' CPU devices and ``sharded_attack`` splits a
  batch between them as between hosts. Call it before any JAX computation: XLA:CPU sizes its
  thread pool from the cores the process may use, and a pinned process runs each program on
  one thread. That is the fastest way found to use a small CPU's cores: within one process,
  devices (``use_cpu_devices``) share one thread pool whose threads contend with each other
  (FGSM on the original CNN, batch 64, 2 cores: ~39 ms with a pinned process per core,
  45-48 ms with two devices in one process; BENCHMARKS.md, throughput).
  """
  if not hasattr(os, 'sched_setaffinity'):
    raise RuntimeError('pinning a process to a core needs os.sched_setaffinity (Linux)')
  cores = sorted(os.sched_getaffinity(0))
  core = cores[index % len(cores)]
  os.sched_setaffinity(0, {core})
  return core


def free_local_port() -> int:
  """A TCP port free on 127.0.0.1 now, for the coordinator of processes on one host
  (``jax.distributed.initialize(f'127.0.0.1:{port}', n, i)``)."""
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]
