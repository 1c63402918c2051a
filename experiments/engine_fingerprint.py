#!/usr/bin/env python
"""Fingerprint the compiled iterative attacks and the protected photos, to compare two checkouts.

  python experiments/engine_fingerprint.py --json before.json --photos-npz before.npz \
      --photos ../shared/datasets/gt_db/s03/06.jpg
  (then, in the other checkout, the same with --against before.npz)

Prints each attack's StableHLO line count and operations hash (the same hash: the same
program), and with --photos protects each photo with each preset (both recognizers) and
compares the result with --against's, pixel for pixel.
"""
from __future__ import annotations

import sys

from fgsm_jax import cli

ATTACKS = ('pgd', 'mifgsm', 'nifgsm', 'vmifgsm', 'difgsm', 'tifgsm')


def parse_args(argv=None):
  p = cli.parser(__doc__)
  p.add_argument('--attacks', default=','.join(ATTACKS), metavar='NAMES',
                 help=f'comma-separated attacks to lower (default: {",".join(ATTACKS)})')
  p.add_argument('--photos', nargs='*', default=[], metavar='PHOTO',
                 help='photos to protect with each of --presets (default: none)')
  p.add_argument('--presets', default='fast,default', metavar='NAMES',
                 help='comma-separated protection presets (default: fast,default)')
  p.add_argument('--photos-npz', type=cli.nonempty_path, default=None, metavar='FILE',
                 help='write the protected photos here (.npz)')
  p.add_argument('--against', type=cli.nonempty_path, default=None, metavar='FILE',
                 help="another checkout's --photos-npz to compare with")
  p.add_argument('--json', type=cli.nonempty_path, default=None, metavar='FILE',
                 help='write the fingerprints here as JSON')
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  import io as bytes_io
  import numpy as np
  from fgsm_jax import attacks, io
  from fgsm_jax.benchmarks import fingerprint
  from fgsm_jax.protect.presets import PRESETS
  names = [n for n in args.attacks.split(',') if n]
  bad = [n for n in names if n not in attacks.ATTACKS] + [
      n for n in args.presets.split(',') if n not in PRESETS]
  if bad:
    cli.fail(f'unknown attack or preset {bad[0]!r}', 2)
  record = {'programs': {}, 'photos': {}}
  for name in names:
    fp = fingerprint.program_fingerprint(name)
    record['programs'][name] = fp
    print(f"{name:8s} {fp['lines']:5d} lines  ops {fp['hash']}", flush=True)
  if args.photos:
    try:
      protected = fingerprint.protect_fingerprints(args.photos, args.presets.split(','))
      if args.against:
        with np.load(args.against) as before:
          record['photos'] = fingerprint.compare_protected(dict(before), protected)
    except (ValueError, OSError) as e:  # a missing or bad photo, no face, a bad .npz
      cli.fail(cli.one_line(e))
    if args.photos_npz:
      buffer = bytes_io.BytesIO()
      np.savez_compressed(buffer, **protected)
      io.atomic_write_bytes(args.photos_npz, buffer.getvalue())
    for key, verdict in record['photos'].items():
      print(f'{key}: {verdict}')
  if args.json:
    io.write_json(args.json, record)
  return 0


if __name__ == '__main__':
  sys.exit(main())
