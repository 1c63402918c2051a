#!/usr/bin/env python
"""How well protected photos escape real face recognizers, each judged on its own gallery.

  fgsm-jax-eval --dataset-dir ../shared/datasets/gt_db --workdir runs/privacy
  fgsm-jax-eval --dataset-dir DIR --workdir W --people-from 26 --people 25 \\
      --photos-per-person 2 --preset transfer --protocol both --classifier runs/gt_cnn

DIR holds one folder per identity (GT, ORL, LFW layouts). Per identity (natural order), the
first --gallery photos are the clean gallery of each recognizer of --recognizers (any of
fgsm_jax/protect/registry.py's: real dlib -- HOG detector, 5-point landmarks,
face_recognition_model_v1, Euclidean distance; MobileFace and the other ArcFace-type
networks -- the same detector box, dlib's 68 landmarks, their crop, cosine distance; nearest
gallery descriptor wins, closed set, rank-1); the gallery holds every identity of DIR (or
the first --gallery-people). The next --photos-per-person photos of --people identities
from --people-from on are probes: each is identified clean, then protected (as
experiments/protect_photos.py does, saved as
W/protected/<attacked>/<identity>/<stem>.protected.png, kept even when a face stays
recognised), read back, and identified again by every recognizer -- as saved, and after
each cheap defence an observer may apply first (--degradations, default all of
fgsm_jax.quality.DEGRADATIONS: JPEG quality 75 and 50, resizing to half and back (PIL
bilinear), a 3 x 3 median filter, a Gaussian blur of sigma 1).

--protocol says which recognizers attack: 'whitebox' all of them; 'leave-one-out', for
each recognizer R, all but R (R then judges an attack that never saw it: the project's
own measure of transfer); 'one-to-one', each recognizer alone (every other one judges it:
the matrix of transfer between pairs); 'both' (whitebox and leave-one-out); 'all'. A
recognizer left out never steers the attack's rounds.

Reported (W/privacy_eval.json; 'table' per judging recognizer: 'whitebox', 'leave_one_out'
and 'one_to_one' (per attacking recognizer), each with the attack set, per degradation its
PSR, verification failure, rank-1 and quality, the perceptual measures and seconds per
photo): rank-1 (clean and protected), protection success rate PSR (not identified as
oneself; faces no longer found count as protected and are also reported apart as
no_face), verification failure (no own gallery photo under the recognizer's threshold),
each recognizer's distance
between the probe's clean and protected descriptors, image quality against the original
(after the same degradation on both): PSNR and SSIM (fgsm_jax.quality: Gaussian window 11,
sigma 1.5, per RGB channel) over the whole photo and over the face region (detector box
grown by 25% a side), the largest pixel change, and seconds per photo. Further unseen
models: with --classifier W1 [--classifier W2], the GT/ORL classifiers of
experiments/train_classifier.py label the 160 x 160 face crop of each clean and protected
probe; accuracy is also given on the probes that were in each classifier's test split.
What a person sees (fgsm_jax.perceptual, on the face region of the saved file against the
original): SSIMULACRA2, LPIPS-AlexNet and CIEDE2000 (mean and 95th percentile) per probe,
and per set their mean and worst tenth beside the same measures of a JPEG 75 and a JPEG 50
re-save of the same faces ('runs'[i]['perceptual'], and in 'table'), so a figure reads
"as visible as a JPEG-q re-save".
W/privacy_vs_quality.png plots, per probe and recognizer, the distance to the nearest own
gallery photo against the face's SSIMULACRA2 (the first attack's run).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from fgsm_jax.cli import fail, load_protection


def _degradation_list(text: str) -> tuple[str, ...]:
  """argparse type: 'jpeg50,median3' (names of fgsm_jax.quality.DEGRADATIONS); the file as
  saved ('none') is always judged, first."""
  import argparse
  from fgsm_jax.quality import DEGRADATIONS
  names = tuple(dict.fromkeys(v.strip() for v in text.split(',') if v.strip()))
  bad = [n for n in names if n not in DEGRADATIONS]
  if bad:
    raise argparse.ArgumentTypeError(
        f'expected a comma-separated list of {", ".join(DEGRADATIONS)}, got {text!r}')
  return ('none',) + tuple(n for n in names if n != 'none')


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax import compile_cache
  from fgsm_jax.protect.evaluate import PROTOCOLS
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  from fgsm_jax.protect.registry import DEFAULT, NAMES
  from fgsm_jax.quality import DEGRADATIONS
  from fgsm_jax import cli
  p = cli.parser(__doc__)
  p.add_argument('--dataset-dir', type=cli.nonempty_path, required=True,
                 help='one folder per identity, photos inside')
  p.add_argument('--workdir', type=cli.nonempty_path, required=True,
                 help='receives privacy_eval.json, the plot and protected/')
  p.add_argument('--people', type=cli.positive_int, default=None,
                 help='probe only N identities (the gallery keeps everyone)')
  p.add_argument('--people-from', type=cli.positive_int, default=1, metavar='K',
                 help='the first identity probed (1-based, natural order; e.g. 26 with '
                      '--people 25 probes s26-s50 of GT)')
  p.add_argument('--gallery-people', type=cli.positive_int, default=None,
                 help='gallery of the first M identities only (default: all of DIR)')
  p.add_argument('--gallery', type=cli.positive_int, default=5,
                 help='clean gallery photos per person (K)')
  p.add_argument('--photos-per-person', type=cli.positive_int, default=None,
                 help='at most this many probes per person (default: all after the gallery)')
  p.add_argument('--preset', choices=sorted(PRESETS), default=DEFAULT_PRESET,
                 help='protection setting (see experiments/protect_photos.py --help)')
  p.add_argument('--eps', type=cli.number(0, 255, lo_open=True), default=None,
                 help="override the preset's eps (0-255 scale), in (0, 255]")
  p.add_argument('--steps', type=cli.positive_int, default=None,
                 help="override the preset's steps (>= 1)")
  p.add_argument('--attack', choices=sorted(ATTACKS), default=None, help='override attack')
  p.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                 help="change one of the preset's settings for a research run (repeatable): "
                      'a Preset field (eps=6, texture=0.8, weights=[["mobileface",2]]) or '
                      'attack.<field> (attack.kernel_size=9); values are JSON')
  p.add_argument('--recognizers', type=cli.recognizer_list, default=None,
                 metavar='NAMES', help='recognizers that judge (each with its own clean gallery) '
                 f'and attack as --protocol says, comma-separated: some of {", ".join(NAMES)} '
                 "(default: the preset's own, " f'{",".join(DEFAULT)} but for transfer: all five)')
  p.add_argument('--protocol', choices=PROTOCOLS, default='both',
                 help='whitebox: attack with every judge; leave-one-out: for each judge R, '
                      'attack with all but R (R judges an attack that never saw it); '
                      'one-to-one: attack with each judge alone (the others judge it); '
                      'both: whitebox and leave-one-out (default); all: the three')
  p.add_argument('--degradations', type=_degradation_list,
                 default=tuple(DEGRADATIONS), metavar='NAMES',
                 help='what an observer may do to a protected photo before recognising it, '
                      'each judged besides the file as saved (a describe per probe each), '
                      'comma-separated: some of '
                      f'{", ".join(n for n in DEGRADATIONS if n != "none")} '
                      '(default: all)')
  p.add_argument('--classifier', type=pathlib.Path, action='append', default=[],
                 metavar='W', help='workdir of a trained classifier (repeatable): transfer')
  p.add_argument('--person-photos', type=cli.non_negative_int, default=0, metavar='K',
                 help="give the attack up to K other photos of each probe's person: those "
                      'after the probes in its folder (never gallery or probe photos); a '
                      'user protecting several photos of themselves has them (default: 0)')
  p.add_argument('--album', type=cli.non_negative_int, default=0, metavar='K',
                 help="protect each person's probes with one change made over their first K "
                      'probes at once (protect.universal: a per-person universal '
                      'perturbation), each probe starting from it and attacked only if a '
                      'recognizer still finds it (default 0: each probe alone)')
  p.add_argument('--targets-dir', type=cli.nonempty_path, default=None, metavar='DIR',
                 help='candidate target identities, one folder each (people the gallery '
                      'does not hold, e.g. ORL against GT): each probe is pulled towards the '
                      'one farthest from it by the attacked recognizers '
                      '(protect.targets.farthest); needed by attack.target_weight > 0')
  p.add_argument('--target-photos', type=cli.positive_int, default=3, metavar='K',
                 help='photos of each candidate averaged into its descriptors (default 3)')
  p.add_argument('--seed', type=cli.seed, default=0,
                 help=f'PRNG seed of the attacks, 0 to {cli.MAX_SEED}')
  compile_cache.add_arguments(p)
  return cli.with_preset_recognizers(p.parse_args(argv))


def _classifiers(workdirs):
  """[(name, apply_fn, params, config, label_of, in_test)] for each --classifier."""
  from fgsm_jax import train
  out = []
  for w in workdirs:
    try:
      apply_fn, params, config = train.load_checkpoint(w)
    except (FileNotFoundError, ValueError, OSError) as e:
      fail(f'{w}: cannot load classifier ({" ".join(str(e).split())[:200]})')
    if config.dataset == 'gt':
      from fgsm_jax.data.gt_faces import IDENTITIES, N_TEST, N_TRAIN
    elif config.dataset == 'orl':
      from fgsm_jax.data.orl_faces import IDENTITIES, N_TEST, N_TRAIN
    else:
      fail(f'{w}: classifier of unknown dataset {config.dataset!r}')
    out.append(dict(name=str(w), apply_fn=apply_fn, params=params, config=config,
                    identities=IDENTITIES, n_train=N_TRAIN, n_test=N_TEST))
  return out


def _classifier_crop(rgb, dataset: str):
  """The classifier's input for a photo, as its training data was made (or None)."""
  import numpy as np
  from PIL import Image

  from fgsm_jax.data import detect
  if dataset == 'orl':
    face = Image.fromarray(rgb).resize((detect.CROP_SIZE, detect.CROP_SIZE),
                                       Image.Resampling.BILINEAR)
    return np.asarray(face, np.uint8)
  box = detect.largest_face(rgb)
  return None if box is None else detect.crop_face(rgb, box)


