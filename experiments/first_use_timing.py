#!/usr/bin/env python
"""Time protecting photos as a new user would: a cold run (empty compilation cache), then warm.

  python experiments/first_use_timing.py --gt-dir ../shared/datasets/gt_db [--repeats 2]

Ten GT photos whose faces span every window size GT has (240-432 px windows) are protected
with the default preset (or --preset) against every recognizer (or --recognizers) (dlib's ResNet and MobileFace, each judged
after every round), each run in a fresh Python process as `protect_photos.py` would
(`files.protect_file`, PNG written to a temporary folder, kept even when a face stays
recognised so that every photo is timed the same way):

  cold: an empty compilation cache: seconds per photo including every compilation, and
        the whole process (imports and model loading too) divided by the photos;
  warm: the same cache again: seconds per photo, and, in the same process on the same
        photos, real dlib's own detect + encode (`recognizer.describe`), and their ratio.

Each child also counts XLA compilations (JAX's backend-compile events) and their seconds,
and the cache's hits and writes. `--repeats` runs the cold + warm pair that many times (the
machine may be shared: the spread matters). Prints a table and writes --json if given;
--keep-outputs keeps every output PNG, to compare two versions of the code bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from fgsm_jax import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Person/photo of GT with the face window side the default preset gives (measured on the
# first photo of each person): four sizes, as many different people.
PHOTOS = ('s38/01', 's02/01', 's04/01', 's01/01', 's13/01', 's06/01', 's08/01', 's17/01',
          's40/01', 's22/01')


def _child(gt_dir: pathlib.Path, cache: pathlib.Path, keep: pathlib.Path | None = None,
           preset_name: str = 'default', names: tuple[str, ...] | None = None) -> dict:
  """One run: protect every photo, then time real dlib on them; counts compilations."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from jax import monitoring

  from fgsm_jax import compile_cache
  events = {'compiles': 0, 'compile_s': 0.0, 'hits': 0, 'writes': 0}

  def on_event(event, **kwargs):
    if event == '/jax/compilation_cache/cache_hits':
      events['hits'] += 1
    elif event == '/jax/compilation_cache/cache_misses':
      events['writes'] += 1

  def on_duration(event, seconds, **kwargs):
    if event == '/jax/core/compile/backend_compile_duration':
      events['compiles'] += 1
      events['compile_s'] += seconds

  monitoring.register_event_listener(on_event)
  monitoring.register_event_duration_secs_listener(on_duration)
  compile_cache.enable(cache)

  import jax

  from fgsm_jax.data import images
  from fgsm_jax.protect import files, photo, recognizer
  from fgsm_jax.protect.presets import PRESETS
  preset = PRESETS[preset_name]
  recognizers = photo.load_recognizers(names or preset.recognizers)
  models = recognizer.load_real_dlib()
  protect, cpu, distances, written = [], [], [], []
  with tempfile.TemporaryDirectory() as out:
    for i, name in enumerate(PHOTOS):
      path = gt_dir / f'{name}.jpg'
      res = files.protect_file(path, pathlib.Path(out) / f'{i}.png', preset,
                               jax.random.key(i), recognizers=recognizers, models=models,
                               keep_unverified=True)
      if res.error:
        raise SystemExit(f'error: {res.error}')
      protect.append(res.seconds)
      cpu.append(res.cpu_seconds)
      written.append(res.verified)
      distances += [f.distance for f in res.faces]
      if keep is not None:  # the outputs, to compare code versions bit for bit
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f'{name.replace("/", "_")}.png').write_bytes(res.out_path.read_bytes())
  dlib = []
  for name in PHOTOS:
    rgb = images.load_rgb(gt_dir / f'{name}.jpg')
    t = time.perf_counter()
    recognizer.describe(rgb, models)
    dlib.append(time.perf_counter() - t)
  return dict(protect_s=protect, protect_cpu_s=cpu, dlib_s=dlib, distances=distances,
              written=written, **events)


