"""Throughput benchmarking for ``experiments/benchmark_fgsm.py``.

  throughput  workloads (model, dtype, weights), the runners (fgsm_jax in one process or as
              worker processes, peers), interleaved timing, the peers' image check, the JSON
              records.
  workers     --cpu-processes: the worker process (one per core) and the line protocol the
              parent (throughput.ProcessRunner) times it with; imports throughput.
  peers       TensorFlow and PyTorch implementations of the attacks on the original CNN and
              dlib's ResNet with the same weights (imported lazily, only when a peer is built).
  roofline    each record set against the machine's arithmetic and memory limits.
"""
