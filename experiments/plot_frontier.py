#!/usr/bin/env python
"""Plots protection against visibility from perceptual_frontier.py runs: one point per config.

  python experiments/plot_frontier.py runs/screen1 runs/screen2 --out docs/frontier.png

Each RUN is a folder holding frontier.json (experiments/perceptual_frontier.py). The x axis
is the protected faces' mean SSIMULACRA2 (higher: less visible), the y axis each judge's
PSR on the saved files (white-box attack sets only, unless --all-sets); the vertical lines
are the same faces re-saved as JPEG 75 and 50 (the mean of the runs' references), the
visibility people accept. Configs that share a name across runs are plotted apart. With
--all-sets each recognizer's left-out points (the attack never saw it) are joined by a line
in order of SSIMULACRA2: its transfer curve.

  python experiments/plot_frontier.py runs/loo5 runs/loo5_eps13 --all-sets \
      --out docs/transfer_curve.png
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from fgsm_jax import cli
from fgsm_jax.cli import fail


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.parser(__doc__)
  p.add_argument('runs', nargs='+', type=cli.nonempty_path, metavar='RUN',
                 help='folders holding frontier.json')
  p.add_argument('--out', type=cli.nonempty_path, required=True,
                 help='the PNG to write (atomically)')
  p.add_argument('--all-sets', action='store_true',
                 help='also plot leave-one-out attack sets (default: white-box only)')
  return p.parse_args(argv)


def load_points(runs, all_sets: bool = False) -> tuple[list[dict], dict[str, list[float]]]:
  """[{'label', 'ssimulacra2', 'psr': {judge: psr}}], and the JPEG references' means."""
  points, refs = [], {'jpeg75': [], 'jpeg50': []}
  for run in runs:
    path = pathlib.Path(run) / 'frontier.json'
    try:
      data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      fail(f'{path}: cannot read a frontier run ({getattr(e, "strerror", None) or e})')
    for c in data.get('configs', []):
      whitebox = sorted(c['attacked']) == sorted(data['judges'])
      if not whitebox and not all_sets:
        continue
      seen = c['perceptual']
      label = c['name'] + ('' if whitebox else f' [{"+".join(c["attacked"])}]')
      points.append({'label': label, 'ssimulacra2': seen['protected']['ssimulacra2']['mean'],
                     'whitebox': whitebox,
                     'psr': {n: v for n, v in c['psr']['none'].items()
                             if whitebox or n not in c['attacked']}})
      for q in refs:
        refs[q].append(seen[q]['ssimulacra2']['mean'])
  return points, refs


def left_out_curve(points: list[dict], judge: str) -> list[tuple[float, float]]:
  """(SSIMULACRA2, PSR) of ``judge`` where the attack left it out, by SSIMULACRA2."""
  return sorted((p['ssimulacra2'], p['psr'][judge]) for p in points
                if not p['whitebox'] and judge in p['psr'])


def main(argv=None) -> int:
  args = parse_args(argv)
  points, refs = load_points(args.runs, args.all_sets)
  if not points:
    fail('no config to plot in ' + ', '.join(map(str, args.runs)))
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  import numpy as np

  from fgsm_jax import io
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  judges = sorted({n for p in points for n in p['psr']})
  for n, marker in zip(judges, 'os^vD'):
    xs = [p['ssimulacra2'] for p in points if n in p['psr']]
    ys = [p['psr'][n] for p in points if n in p['psr']]
    dots = ax.scatter(xs, ys, marker=marker, label=f'PSR, judged by {n}', alpha=0.8)
    curve = left_out_curve(points, n)
    if len(curve) > 1:
      ax.plot(*zip(*curve), color=dots.get_facecolor()[0], lw=1, alpha=0.8)
  for p in points:
    if p['whitebox']:  # left-out points are told apart by their judge's line
      ax.annotate(p['label'], (p['ssimulacra2'], max(p['psr'].values())), fontsize=7,
                  xytext=(3, 3), textcoords='offset points')
  for q, ls in (('jpeg75', ':'), ('jpeg50', '--')):
    if refs[q]:
      ax.axvline(float(np.mean(refs[q])), color='grey', ls=ls, lw=1,
                 label=f'the same faces re-saved as JPEG {q[4:]}')
  ax.set_xlabel('face SSIMULACRA2 of the protected photo (higher: less visible)')
  ax.set_ylabel('protection success rate (saved file)')
  ax.set_ylim(-0.03, 1.03)
  ax.legend(fontsize=8, loc='lower left')
  ax.set_title('protection against visibility, one point per setting'
               + ('; a line per recognizer left out of the attack' if args.all_sets else ''),
               fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, args.out, dpi=110)
  plt.close(fig)
  print(f'wrote {args.out} ({len(points)} points)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
