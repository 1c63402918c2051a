"""Throughput benchmarking helpers: peer implementations (TensorFlow, PyTorch) of the attacks
on the original CNN with the same weights, for ``experiments/benchmark_fgsm.py``.

TensorFlow and PyTorch are imported lazily, only when a peer is built.
"""
