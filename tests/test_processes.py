"""fgsm_jax.processes in this process: the local port, and pinning's one-line refusal off Linux.
Pinning itself changes the process it runs in: tests/test_sharding.py pins child processes."""
from __future__ import annotations

import os
import socket

import pytest

from fgsm_jax import processes


def test_free_local_port_can_be_bound_on_localhost():
  port = processes.free_local_port()
  assert 1024 <= port < 65536
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', port))   # free: the coordinator will be able to listen there


def test_pinning_without_sched_setaffinity_is_a_one_line_error(monkeypatch):
  monkeypatch.delattr(os, 'sched_setaffinity', raising=False)
  with pytest.raises(RuntimeError, match='needs os.sched_setaffinity') as info:
    processes.pin_process_to_core(0)
  assert '\n' not in str(info.value)