def _plot(run, path, preset_name):
  """Per judge, each probe's distance to its nearest own gallery photo against the face's
  SSIMULACRA2 as saved, with the JPEG 75 and 50 re-saves' means as references."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  from fgsm_jax import io
  from fgsm_jax.protect import registry
  judges = list(run['summary']['none'])
  degradations = list(run['summary'])
  fig, axes = plt.subplots(len(judges), len(degradations),
                           figsize=(5 * len(degradations), 4.2 * len(judges)), squeeze=False)
  for row, n in zip(axes, judges):
    for ax, deg in zip(row, degradations):
      for hit, colour, label in ((False, 'tab:green', 'not identified'),
                                 (True, 'tab:red', 'identified (rank-1)')):
        pts = [(p['perceptual']['ssimulacra2'], p['judged'][deg]['judges'][n]['own_distance'])
               for p in run['probes'] if p['judged'][deg]['judges'][n]['rank1'] == hit
               and p['judged'][deg]['judges'][n]['face_found']]
        if pts:
          ax.scatter(*zip(*pts), s=12, c=colour, label=label, alpha=0.7)
      ax.axhline(registry.spec(n).threshold, color='grey', lw=0.8, ls='--')
      for q, ls in (('jpeg75', ':'), ('jpeg50', '-.')):
        ref = run['perceptual'][q].get('ssimulacra2')
        if ref:
          ax.axvline(ref['mean'], color='tab:blue', lw=0.8, ls=ls, label=f'JPEG {q[4:]} re-save')
      s = run['summary'][deg][n]
      seen = run['perceptual']['protected'].get('ssimulacra2', {}).get('mean') or 0
      ax.set_title(f'{n}, {deg}: PSR {100 * s["psr"]:.0f}%, face SSIMULACRA2 {seen:.1f}',
                   fontsize=10)
      ax.set_xlabel('face SSIMULACRA2 of the saved file (higher: less visible)')
      ax.set_ylabel(f'distance to nearest own gallery photo ({n})')
      ax.legend(fontsize=7, loc='upper left')
  fig.suptitle(f'privacy vs quality, preset {preset_name}, attack '
               f'{"+".join(run["attacked"])}', fontsize=11)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=110)
  plt.close(fig)


def _probes(args):
  """(gallery photos, probe photos, people probed, gallery people) from --dataset-dir."""
  from fgsm_jax.data import images as images_lib
  try:
    folders = images_lib.identity_folders(args.dataset_dir)
  except images_lib.DatasetError as e:
    fail(str(e))
  gallery_folders = folders[:args.gallery_people] if args.gallery_people else folders
  folders = folders[args.people_from - 1:]
  folders = folders[:args.people] if args.people is not None else folders
  gallery = [(who, p) for who, paths in gallery_folders for p in paths[:args.gallery]]
  probes = [(who, p) for who, paths in folders
            for p in paths[args.gallery:][:args.photos_per_person]]
  start = args.gallery + (args.photos_per_person or 0)
  person = {who: paths[start:start + args.person_photos] for who, paths in folders}
  return gallery, probes, len(folders), len(gallery_folders), person


def _person_faces(person_photos, models, names):
  """Per identity, the largest face of each of its --person-photos (every recognizer's
  descriptors; read and described as the probes are, photos without a face left out)."""
  subjects, _ = _subjects([(who, p) for who, paths in person_photos.items() for p in paths],
                          models, names)
  out = {who: [] for who in person_photos}
  for who, _, _, face in subjects:
    out[who].append(face)
  return out


def check_targets(args, presets) -> None:
  """Exits 2 with one line when one of ``presets`` pulls towards a target
  (``attack.target_weight`` > 0) and --targets-dir gives no candidates."""
  if args.targets_dir is None and any(p.attack.target_weight > 0 for p in presets):
    fail('attack.target_weight > 0 needs --targets-dir (the candidate target identities)', 2)


def target_candidates(args, models, judges):
  """{identity: {recognizer: descriptor}} of each folder of --targets-dir (its first
  --target-photos photos with a face, `targets.identity_descriptors`), or {} without it;
  exits with one line when it is --dataset-dir itself (a probe identified as its target,
  a gallery person, would count as protected)."""
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.protect import targets as targets_lib
  if args.targets_dir is None:
    return {}
  if args.targets_dir.resolve() == args.dataset_dir.resolve():
    fail(f'{args.targets_dir}: the targets must be people the gallery does not hold, not '
         '--dataset-dir', 2)
  try:
    folders = images_lib.identity_folders(args.targets_dir)
  except images_lib.DatasetError as e:
    fail(str(e))
  faces, _ = _subjects([(who, p) for who, paths in folders for p in paths[:args.target_photos]],
                       models, judges)
  out = {}
  for who, _ in folders:
    mine = [f for w, _, _, f in faces if w == who]
    if mine:
      out[who] = targets_lib.identity_descriptors(mine, judges)
  if not out:
    fail(f'{args.targets_dir}: no target photo with a face')
  return out


def _run_attack_set(args, attacked, preset, recognizers, models, galleries, subjects,
                    person=None, candidates=None):
  """Protects every probe against the recognizers ``attacked`` and judges it with all
  (with ``candidates``, `target_candidates`, each pulled towards the farthest of them by
  the attacked recognizers when the preset's ``attack.target_weight`` > 0)."""
  import jax
  from fgsm_jax import perceptual, quality
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.protect import evaluate, files, targets as targets_lib
  degradations = {d: quality.DEGRADATIONS[d]
                  for d in getattr(args, 'degradations', tuple(quality.DEGRADATIONS))}
  key = jax.random.key(args.seed)
  tag = '+'.join(attacked)
  records, skipped = [], []
  carried = {}  # --album: per person, their universal change
  album = getattr(args, 'album', 0)
  for index, (who, path, rgb, subject) in enumerate(subjects):
    if album and who not in carried:
      carried[who] = _universal(args, who, subjects, preset, recognizers, attacked, key)
    toward = None
    if preset.attack.target_weight > 0:
      toward = targets_lib.farthest(subject, candidates, attacked)
    out = args.workdir / 'protected' / tag / who / f'{path.stem}{files.OUTPUT_SUFFIX}'
    # Unverified results are kept (as .unverified.png): a face still recognised is a
    # result this evaluation counts, not a probe to drop.
    result = files.protect_file(path, out, preset, jax.random.fold_in(key, index),
                                recognizers=[r for r in recognizers if r.name in attacked],
                                judges=attacked, models=models, keep_unverified=True,
                                person=(person or {}).get(who, ()),
                                carry=carried[who][0] if album else None,
                                target_identity=(None if toward is None else
                                                 {n: candidates[toward][n] for n in attacked}))
    if result.error is not None or result.out_path is None:
      skipped.append(result.error)
      print(f'warning: {result.error}', file=sys.stderr)
      continue
    protected = images_lib.load_rgb(result.out_path)
    judged = evaluate.judge_protected(rgb, protected, subject, who, galleries, degradations,
                                      models)
    # What a person sees: the face region of the saved file against the original.
    seen = perceptual.face_measures(rgb, protected, subject.box)
    records.append({'identity': who, 'photo': str(path), 'seconds': result.seconds,
                    # the person's universal change, once (on their first probe)
                    'album_seconds': (carried[who][1] if album and carried[who][2] == index
                                      else (0.0, 0.0)),
                    'cpu_seconds': result.cpu_seconds,
                    'rounds': [f.rounds for f in result.faces], 'target': toward,
                    'protected_file': str(result.out_path), 'verified': result.verified,
                    'judged': judged, 'perceptual': seen,
                    'reference': _jpeg_reference(rgb, subject, path), 'rgb': protected})
    print(f'[{tag} {len(records)}/{len(subjects)}] {who}/{path.name}: '
          + ', '.join(f'{n} {"IDENTIFIED" if j["rank1"] else "fooled"}'
                      for n, j in judged['none']['judges'].items())
          + f'; face {perceptual.describe(seen)}, {result.seconds:.2f} s', flush=True)
  return records, skipped


def _universal(args, who, subjects, preset, recognizers, attacked, key):
  """(person ``who``'s universal change over their first --album probes, the (wall, CPU)
  seconds it took, the index of their first probe)."""
  import time
  import jax
  from fgsm_jax.protect import universal
  mine = [(i, s) for i, s in enumerate(subjects) if s[0] == who][:args.album]
  start, cpu = time.perf_counter(), time.process_time()
  try:
    change = universal.universal_change(
        [s[2] for _, s in mine], [s[3] for _, s in mine], preset,
        jax.random.fold_in(key, 1_000_003 + mine[0][0]),
        recognizers=[r for r in recognizers if r.name in attacked])
  except ValueError as e:  # a face its crops do not fit: the person's probes go alone
    print(f'warning: {who}: no album change ({e}); each probe alone', file=sys.stderr)
    change = None
  return (change, (time.perf_counter() - start, time.process_time() - cpu), mine[0][0])


_REFERENCES = {}


def _jpeg_reference(rgb, subject, path):
  """The same face's measures after a JPEG 75 and a JPEG 50 re-save of the clean photo
  (computed once per probe, shared by every attack set)."""
  from fgsm_jax import perceptual
  if path not in _REFERENCES:
    _REFERENCES[path] = perceptual.jpeg_reference(rgb, subject.box)
  return _REFERENCES[path]


def perceptual_summary(records):
  """Per set: the perceptual measures of the protected faces (mean, worst tenth) and of
  the same faces re-saved as JPEG 75 and 50, the references they read against."""
  from fgsm_jax import perceptual
  out = {'protected': perceptual.summarize([r['perceptual'] for r in records])}
  for q in ('jpeg75', 'jpeg50'):
    out[q] = perceptual.summarize([r['reference'][q] for r in records])
  return out


def main(argv=None) -> int:
  args = parse_args(argv)
  import numpy as np
  from fgsm_jax import cli, io
  from fgsm_jax.protect import evaluate
  from fgsm_jax.protect.presets import attack_name
  if args.person_photos and not args.photos_per_person:
    fail('--person-photos needs --photos-per-person: the person photos are the ones after '
         'the probes in each folder', 2)
  gallery_photos, probes, people, gallery_people, person_photos = _probes(args)
  try:  # before any model is loaded or photo attacked
    cli.writable_dir(args.workdir, 'workdir')
  except OSError as e:
    fail(str(e), 2)
  judges = args.recognizers
  sets = evaluate.attack_sets(judges, args.protocol)
  preset, recognizers, models = load_protection(args, judges)
  check_targets(args, [preset])
  classifiers = _classifiers(args.classifier)
  print(f'{people} people probed, gallery {len(gallery_photos)} photos of {gallery_people} '
        f'people, {len(probes)} probes; preset {preset.name} ({attack_name(preset.attack)}, '
        f'eps {preset.eps:g}, {preset.steps} steps); attacks: '
        + ', '.join('+'.join(s) for s in sets) + f'; judges: {", ".join(judges)}', flush=True)
  try:
    galleries = evaluate.build_galleries(gallery_photos, models, judges)
  except ValueError as e:
    fail(f'{args.dataset_dir}: {e}')
  subjects, skipped = _subjects(probes, models, judges)
  person = _person_faces(person_photos, models, judges) if args.person_photos else {}
  candidates = target_candidates(args, models, judges)
  clean = {n: evaluate.summarize([evaluate.identify(galleries[n], s.descriptor_of(n), who)
                                  for who, _, _, s in subjects]) for n in judges}
  runs = []
  for attacked in sets:
    records, missed = _run_attack_set(args, attacked, preset, recognizers, models, galleries,
                                      subjects, person, candidates)
    skipped += missed
    if not records:
      fail('no probe could be evaluated')
    secs = [r['seconds'] for r in records]
    runs.append({'attacked': list(attacked), 'summary': evaluate.summarize_judged(records),
                 'perceptual': perceptual_summary(records),
                 'seconds_per_photo': {'mean': float(np.mean(secs)),
                                       'median': float(np.median(secs))},
                 'transfer': _classifier_transfer(classifiers, subjects, records,
                                                  args.dataset_dir),
                 'probes': [{k: v for k, v in r.items() if k != 'rgb'} for r in records]})
  table = _table(runs, judges)
  io.write_json(args.workdir / 'privacy_eval.json', {
      'dataset_dir': str(args.dataset_dir), 'people': people, 'gallery_people': gallery_people,
      'gallery_per_person': args.gallery, 'gallery_photos': len(gallery_photos),
      'preset': preset.name, 'attack': attack_name(preset.attack), 'eps': preset.eps,
      'steps': preset.steps, 'preset_config': _preset_dict(preset), 'judges': list(judges),
      'person_photos': {who: len(v) for who, v in person.items()}, 'album': args.album,
      'protocol': args.protocol, 'clean': clean, 'table': table, 'runs': runs,
      'skipped': skipped + galleries[judges[0]].skipped})
  _plot(runs[0], args.workdir / 'privacy_vs_quality.png', preset.name)
  _print_table(clean, table, args.degradations)
  print(f'wrote {args.workdir / "privacy_eval.json"} and {args.workdir / "privacy_vs_quality.png"}')
  return 0


def _subjects(probes, models, judges):
  """[(identity, path, rgb, clean face with every judge's descriptor)], skipped lines."""
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.protect import evaluate, recognizer
  out, skipped = [], []
  for who, path in probes:
    try:
      rgb = images_lib.load_rgb(path)
    except images_lib.ImageError as e:
      skipped.append(str(e))
      print(f'warning: {e}', file=sys.stderr)
      continue
    subject = evaluate.largest(recognizer.describe(rgb, models, recognizers=judges))
    if subject is None:
      skipped.append(f'{path}: no face found in the clean photo')
      print(f'warning: {path}: no face found in the clean photo; skipped', file=sys.stderr)
      continue
    out.append((who, path, rgb, subject))
  return out, skipped


def _entry(run, n):
  """What judge ``n`` says of one attack set: per degradation its PSR, verification failure,
  rank-1, no face and quality, with the set's perceptual measures and seconds per photo."""
  return {'attacked': run['attacked'],
          **{deg: {'psr': s[n]['psr'], 'verification_failure': s[n]['verification_failure'],
                   'rank1': s[n]['rank1'], 'no_face': s[n]['no_face'],
                   'face_ssim': s[n]['mean_face_ssim'], 'min_face_ssim': s[n]['min_face_ssim'],
                   'ssim': s[n]['mean_ssim'], 'face_psnr': s[n]['mean_face_psnr']}
             for deg, s in run['summary'].items()},
          'perceptual': run['perceptual'],
          'seconds_per_photo': run['seconds_per_photo']}


def _table(runs, judges):
  """Per judge R: white-box (every judge attacked), leave-one-out (every judge but R) and
  one-to-one (per attacker A, A alone; A = R is A's own white-box figure), each an `_entry`.
  With two judges, an attack on one alone is both R's leave-one-out and one-to-one."""
  table = {}
  for n in judges:
    row = {}
    for run in runs:
      attacked = tuple(run['attacked'])
      if set(attacked) == set(judges):
        row['whitebox'] = _entry(run, n)
      if n not in attacked and set(attacked) == set(judges) - {n}:
        row['leave_one_out'] = _entry(run, n)
      if len(attacked) == 1:
        row.setdefault('one_to_one', {})[attacked[0]] = _entry(run, n)
    table[n] = row
  return table


def _print_table(clean, table, degradations):
  for n, row in table.items():
    print(f'{n}: clean rank-1 {100 * clean[n]["rank1"]:.1f}% over {clean[n]["probes"]} probes')
    for kind, r in row.items():
      if kind == 'one_to_one':
        continue
      print(f'  {kind} (attack: {"+".join(r["attacked"])}): PSR '
            + ', '.join(f'{deg} {100 * r[deg]["psr"]:.1f}%' for deg in degradations)
            + f'; verification failure {100 * r["none"]["verification_failure"]:.1f}%'
            f'; face SSIM {r["none"]["face_ssim"]:.4f} (min {r["none"]["min_face_ssim"]:.4f})'
            f', {r["seconds_per_photo"]["median"]:.2f} s/photo median')
      print('    face ' + _perceptual_line(r['perceptual']))
  # The one-to-one matrix: each recognizer attacked alone (rows), judged by each (columns).
  attackers = list(dict.fromkeys(a for row in table.values() for a in row.get('one_to_one', {})))
  if not attackers:
    return

  def matrix(title, deg, key):
    print(f'one-to-one {title} (rows: the recognizer attacked alone; columns: the judge)')
    print(f'  {"":>12s} ' + ' '.join(f'{n:>12s}' for n in table))
    for a in attackers:
      cells = [table[n].get('one_to_one', {}).get(a) for n in table]
      cells = ['-' if c is None else f'{100 * c[deg][key]:.1f}%' for c in cells]
      print(f'  {a:>12s} ' + ' '.join(f'{c:>12s}' for c in cells))

  for deg in degradations:
    matrix(f'PSR, {deg}', deg, 'psr')
  matrix('verification failure, none', 'none', 'verification_failure')
  for a in attackers:
    r = next(row['one_to_one'][a] for row in table.values() if a in row.get('one_to_one', {}))
    print(f'  {a} alone: {r["seconds_per_photo"]["median"]:.2f} s/photo median; face '
          + _perceptual_line(r['perceptual']))


def _perceptual_line(p):
  """'SSIMULACRA2 74.2 (worst tenth 66.0; JPEG 75 84.1, JPEG 50 79.5), LPIPS ...'."""
  def part(m, name, fmt, ref_worst=False):
    if m not in p['protected']:
      return f'{name} n/a'
    refs = ', '.join(f'JPEG {q[4:]} {p[q][m]["mean"]:{fmt}}' for q in ('jpeg75', 'jpeg50')
                     if m in p[q])
    return (f'{name} {p["protected"][m]["mean"]:{fmt}} (worst tenth '
            f'{p["protected"][m]["worst_tenth"]:{fmt}}; {refs})')
  return '; '.join([part('ssimulacra2', 'SSIMULACRA2', '.1f'), part('lpips', 'LPIPS', '.3f'),
                    part('ciede2000_mean', 'dE00', '.2f')])


def _classifier_transfer(classifiers, subjects, records, dataset_dir):
  """Accuracy of each --classifier on the clean and protected probes (unseen models)."""
  import numpy as np
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.evaluation import predict
  clean = {r_path: rgb for _, r_path, rgb, _ in subjects}
  transfer = []
  for c in classifiers:
    entry = {'classifier': c['name'], 'model': c['config'].model, 'dataset': c['config'].dataset}
    test_split = set()
    try:
      from fgsm_jax.data.face_builder import split_photos
      _, test = split_photos(dataset_dir, c['identities'], 0, c['n_train'], c['n_test'])
      test_split = {str(ph.path.resolve()) for ph in test}
    except images_lib.DatasetError as e:
      print(f'warning: {c["name"]}: no train/test split for this folder ({e})', file=sys.stderr)
    for which in ('clean', 'protected'):
      rows = [(r, clean[pathlib.Path(r['photo'])] if which == 'clean' else r['rgb'])
              for r in records if r['identity'] in c['identities']]
      rows = [(r, _classifier_crop(rgb, c['config'].dataset)) for r, rgb in rows]
      rows = [(r, crop) for r, crop in rows if crop is not None]
      if not rows:
        entry[which] = None
        continue
      labels = [c['identities'].index(r['identity']) for r, _ in rows]
      pred = predict(c['apply_fn'], c['params'],
                     np.stack([crop for _, crop in rows]).astype(np.float32) / 255.0)
      correct = np.asarray(pred) == np.asarray(labels)
      in_test = np.array([str(pathlib.Path(r['photo']).resolve()) in test_split for r, _ in rows])
      entry[which] = {'probes': len(rows), 'accuracy': float(correct.mean()),
                      'test_split_probes': int(in_test.sum()),
                      'test_split_accuracy': (float(correct[in_test].mean())
                                              if in_test.any() else None)}
    print(f'transfer {c["name"]}: clean {entry["clean"]}, protected {entry["protected"]}')
    transfer.append(entry)
  return transfer


def _preset_dict(preset):
  import dataclasses
  d = dataclasses.asdict(preset)
  d['attack']['degradations'] = list(d['attack']['degradations'])
  return d


def run() -> None:
  """Console entry point (``fgsm-jax-eval``): exits with `main`'s status."""
  sys.exit(main())


if __name__ == '__main__':
  run()
