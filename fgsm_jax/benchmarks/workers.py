"""--cpu-processes: fgsm_jax's attack run by worker processes, one per CPU core.

Each worker (``python -m fgsm_jax.benchmarks.workers RANK COUNT PORT DIR``) pins itself to a
core (``processes.pin_process_to_core``, before JAX starts, so XLA:CPU runs each program on
one thread), joins the others with ``jax.distributed.initialize`` on 127.0.0.1 (the
multi-host code path on one host), reads the job (DIR/job.json: attack, model, dtype, batch,
steps, eps, num_classes, seed) and the inputs (DIR/images.npy, targets.npy), takes its rows
of the batch and compiles the data-parallel attack (``throughput.JaxRunner``). It prints
'ready COMPILE_S', then answers one line per command on its stdin: 'run' (one call, to
completion: 'done'), 'save' (writes DIR/adversarial_RANK.npy: 'saved'), 'quit'. Its stderr
goes to DIR/worker_RANK.log, whose last line is shown if it fails. ``ProcessRunner`` is the
parent's side: it times a call from sending 'run' to every worker until each has answered.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from fgsm_jax.benchmarks.throughput import JaxRunner, build_workload


class ProcessRunner:
  """fgsm_jax's attack run by ``count`` worker processes (``python -m
  fgsm_jax.benchmarks.workers``; the protocol is this module's docstring)."""
  framework = "fgsm_jax"

  def __init__(self, attack: str, model: str, dtype: str, batch: int, count: int,
               args: argparse.Namespace, images: np.ndarray, targets: np.ndarray):
    self.devices = count
    self.temp_bytes = self.flops_per_image = self.bytes_accessed_per_image = None
    self.implementation = (f"fgsm_jax ({model}, {dtype}, {count} processes, one per core, "
                           f"jax.distributed)")
    self.dir = pathlib.Path(tempfile.mkdtemp(prefix="fgsm_jax_workers_"))
    self.procs: list[subprocess.Popen] = []
    try:
      np.save(self.dir / "images.npy", images)
      np.save(self.dir / "targets.npy", targets)
      job = dict(attack=attack, model=model, dtype=dtype, batch=batch, steps=args.steps,
                 eps=args.eps, num_classes=args.num_classes, seed=args.seed)
      (self.dir / "job.json").write_text(json.dumps(job))
      from fgsm_jax import processes
      port = processes.free_local_port()
      for rank in range(count):
        with open(self.dir / f"worker_{rank}.log", "w") as log:
          self.procs.append(subprocess.Popen(
              [sys.executable, "-m", "fgsm_jax.benchmarks.workers", str(rank), str(count),
               str(port), str(self.dir)],
              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
              bufsize=1))
      self.compile_s = max(float(reply.split()[1]) for reply in self._expect("ready"))
    except BaseException:
      self.close()
      raise

  def _send(self, command: str):
    for proc in self.procs:
      proc.stdin.write(command + "\n")
      proc.stdin.flush()

  def _expect(self, word: str) -> list[str]:
    replies = []
    for rank, proc in enumerate(self.procs):
      line = proc.stdout.readline()
      if not line.startswith(word):
        log = (self.dir / f"worker_{rank}.log").read_text(errors="replace").strip()
        last = log.splitlines()[-1] if log else "(no output)"
        raise RuntimeError(f"worker {rank} of {len(self.procs)} answered {line.strip()!r} "
                           f"instead of {word!r}; its last log line: {last}")
      replies.append(line)
    return replies

  def call(self):
    self._send("run")
    self._expect("done")

  def result(self) -> np.ndarray:
    self._send("save")
    self._expect("saved")
    return np.concatenate([np.load(self.dir / f"adversarial_{rank}.npy")
                           for rank in range(len(self.procs))])

  def close(self):
    for proc in self.procs:
      try:
        if proc.poll() is None:
          proc.stdin.write("quit\n")
          proc.stdin.flush()
        proc.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    self.procs = []
    shutil.rmtree(self.dir, ignore_errors=True)


def worker_main(rank: int, count: int, port: int, where: str) -> int:
  """Worker ``rank`` of ``count``: see the module docstring."""
  from fgsm_jax import processes
  processes.pin_process_to_core(rank)   # before JAX starts: one XLA:CPU thread
  import jax
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=count,
                             process_id=rank)
  where = pathlib.Path(where)
  job = json.loads((where / "job.json").read_text())
  batch = job["batch"]
  # The parent's options were checked by its parser; a job written otherwise is checked here.
  if job["num_classes"] < 2 or batch % count or not 0 < job["eps"] <= 1 or job["steps"] < 1:
    print(f"error: bad job {job} for {count} workers", file=sys.stderr)
    return 2
  work = build_workload(job["model"], job["dtype"], job["num_classes"], job["seed"])
  rows = slice(rank * batch // count, (rank + 1) * batch // count)
  # JaxRunner's data-parallel form, given this process's rows: under jax.distributed
  # shard_batch and replicate assemble the global arrays from every process's part.
  ours = JaxRunner(job["attack"], work, batch, job["eps"], job["steps"],
                   np.load(where / "images.npy")[rows], np.load(where / "targets.npy")[rows])
  print(f"ready {ours.compile_s:.6f}", flush=True)
  for line in sys.stdin:
    command = line.strip()
    if command == "run":
      ours.call()
      print("done", flush=True)
    elif command == "save":
      [own] = ours.call().addressable_shards
      np.save(where / f"adversarial_{rank}.npy", np.asarray(own.data))
      print("saved", flush=True)
    elif command == "quit":
      break
  jax.distributed.shutdown()
  return 0


if __name__ == "__main__":
  _rank, _count, _port, _where = sys.argv[1:5]
  sys.exit(worker_main(int(_rank), int(_count), int(_port), _where))
