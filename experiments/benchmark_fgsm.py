#!/usr/bin/env python
r"""Time fgsm_jax's attacks (images/s) against TensorFlow and PyTorch on the same weights.

  python experiments/benchmark_fgsm.py --cpu-processes 2 --attacks fgsm --batch-sizes 64 \
      --peers tf --repeats 9 --warmup 2
  python experiments/benchmark_fgsm.py --models dlib --attacks pgd --steps 20 \
      --batch-sizes 8,32 --peers torch --json /tmp/bench.json

Models: 'cnn' the original face CNN with its fused blocks (fgsm_jax.models.fast_original_cnn),
'cnn-xla' the plain OriginalCNN, 'cnn-fused' the fused blocks on every backend, 'dlib' dlib's
face-recognition ResNet (fast forms). Attack 'fgsm_naive' is the library's plain FGSM
(jit(vmap(grad))) on the plain network. Runners, timing and checks: fgsm_jax.benchmarks.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from fgsm_jax.benchmarks.throughput import (  # noqa: F401  (CHECK_STEPS: tests read it here)
    CHECK_STEPS,
    DTYPES,
    EXTRA_ATTACKS,
    PEER_NAMES,
    models_available,
    run,
)


def _csv(kind: str, choices: tuple | list | None = None, cast: Callable = str):
  def parse(text: str) -> list:
    items = [t.strip() for t in text.split(',') if t.strip()]
    if not items:
      raise argparse.ArgumentTypeError(f'expected a comma-separated list of {kind}')
    out = []
    for item in items:
      try:
        value = cast(item)
      except ValueError:
        raise argparse.ArgumentTypeError(f'bad {kind} {item!r}') from None
      if choices is not None and value not in choices:
        raise argparse.ArgumentTypeError(
            f"unknown {kind} {item!r}; expected some of {', '.join(map(str, choices))}")
      if cast is int and value < 1:
        raise argparse.ArgumentTypeError(f'{kind} must be >= 1, got {value}')
      out.append(value)
    return list(dict.fromkeys(out))
  return parse


def build_parser() -> argparse.ArgumentParser:
  from fgsm_jax.attacks import ATTACKS
  p = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="What is measured and how: fgsm_jax/benchmarks/throughput.py's docstring.")
  p.add_argument('--attacks', type=_csv('attack', list(ATTACKS) + list(EXTRA_ATTACKS)),
                 default=['fgsm'], help='comma-separated (default fgsm)')
  p.add_argument('--models', type=_csv('model', models_available()), default=['cnn'],
                 help=f"comma-separated, of {', '.join(models_available())} (default cnn)")
  p.add_argument('--batch-sizes', type=_csv('batch size', cast=int), default=[1, 8, 64],
                 help='comma-separated (default 1,8,64)')
  p.add_argument('--dtypes', type=_csv('dtype', DTYPES), default=['float32'],
                 help='model compute dtypes: float32,bfloat16 (default float32)')
  p.add_argument('--steps', type=int, default=10, help="iterative attacks' steps (default 10)")
  p.add_argument('--eps', type=float, default=5 / 255,
                 help='L-inf budget in [0, 1] image units (default 5/255)')
  p.add_argument('--repeats', type=int, default=5, help='timed runs (default 5)')
  p.add_argument('--warmup', type=int, default=1, help='untimed runs after compiling (default 1)')
  p.add_argument('--peers', type=_csv('peer', PEER_NAMES), default=[],
                 help='also time tf (eager + tf.function FGSM; cnn only) and/or torch '
                      '(torchattacks FGSM/PGD; cnn and dlib), float32')
  p.add_argument('--peer-tolerance', type=float, default=1e-3,
                 help="largest fraction of pixels a peer's adversarial images may differ in, "
                      'per step of the attack (default 0.001)')
  p.add_argument('--cpu-devices', type=int, default=1,
                 help="split the CPU into this many devices and run fgsm_jax's attacks "
                      'data-parallel over them (CPU backend only; default 1)')
  p.add_argument('--cpu-processes', type=int, default=1,
                 help="run fgsm_jax's attacks as this many processes, one per CPU core, "
                      'the batch split between them (jax.distributed on 127.0.0.1; CPU '
                      'backend only; default 1)')
  p.add_argument('--fp32-strict', action='store_true',
                 help='full float32 convolutions and products in JAX and torch (no TF32)')
  p.add_argument('--num-classes', type=int, default=50,
                 help="classes of the original CNN's random weights (default 50)")
  p.add_argument('--seed', type=int, default=0,
                 help='seed of the random weights, images and targets (default 0)')
  p.add_argument('--json', metavar='OUT', help='write the records here (JSON list)')
  return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.repeats < 1 or args.warmup < 0 or args.steps < 1:
    parser.error('--repeats and --steps must be >= 1, --warmup >= 0')
  if not 0 < args.eps <= 1:
    parser.error(f'--eps must be in (0, 1], got {args.eps}')
  if args.num_classes < 2:
    parser.error('--num-classes must be >= 2')
  if args.cpu_devices < 1:
    parser.error(f'--cpu-devices must be >= 1, got {args.cpu_devices}')
  if args.cpu_devices > 1 and any(b % args.cpu_devices for b in args.batch_sizes):
    parser.error(f'--batch-sizes must be multiples of --cpu-devices {args.cpu_devices}')
  if args.cpu_processes < 1:
    parser.error(f'--cpu-processes must be >= 1, got {args.cpu_processes}')
  if args.cpu_processes > 1 and args.cpu_devices > 1:
    parser.error('use either --cpu-devices or --cpu-processes, not both')
  if args.cpu_processes > 1 and any(b % args.cpu_processes for b in args.batch_sizes):
    parser.error(f'--batch-sizes must be multiples of --cpu-processes {args.cpu_processes}')
  for peer, module in (('tf', 'tensorflow'), ('torch', 'torch')):
    if peer in args.peers:
      try:
        __import__(module)
      except ImportError:
        parser.error(f'--peers {peer}: {module} is not installed '
                     f"(pip install -e '.[peers]', see setup.cfg)")
  return args


def main(argv: list[str] | None = None) -> int:
  # torch's OpenMP threads otherwise busy-wait after each of its calls, through the start of
  # the next runner's timed call: with --cpu-processes, whose workers are pinned to the cores
  # those threads spin on, fgsm_jax measured 0.99-1.07x tf.function with torch's peer in the
  # rounds and 1.10-1.15x with this set (torch's own rate unchanged). Set before torch loads.
  os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
  args = parse_args(argv)
  if args.cpu_devices > 1:
    from fgsm_jax import sharding
    try:
      sharding.use_cpu_devices(args.cpu_devices)
    except RuntimeError as e:
      print(f'error: --cpu-devices {args.cpu_devices}: {e}', file=sys.stderr)
      return 2
  if args.fp32_strict:
    import jax
    jax.config.update('jax_default_matmul_precision', 'highest')
    if 'torch' in args.peers:
      import torch
      torch.backends.cudnn.allow_tf32 = False
      torch.backends.cuda.matmul.allow_tf32 = False
  records, all_match = run(args)
  if args.json:
    from fgsm_jax import io
    io.write_json(args.json, records)
    print(f'wrote {len(records)} records to {args.json}')
  if not all_match:
    print('error: some peers produced different adversarial images (see MISMATCH above)',
          file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
