#!/usr/bin/env python
"""Plots accuracy against eps from several fgsm_eval.json files on one figure.

  python experiments/plot_curves.py runs/gt_cnn runs/orl_cnn --out docs/accuracy_vs_eps.png
"""
from __future__ import annotations

import pathlib
import sys

from fgsm_jax import cli
from fgsm_jax.cli import fail


def main(argv=None) -> int:
  p = cli.parser(__doc__)
  p.add_argument('workdirs', nargs='+', type=pathlib.Path,
                 help='folders holding fgsm_eval.json and metrics.json')
  p.add_argument('--out', type=cli.nonempty_path, required=True, help='PNG to write')
  p.add_argument('--title', default='White-box FGSM on the original CNN (test splits)',
                 help='figure title')
  args = p.parse_args(argv)
  from fgsm_jax import figures, io
  curves = {}
  for workdir in args.workdirs:
    path = workdir / 'fgsm_eval.json'
    if not path.is_file():
      fail(f'{path}: not found (run experiments/fgsm_eval.py --workdir {workdir})')
    try:
      result = io.read_json(path)
      train_config = result['config'].get('train_config') or {}
      name = f"{train_config.get('model', '?')} on {train_config.get('dataset', workdir.name)}"
      curves[name] = {float(k): v for k, v in result['accuracy'].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
      fail(f'{path}: not an fgsm_eval.py result ({cli.one_line(e)})')
  try:
    figures.plot_accuracy_vs_eps(curves, args.out, title=args.title)
  except OSError as e:
    fail(f'{args.out}: cannot write ({e.strerror or cli.one_line(e)})')
  print(f'wrote {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
