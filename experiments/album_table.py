#!/usr/bin/env python
"""An album against its photos protected one by one, per person, as Markdown.

  python experiments/album_table.py runs/album/privacy_eval.json runs/alone/privacy_eval.json

Both files are fgsm-jax-eval runs on the same probes, the first with --album K (one change
per person made over their first K probes, each probe starting from it), the second
without. Per person and attack set: the photos, the album's total seconds (wall and CPU;
the change's making included) against one photo alone (the median of that person's photos
in the second run), their ratio ("ten photos in N x the time of one"), the photos the
change protected with no round of their own, and each judge's PSR as saved in both runs.
CPU seconds are the steadier figure on a shared machine.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

from fgsm_jax.cli import fail
from fgsm_jax.io import read_json

HEADER = ('| person | attacked with | photos | album: s in all (CPU s) | one alone: median s '
          '(CPU s) | album / one photo, wall (CPU) | protected by the carried change alone '
          '| PSR album | PSR alone |')


def _by_person(run: dict) -> dict[tuple[str, str], list[dict]]:
  out: dict[tuple[str, str], list[dict]] = {}
  for r in run['runs']:
    for probe in r['probes']:
      out.setdefault((probe['identity'], '+'.join(r['attacked'])), []).append(probe)
  return out


def _psr(probes: list[dict], judges: list[str]) -> str:
  fooled = lambda n: sum(not p['judged']['none']['judges'][n]['rank1'] for p in probes)
  return ' / '.join(f'{fooled(n) / len(probes):.2f}' for n in judges)


def rows(album: dict, alone: dict) -> list[str]:
  """Markdown rows, one per person and attack set of ``album`` (see the docstring)."""
  judges = album['judges']
  singles = _by_person(alone)
  out = []
  for (who, tag), probes in sorted(_by_person(album).items()):
    one = singles.get((who, tag))
    if not one:
      continue
    # The universal change is made once, before the person's first probe (wall, CPU).
    made = [p.get('album_seconds', (0.0, 0.0)) for p in probes]
    wall = sum(m[0] for m in made) + sum(p['seconds'] for p in probes)
    cpu = sum(m[1] for m in made) + sum(p['cpu_seconds'] for p in probes)
    one_wall = statistics.median(p['seconds'] for p in one)
    one_cpu = statistics.median(p['cpu_seconds'] for p in one)
    free = sum(all(r == 0 for r in p['rounds']) for p in probes)
    out.append(f'| {who} | {tag} | {len(probes)} | {wall:.1f} ({cpu:.1f}) | {one_wall:.1f} '
               f'({one_cpu:.1f}) | {wall / one_wall:.1f}x ({cpu / one_cpu:.1f}x) | '
               f'{free} of {len(probes)} | {_psr(probes, judges)} | '
               f'{_psr(one, judges)} |')
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('album', type=pathlib.Path, help='privacy_eval.json of the --album run')
  p.add_argument('alone', type=pathlib.Path, help='privacy_eval.json of the same probes alone')
  args = p.parse_args(argv)
  runs = []
  for path, album in ((args.album, True), (args.alone, False)):
    try:
      run = read_json(path)
    except (OSError, ValueError) as e:
      fail(f'{path}: cannot read ({getattr(e, "strerror", None) or e})')
    if not isinstance(run, dict) or 'runs' not in run or bool(run.get('album')) != album:
      fail(f'{path}: not a fgsm-jax-eval result {"with" if album else "without"} --album')
    runs.append(run)
  try:
    lines = [f'PSR: {" / ".join(runs[0]["judges"])}, as saved', HEADER,
             '|' + '---|' * (HEADER.count(' | ') + 1)] + rows(*runs)
  except (KeyError, TypeError, ValueError) as e:  # a run from before CPU seconds were kept
    fail(f'{args.alone}: a probe lacks {e} (run it again with this version)')
  print('\n'.join(lines))
  return 0


if __name__ == '__main__':
  sys.exit(main())
