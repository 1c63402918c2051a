#!/usr/bin/env python
"""Protect photos against face recognition: every face gets an invisible perturbation.

  python experiments/protect_photos.py me.jpg family/*.jpg --out-dir protected/
  python experiments/protect_photos.py me.jpg --out-dir out --preset robust
  python experiments/protect_photos.py me.jpg --out-dir out --eps 4 --steps 24 --attack pgd

Each PHOTO is read upright (EXIF orientation applied), every face dlib finds in it is
perturbed inside a feathered region around the face (all other pixels stay exactly as
they were), and the result is written as DIR/<stem>.protected.png: 8-bit PNG, no
metadata (EXIF, GPS, ...) carried over, written atomically; inputs are never modified.
The saved file is then read back and every face checked with real dlib (HOG detector,
5-point landmarks, face_recognition_model_v1): the distance between its descriptor and
the clean photo's is printed; above 0.6 (dlib's same-person threshold) the face is
protected. A face dlib no longer finds at all counts as protected too.

Bad inputs (missing or unreadable file, more than --max-pixels pixels, no face) get one
line on stderr and the batch goes on.

Exit status: 0 every photo was written and all its faces are protected; 1 some photo
could not be protected (bad input, no face) or some face is still recognised (distance
<= 0.6); 2 bad command line.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import textwrap

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parent.parent))

from common import fail, load_protection  # noqa: E402


def _preset_help() -> str:
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  lines = ['presets (--preset):']
  for p in PRESETS.values():
    mark = ' (default)' if p.name == DEFAULT_PRESET else ''
    lines.append(f'  {p.name}{mark}: {p.summary}')
  lines.append('attacks (--attack):')
  lines += [f'  {name}: {text}' for name, text in ATTACKS.items()]
  return '\n'.join(textwrap.fill(l, 88, subsequent_indent='      ') for l in lines)


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax import compile_cache
  from fgsm_jax.protect.files import MAX_PIXELS
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  p = argparse.ArgumentParser(description=__doc__.split('\n')[1], epilog=_preset_help(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('photos', nargs='+', type=pathlib.Path, metavar='PHOTO')
  p.add_argument('--out-dir', type=pathlib.Path, required=True,
                 help='where <stem>.protected.png files are written (created if needed)')
  p.add_argument('--preset', choices=sorted(PRESETS), default=DEFAULT_PRESET,
                 help=f'protection setting (default {DEFAULT_PRESET}; see below)')
  p.add_argument('--eps', type=float, default=None,
                 help="override the preset's L-inf budget, 0-255 scale (e.g. 4)")
  p.add_argument('--steps', type=int, default=None, help="override the preset's steps")
  p.add_argument('--attack', choices=sorted(ATTACKS), default=None,
                 help="override the preset's base attack")
  p.add_argument('--seed', type=int, default=0, help='PRNG seed (jitter, input diversity)')
  compile_cache.add_arguments(p)
  p.add_argument('--max-pixels', type=int, default=MAX_PIXELS,
                 help=f'larger photos are refused (default {MAX_PIXELS})')
  args = p.parse_args(argv)
  if args.eps is not None and not 0 < args.eps <= 255:
    p.error('--eps must be in (0, 255] (0-255 scale)')
  if args.steps is not None and args.steps < 0:
    p.error('--steps must be >= 0')
  if args.max_pixels <= 0:
    p.error('--max-pixels must be positive')
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  import jax

  from fgsm_jax.models.dlib_resnet import dlib_resnet_apply
  from fgsm_jax.protect import files
  from fgsm_jax.protect.presets import attack_name

  preset, params, models = load_protection(args)
  try:
    args.out_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    fail(f'{args.out_dir}: cannot create output folder ({e.strerror or e})')
  print(f'preset {preset.name}: {attack_name(preset.attack)}, eps {preset.eps:g}/255, '
        f'{preset.steps} steps (+{preset.extra_steps} per extra round, up to '
        f'{preset.rounds} rounds), {preset.attack.eot_samples} views '
        f'{"/".join(preset.attack.degradations)}', flush=True)

  key = jax.random.key(args.seed)
  inputs = {p.resolve() for p in args.photos if p.exists()}
  written: dict[pathlib.Path, pathlib.Path] = {}
  all_ok = True
  seconds = []
  for index, path in enumerate(args.photos):
    out = files.output_path(path, args.out_dir)
    if out.resolve() in inputs:
      print(f'error: {path}: output {out} is one of the inputs; not overwritten', file=sys.stderr)
      all_ok = False
      continue
    if out.resolve() in written:
      print(f'error: {path}: output {out} was already written for {written[out.resolve()]} '
            '(same file name); skipped', file=sys.stderr)
      all_ok = False
      continue
    result = files.protect_file(path, out, preset, jax.random.fold_in(key, index),
                                params=params, apply_fn=dlib_resnet_apply, models=models,
                                max_pixels=args.max_pixels)
    if result.error is not None:
      print(f'error: {result.error}', file=sys.stderr, flush=True)
      all_ok = False
      continue
    written[out.resolve()] = path
    seconds.append((result.seconds, result.cpu_seconds))
    n = len(result.faces)
    print(f'{path} -> {out}: {n} face{"s" * (n != 1)}, {result.seconds:.2f} s '
          f'({result.cpu_seconds:.2f} s CPU)', flush=True)
    for i, face in enumerate(result.faces, 1):
      where = f'({face.box[0]},{face.box[1]})-({face.box[2]},{face.box[3]})'
      if face.distance is None:
        status = 'no face found there any more -> protected'
      else:
        status = (f'distance {face.distance:.3f} -> '
                  f'{"protected" if face.protected else "NOT protected"} (> 0.6 needed)')
      print(f'  face {i} at {where}: {status}, {face.rounds} round{"s" * (face.rounds != 1)}',
            flush=True)
    all_ok &= result.ok
  if seconds:
    import statistics
    wall, cpu = zip(*seconds)
    print(f'{len(seconds)} photo{"s" * (len(seconds) != 1)} written: median '
          f'{statistics.median(wall):.2f} s ({statistics.median(cpu):.2f} s CPU), total '
          f'{sum(wall):.1f} s (the first photo compiles the attack unless it is cached)',
          flush=True)
  return 0 if all_ok else 1


if __name__ == '__main__':
  sys.exit(main())
