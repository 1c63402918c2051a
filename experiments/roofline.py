#!/usr/bin/env python
"""The device's ceilings, and each benchmark record's share of the original CNN's roofline.

  python experiments/roofline.py --measure --json ceilings.json bench.json ...   # on the device
  python experiments/roofline.py --ceilings ceilings.json bench.json ...        # anywhere

--measure times a large copy and matrix products on JAX's default device
(fgsm_jax.benchmarks.roofline.measure_ceilings); --ceilings reuses a JSON that --measure
wrote. Each original-CNN record of the benchmark JSONs (experiments/benchmark_fgsm.py --json)
is then printed against its roofline (fgsm_jax.benchmarks.roofline.roofline_rows): images/s,
the attainable images/s, the share, and the bytes/s and FLOP/s it achieves.
"""
from __future__ import annotations

import json
import pathlib
import sys

from fgsm_jax import cli
from fgsm_jax.benchmarks import roofline


def _line(row: dict) -> str:
  steps = f" {row['steps']} steps" if row['steps'] else ''
  return (f"{row['framework']:>12s} {row['attack']:>10s}{steps} {row['model']:>7s} "
          f"{row['dtype']:>8s} batch {row['batch_size']:5d}: {row['images_per_s']:11,.0f} img/s"
          f" = {100 * row['share']:5.1f}% of the {row['bound']}-bound roofline "
          f"({row['attainable_images_per_s']:,.0f} img/s; "
          f"{row['achieved_bytes_per_s'] / 1e12:.3f} TB/s, "
          f"{row['achieved_flops_per_s'] / 1e12:.2f} TFLOP/s)")


def _read_json(path: str, what: str):
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, ValueError) as e:
    cli.fail(f'{path}: cannot read {what} ({type(e).__name__}: {e})', 2)


def main(argv: list[str] | None = None) -> int:
  p = cli.parser(__doc__)
  p.add_argument('records', nargs='*', help='benchmark_fgsm.py JSON files')
  p.add_argument('--measure', action='store_true', help="measure this device's ceilings")
  p.add_argument('--ceilings', help='a JSON written by --measure --json, instead of measuring')
  p.add_argument('--copy-mib', type=cli.positive_int, default=4096,
                 help='copy size, MiB (default 4096)')
  p.add_argument('--matmul-n', type=cli.positive_int, default=8192,
                 help='matrix side (default 8192)')
  p.add_argument('--repeats', type=cli.positive_int, default=10, help='timed runs (default 10)')
  p.add_argument('--json', metavar='OUT', help='write the ceilings and rows here')
  args = p.parse_args(argv)
  if args.measure == bool(args.ceilings):
    p.error('give exactly one of --measure and --ceilings')
  if min(args.copy_mib, args.matmul_n, args.repeats) < 1:
    p.error('--copy-mib, --matmul-n and --repeats must be >= 1')
  if args.measure:
    ceilings = roofline.measure_ceilings(args.copy_mib, args.matmul_n, args.repeats)
  else:
    saved = _read_json(args.ceilings, 'ceilings')
    if not isinstance(saved, dict) or 'ceilings' not in saved:
      cli.fail(f"{args.ceilings}: no 'ceilings' (write it with --measure --json)", 2)
    ceilings = saved['ceilings']
  records = [r for path in args.records for r in _read_json(path, 'benchmark records')]
  rates = ', '.join(f'{k} {v / 1e12:.1f}' for k, v in ceilings['matmul_flops_per_s'].items())
  print(f"{ceilings['device']} ({ceilings['backend']}): copy "
        f"{ceilings['copy_bytes_per_s'] / 1e12:.3f} TB/s (read + write); "
        f'matrix products, TFLOP/s: {rates}')
  rows = roofline.roofline_rows(records, ceilings)
  for row in rows:
    print(_line(row))
  if args.json:
    from fgsm_jax import io
    io.write_json(args.json, {'ceilings': ceilings, 'rows': rows})
  return 0


if __name__ == '__main__':
  sys.exit(main())
