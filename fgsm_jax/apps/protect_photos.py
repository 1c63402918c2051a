"""Protect photos against face recognition: every face gets a small perturbation.

The change is not invisible: set beside the original, a protected face is visibly changed
(rougher skin texture, stronger edges). With the default preset its face SSIMULACRA2 is
about 56 where a JPEG 50 re-save of the same photo scores about 73 (README.md); each face's
figures are printed beside those of JPEG 75 and 50 re-saves of it.

  fgsm-jax-protect me.jpg family/*.jpg --out-dir protected/
  fgsm-jax-protect me.jpg --out-dir out --preset robust
  fgsm-jax-protect me.jpg --out-dir out --eps 4 --steps 24 --attack pgd
  fgsm-jax-protect me/*.jpg --out-dir out --same-person

Each PHOTO is read upright (EXIF orientation applied), every face dlib finds in it is
perturbed inside a feathered region around the face (all other pixels stay exactly as
they were), attacked against every recognizer of --recognizers at once (each through its
own alignment), and each of them checks every face on the PNG as it will be saved: real
dlib (HOG detector, 5-point landmarks, face_recognition_model_v1; Euclidean distance,
same person under 0.6) and MobileFace (dlib's 68 landmarks, the ArcFace 112 x 112 crop;
cosine distance, same person under 0.633) by default, or any other recognizer
fgsm_jax/protect/registry.py registers (FaceNet on its 160 x 160 crop, MobileFaceNet and
mfn512 on the ArcFace crop; cosine distances). The distance between each face's descriptor
and the clean photo's is printed per recognizer; the face is protected when every one of
them is past its threshold. A face dlib no longer finds at all counts as protected too.

Only then is the result written, once and atomically, as DIR/<stem>.protected.png: 8-bit
PNG, no metadata (EXIF, GPS, ...) carried over, grey photos stay grey and an alpha channel
is kept as it was. A photo with a face still recognised is not written (an earlier output
of the same name is left alone); --keep-unverified writes it as DIR/<stem>.unverified.png.
Inputs are never modified. Ctrl-C stops after the current attack round, writing nothing
for the unfinished photo.

With --same-person the photos are all of one person (the largest face of each): a face
that matches that person is also moved away from the person's faces in the other photos,
and its rounds go on until it is far from all of them -- a recognizer that holds other
photos of someone compares against those, not against the photo being protected.

Bad inputs (missing or unreadable file, more than --max-pixels pixels, no face) get one
line on stderr and the batch goes on. A file given twice is protected once.

Exit status: 0 every photo was protected and written; 1 some photo could not be protected
(bad input, no face, a face still recognised, output not writable); 2 bad command line or
output folder; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import builtins
import os
import pathlib
import sys
import textwrap

import tqdm

from fgsm_jax.cli import fail, load_protection


def _preset_help() -> str:
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  lines = ['presets (--preset):']
  for p in PRESETS.values():
    mark = ' (default)' if p.name == DEFAULT_PRESET else ''
    lines.append(f'  {p.name}{mark}: {p.summary}')
  lines.append('attacks (--attack):')
  lines += [f'  {name}: {text}' for name, text in ATTACKS.items()]
  return '\n'.join(textwrap.fill(l, 88, subsequent_indent='      ') for l in lines)


def build_parser() -> argparse.ArgumentParser:
  """The command line; other modules may add options to it before parsing."""
  from fgsm_jax import cli
  from fgsm_jax import compile_cache
  from fgsm_jax.protect.files import MAX_PIXELS
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  from fgsm_jax.protect.registry import DEFAULT, NAMES
  p = cli.parser(__doc__, epilog=_preset_help())
  p.add_argument('photos', nargs='+', type=cli.nonempty_path, metavar='PHOTO',
                 help='photo files to protect (JPEG, PNG, PGM/PPM, BMP, ...)')
  p.add_argument('--out-dir', type=cli.nonempty_path, required=True, metavar='DIR',
                 help='where <stem>.protected.png files are written (created if needed)')
  p.add_argument('--preset', choices=sorted(PRESETS), default=DEFAULT_PRESET,
                 help=f'protection setting (default {DEFAULT_PRESET}; see below)')
  p.add_argument('--eps', type=cli.number(0, 255, lo_open=True), default=None,
                 help="override the preset's L-inf budget, 0-255 scale, in (0, 255] (e.g. 4)")
  p.add_argument('--steps', type=cli.positive_int, default=None,
                 help="override the preset's attack steps of the first round (>= 1)")
  p.add_argument('--attack', choices=sorted(ATTACKS), default=None,
                 help="override the preset's base attack")
  p.add_argument('--recognizers', type=cli.recognizer_list, default=None,
                 metavar='NAMES',
                 help='recognizers attacked together and checking the result, comma-separated: '
                      f'some of {", ".join(NAMES)} (default: the preset' "'s own, "
                      f'{",".join(DEFAULT)} but for transfer: all five)')
  p.add_argument('--seed', type=cli.seed, default=0,
                 help=f'PRNG seed (jitter, input diversity), 0 to {cli.MAX_SEED}')
  compile_cache.add_arguments(p)
  p.add_argument('--max-pixels', type=cli.positive_int, default=MAX_PIXELS,
                 help=f'larger photos are refused, from the header (default {MAX_PIXELS})')
  p.add_argument('--same-person', action='store_true',
                 help='the photos show one person: each face of theirs is also moved away '
                      'from their faces in the other photos (default: each photo alone)')
  p.add_argument('--keep-unverified', action='store_true',
                 help='write a photo whose faces are not all protected as '
                      '<stem>.unverified.png (default: not written)')
  return p


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax import cli
  return cli.with_preset_recognizers(build_parser().parse_args(argv))


def _banner(preset) -> str:
  from fgsm_jax.protect.presets import attack_name
  a = preset.attack
  if a.eot_samples > 1:
    kinds = sorted(set(a.degradations) - {'none'})
    views = (f'averaged over {a.eot_samples} random views'
             + (f' (with {", ".join(kinds)})' if kinds else ''))
  else:
    views = 'one view a step (no averaging over transformations)'
  return (f'preset {preset.name}: {attack_name(a)}, eps {preset.eps:g}/255, {preset.steps} '
          f'steps (+{preset.extra_steps} per extra round, up to {preset.rounds} rounds), '
          f'gradients {views}')


def main(argv=None) -> int:
  from fgsm_jax import cli
  with cli.StopFlag() as stop:
    args = parse_args(argv)
    return _run(args, stop)


def _run(args, stop) -> int:
  from fgsm_jax import cli
  try:  # before any model is loaded or photo attacked
    cli.writable_dir(args.out_dir)
  except OSError as e:
    fail(str(e), 2)
  import jax

  from fgsm_jax.protect import evaluate

  preset, recognizers, models = load_protection(args)
  print(_banner(preset) + f'; against {", ".join(args.recognizers)}', flush=True)

  key = jax.random.key(args.seed)
  inputs = {p.resolve() for p in args.photos if p.exists()}
  written: dict[pathlib.Path, pathlib.Path] = {}
  seen: dict[pathlib.Path, pathlib.Path] = {}
  counts = {'protected': 0, 'unverified': 0, 'failed': 0, 'duplicate': 0}
  seconds = []

  # One bar over the batch on stderr (a terminal only); every line goes through it, so
  # neither breaks the other.
  bar = tqdm.tqdm(total=len(args.photos), unit='photo', file=sys.stderr, disable=None,
                  dynamic_ncols=True, leave=False)
  say = _through(bar)

  def error(message: str) -> None:
    say(f'error: {message}', file=sys.stderr, flush=True)
    counts['failed'] += 1

  described = _describe_inputs(args, models, stop) if args.same_person else {}
  person = {p: f for p, f in ((p, evaluate.largest(faces)) for p, faces in described.items())
            if f is not None}
  if args.same_person:
    print(f'same person: their face found in {len(person)} of {len(set(inputs))} photos; '
          'each is also moved away from it in the others', flush=True)
  try:
    return _batch(args, stop, bar, say, preset, recognizers, models, key, inputs, written,
                  seen, counts, seconds, error, described, person)
  finally:
    bar.close()


def _through(bar):
  """print() that writes through the progress bar when it is shown."""
  def say(*args, file=None, flush=False, **kwargs):
    if bar.disable:
      builtins.print(*args, file=file, flush=flush, **kwargs)
    else:
      bar.write(' '.join(str(a) for a in args), file=file or sys.stdout)
  return say


def _batch(args, stop, bar, say, preset, recognizers, models, key, inputs, written, seen,
           counts, seconds, error, described, person) -> int:
  """Protects each photo of ``args.photos`` in turn; the exit status."""
  import jax

  from fgsm_jax.protect import files, registry
  for index, path in enumerate(args.photos):
    bar.update(0 if index == 0 else 1)  # the photos before this one are done
    if stop():
      break
    real = path.resolve()
    if path.exists() and real in seen:
      say(f'note: {path}: same file as {seen[real]}; protected once', file=sys.stderr,
          flush=True)
      counts['duplicate'] += 1
      continue
    seen[real] = path
    out = files.output_path(path, args.out_dir)
    if out.resolve() in inputs or files.unverified_path(out).resolve() in inputs:
      error(f'{path}: output {out} is one of the inputs; not overwritten')
      continue
    if out.resolve() in written:
      error(f'{path}: output {out} is also the output of {written[out.resolve()]} '
            '(same file name); skipped')
      continue
    try:
      result = files.protect_file(path, out, preset, jax.random.fold_in(key, index),
                                  recognizers=recognizers, models=models,
                                  max_pixels=args.max_pixels,
                                  keep_unverified=args.keep_unverified, stop=stop,
                                  person=[f for p, f in person.items() if p != real],
                                  clean=described.get(real), measure=True)
    except files.Interrupted:
      break
    written[out.resolve()] = path
    if result.error is None:
      n = len(result.faces)
      label = '' if result.verified else ' (NOT protected: unverified, kept on request)'
      say(f'{path} -> {result.out_path}{label}: {n} face{"s" * (n != 1)}, '
          f'{result.seconds:.2f} s ({result.cpu_seconds:.2f} s CPU)', flush=True)
      seconds.append((result.seconds, result.cpu_seconds))
    for i, face in enumerate(result.faces, 1):
      where = f'({face.box[0]},{face.box[1]})-({face.box[2]},{face.box[3]})'
      if all(d is None for d in face.distances.values()):
        status = 'no face found there any more -> protected'
      else:
        status = '; '.join(
            f'{n} distance {d:.3f} (> {registry.spec(n).threshold} needed) -> '
            f'{"fooled" if face.fools(n) else "still recognised"}'
            for n, d in face.distances.items() if d is not None)
        status += f' => {"protected" if face.protected else "NOT protected"}'
      say(f'  face {i} at {where}: {status}, {face.rounds} round{"s" * (face.rounds != 1)}',
          flush=True)
      if i <= len(result.perceptual):
        say('    ' + _seen_line(result.perceptual[i - 1]), flush=True)
    if result.error is not None:
      error(result.error)
      continue
    counts['protected' if result.verified else 'unverified'] += 1
  bar.update(1)
  bar.close()
  _summary(counts, seconds)
  if stop():
    say('interrupted: nothing written for the unfinished photo', file=sys.stderr, flush=True)
    return 130
  return 0 if counts['unverified'] == 0 and counts['failed'] == 0 else 1


def _seen_line(seen: dict) -> str:
  """What a person sees of the change, beside a JPEG 75 and 50 re-save of the original."""
  from fgsm_jax import perceptual
  p, q75, q50 = seen['protected'], seen['jpeg75'], seen['jpeg50']
  return (f'seen: {perceptual.describe(p)}; a JPEG re-save of the original: SSIMULACRA2 '
          f'{q75["ssimulacra2"]:.1f} (q75) / {q50["ssimulacra2"]:.1f} (q50), LPIPS '
          f'{q75["lpips"]:.3f} / {q50["lpips"]:.3f} (SSIMULACRA2: higher is less visible; '
          'LPIPS: lower)')


def _describe_inputs(args, models, stop) -> dict:
  """{resolved path: every face real dlib finds, with --recognizers' descriptors} over the
  readable inputs (--same-person); the protection reuses them, and the unreadable ones are
  reported when their turn comes."""
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.protect import files, recognizer
  faces = {}
  for path in args.photos:
    if stop():  # Ctrl-C: the main loop then stops before protecting anything
      break
    try:
      files.check_size(path, args.max_pixels)
      rgb = images_lib.load_photo(path, args.max_pixels).rgb
    except (images_lib.ImageError, OSError):
      continue
    faces[path.resolve()] = recognizer.describe(rgb, models, recognizers=args.recognizers)
  return faces


def _summary(counts: dict[str, int], seconds: list[tuple[float, float]]) -> None:
  import statistics
  parts = [f'{counts["protected"]} protected and written']
  if counts['unverified']:
    parts.append(f'{counts["unverified"]} NOT protected, written as .unverified.png')
  parts.append(f'{counts["failed"]} failed')
  if counts['duplicate']:
    parts.append(f'{counts["duplicate"]} duplicate{"s" * (counts["duplicate"] != 1)} skipped')
  line = ', '.join(parts)
  if seconds:
    wall, cpu = zip(*seconds)
    line += (f'; median {statistics.median(wall):.2f} s a photo '
             f'({statistics.median(cpu):.2f} s CPU), total {sum(wall):.1f} s '
             '(the first photo compiles the attack unless it is cached)')
  print(line, flush=True)


def run() -> None:
  """Console entry point (``fgsm-jax-protect``): exits with `main`'s status."""
  code = main()
  if code == 130:
    # Skip the interpreter's teardown after Ctrl-C: XLA's threads made it crash (exit 139).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


if __name__ == '__main__':
  run()
