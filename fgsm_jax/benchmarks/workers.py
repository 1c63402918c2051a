"""--cpu-processes: fgsm_jax's attack run by worker processes, one per CPU core.

Each worker (``python -m fgsm_jax.benchmarks.workers RANK COUNT PORT DIR``) reads and checks
the job (DIR/job.json: attack, model, dtype, batch, steps, eps, num_classes, seed), pins
itself to a core (``processes.pin_process_to_core``, before JAX starts, so XLA:CPU runs each
program on one thread), joins the others with ``jax.distributed.initialize`` on 127.0.0.1
(the multi-host code path on one host), reads the inputs (DIR/images.npy, targets.npy), takes
its rows of the batch and compiles the data-parallel attack (``throughput.JaxRunner``). It prints
'ready COMPILE_S', then answers one line per command on its stdin: 'run' (one call, to
completion: 'done'), 'save' (writes DIR/adversarial_RANK.npy: 'saved'), 'quit'. Its stderr
goes to DIR/worker_RANK.log, whose last line is shown if it fails. The parent's side is
``throughput.ProcessRunner``: it times a call from sending 'run' to every worker until each has
answered. (This module imports throughput, never the other way round.)
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from fgsm_jax.benchmarks.throughput import JaxRunner, build_workload


def worker_main(rank: int, count: int, port: int, where: str) -> int:
  """Worker ``rank`` of ``count``: see the module docstring."""
  where = pathlib.Path(where)
  job = json.loads((where / 'job.json').read_text())
  batch = job['batch']
  # The parent's options were checked by its parser; a job written otherwise is checked here,
  # before this process pins itself or joins the others.
  if job['num_classes'] < 2 or batch % count or not 0 < job['eps'] <= 1 or job['steps'] < 1:
    print(f'error: bad job {job} for {count} workers', file=sys.stderr)
    return 2
  from fgsm_jax import processes
  processes.pin_process_to_core(rank)   # before JAX starts: one XLA:CPU thread
  import jax
  jax.distributed.initialize(coordinator_address=f'127.0.0.1:{port}', num_processes=count,
                             process_id=rank)
  work = build_workload(job['model'], job['dtype'], job['num_classes'], job['seed'])
  rows = slice(rank * batch // count, (rank + 1) * batch // count)
  # JaxRunner's data-parallel form, given this process's rows: under jax.distributed
  # shard_batch and replicate assemble the global arrays from every process's part.
  ours = JaxRunner(job['attack'], work, batch, job['eps'], job['steps'],
                   np.load(where / 'images.npy')[rows], np.load(where / 'targets.npy')[rows])
  print(f'ready {ours.compile_s:.6f}', flush=True)
  for line in sys.stdin:
    command = line.strip()
    if command == 'run':
      ours.call()
      print('done', flush=True)
    elif command == 'save':
      [own] = ours.call().addressable_shards
      np.save(where / f'adversarial_{rank}.npy', np.asarray(own.data))
      print('saved', flush=True)
    elif command == 'quit':
      break
  jax.distributed.shutdown()
  return 0


if __name__ == '__main__':
  _rank, _count, _port, _where = sys.argv[1:5]
  sys.exit(worker_main(int(_rank), int(_count), int(_port), _where))
