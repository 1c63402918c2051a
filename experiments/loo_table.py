#!/usr/bin/env python
"""Leave-one-out tables from perceptual_frontier.py runs, as Markdown.

  python experiments/loo_table.py runs/loo5/frontier.json [runs/loo5_seed1/frontier.json ...]

For every config and every attack set that leaves recognizers out (the run's judges less the
attacked), one row: the left-out recognizer's PSR as saved and after each cheap defence
(JPEG 75 and 50, halving, 3 x 3 median, Gaussian blur sigma 1), the lowest PSR among the
recognizers attacked (as saved), the face's SSIMULACRA2 (mean / worst tenth) and LPIPS beside
the JPEG 50 re-save's, and seconds a photo. Several files (seeds) give a row each.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from fgsm_jax.io import read_json

DEFENCES = ('none', 'jpeg75', 'jpeg50', 'resize_half', 'median3', 'blur1')
HEADER = ('| config | seed | attacked with | left out | PSR as saved | JPEG 75 | JPEG 50 | halved '
          '| median 3 | blur 1 | attacked: lowest PSR | face SSIMULACRA2 (worst tenth) | LPIPS '
          '| JPEG 50 re-save: SSIMULACRA2 / LPIPS | s a photo |')


def _f(v: Any, digits: int = 2) -> str:
  return '–' if v is None else f'{v:.{digits}f}'


def rows(run: dict) -> list[str]:
  """Markdown rows of one frontier.json (see the module's docstring)."""
  out = []
  judges = run['judges']
  for config in run['configs']:
    attacked = config['attacked']
    psr, seen = config['psr'], config['perceptual']
    ref = seen.get('jpeg50', {})
    low = min(psr['none'][a] for a in attacked)
    for left in (j for j in judges if j not in attacked):
      cells = [_f(psr[d][left]) if d in psr else '–' for d in DEFENCES]
      s2 = seen['protected']['ssimulacra2']
      out.append(
          f"| {config['name']} | {run.get('seed', '–')} | {'+'.join(attacked)} | **{left}** | "
          + ' | '.join(cells)
          + f" | {_f(low)} | {_f(s2['mean'], 1)} ({_f(s2['worst_tenth'], 1)}) | "
          f"{_f(seen['protected']['lpips']['mean'], 3)} | "
          f"{_f(ref.get('ssimulacra2', {}).get('mean'), 1)} / "
          f"{_f(ref.get('lpips', {}).get('mean'), 3)} | "
          f"{_f(config['seconds_per_photo'], 1)} |")
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('runs', nargs='+', type=pathlib.Path, help='frontier.json files')
  args = p.parse_args(argv)
  lines = [HEADER, '|' + '---|' * HEADER.count(' | ') + '---|']
  for path in args.runs:
    try:
      run = read_json(path)
    except OSError as e:
      print(f'error: {path}: cannot read ({e.strerror or e})', file=sys.stderr)
      return 1
    try:
      lines += rows(run)
    except (ValueError, KeyError, TypeError) as e:
      print(f'error: {path}: not a perceptual_frontier.py result ({type(e).__name__}: {e})',
            file=sys.stderr)
      return 1
  print('\n'.join(lines))
  return 0


if __name__ == '__main__':
  sys.exit(main())