def _run_child(gt_dir: pathlib.Path, cache: pathlib.Path, keep: pathlib.Path | None,
               options: list[str]) -> dict:
  env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
  start = time.perf_counter()
  out = subprocess.run([sys.executable, __file__, '--gt-dir', str(gt_dir), '--child',
                        str(cache)] + (['--keep-outputs', str(keep)] if keep else []) + options,
                       env=env, capture_output=True, text=True)
  wall = time.perf_counter() - start
  if out.returncode:
    raise SystemExit(f'error: child run failed:\n{out.stderr[-2000:]}')
  res = json.loads(out.stdout.strip().splitlines()[-1])
  res['process_s'] = wall
  return res


def main(argv=None) -> int:
  p = cli.parser(__doc__)
  p.add_argument('--gt-dir', type=pathlib.Path, required=True,
                 help='the Georgia Tech face database folder (holding s01/ ... s50/)')
  p.add_argument('--repeats', type=cli.positive_int, default=1, help='cold + warm pairs to run')
  p.add_argument('--json', type=pathlib.Path, default=None, help='also write the results here')
  p.add_argument('--keep-outputs', type=pathlib.Path, default=None,
                 help='also copy every output PNG (written or not) under DIR/run<r>_<cold|warm>/ '
                      '(to compare code versions bit for bit)')
  p.add_argument('--preset', default='default',
                 help='the protection preset (fgsm_jax.protect.presets.PRESETS)')
  p.add_argument('--recognizers', type=cli.recognizer_list, default=None, metavar='NAMES',
                 help="the ensemble attacked and judging (default: the preset's own)")
  p.add_argument('--child', type=pathlib.Path, default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  from fgsm_jax.protect.presets import PRESETS
  if args.preset not in PRESETS:
    p.error(f'unknown preset {args.preset!r}; expected one of {", ".join(PRESETS)}')
  options = ['--preset', args.preset] + (
      ['--recognizers', ','.join(args.recognizers)] if args.recognizers else [])
  missing = [n for n in PHOTOS if not (args.gt_dir / f'{n}.jpg').is_file()]
  if missing:
    p.error(f'{args.gt_dir}: missing GT photos {", ".join(missing)}.jpg')
  if args.child is not None:
    print(json.dumps(_child(args.gt_dir, args.child, args.keep_outputs, args.preset,
                            args.recognizers)))
    return 0

  n = len(PHOTOS)
  runs = []
  print(f'{n} GT photos, {args.preset} preset; per photo: protect (s), process wall / photos (s), '
        'real dlib detect + encode (s)', flush=True)
  for r in range(args.repeats):
    with tempfile.TemporaryDirectory() as cache:
      keep = {label: args.keep_outputs / f'run{r + 1}_{label}' if args.keep_outputs else None
              for label in ('cold', 'warm')}
      cold = _run_child(args.gt_dir, pathlib.Path(cache) / 'jax', keep['cold'], options)
      warm = _run_child(args.gt_dir, pathlib.Path(cache) / 'jax', keep['warm'], options)
    for label, res in (('cold', cold), ('warm', warm)):
      per = sum(res['protect_s']) / n
      dlib = sum(res['dlib_s']) / n
      cpu = sum(res['protect_cpu_s']) / n
      print(f'run {r + 1} {label}: {per:.2f} s/photo protect ({cpu:.2f} s CPU), '
            f'{res["process_s"] / n:.2f} '
            f's/photo whole process, dlib {dlib:.3f} s/photo, ratio {per / dlib:.1f}x; '
            f'{res["compiles"]} XLA compiles {res["compile_s"]:.1f} s, cache '
            f'{res["hits"]} hits {res["writes"]} writes; min distance '
            f'{min(d for d in res["distances"] if d is not None):.3f}; '
            f'{sum(res["written"])}/{n} passed both judges', flush=True)
    runs.append(dict(cold=cold, warm=warm))
  cold = [sum(r['cold']['protect_s']) / n for r in runs]
  ratio = [sum(r['warm']['protect_s']) / sum(r['warm']['dlib_s']) for r in runs]
  print(f'cold s/photo {min(cold):.2f}-{max(cold):.2f} (median {statistics.median(cold):.2f}); '
        f'warm ratio to dlib {min(ratio):.1f}-{max(ratio):.1f}x', flush=True)
  if args.json:
    args.json.write_text(json.dumps(dict(photos=PHOTOS, runs=runs), indent=1) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
