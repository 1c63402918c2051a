#!/usr/bin/env python
"""How well protected photos escape a real-dlib face recognizer, and what it costs in quality.

  python experiments/privacy_eval.py --dataset-dir ../shared/datasets/gt_db --workdir runs/privacy
  python experiments/privacy_eval.py --dataset-dir DIR --workdir W --people 5 --preset robust \\
      --classifier runs/gt_cnn

DIR holds one folder per identity (GT, ORL, LFW layouts). Per identity (natural order), the
first --gallery photos are the clean gallery of a real-dlib recognizer (HOG detector,
5-point landmarks, face_recognition_model_v1; nearest gallery descriptor wins, closed
set, rank-1); the gallery holds every identity of DIR (or the first --gallery-people),
whatever --people limits the probes to. The next --photos-per-person photos of each of
the first --people identities are probes: each is identified clean,
then protected (as experiments/protect_photos.py does, saved as
W/protected/<identity>/<stem>.protected.png), read back, and identified again -- as
saved, after JPEG quality 75, and after resizing to half and back (PIL bilinear).

Reported (W/privacy_eval.json, per degradation): rank-1 (clean and protected), protection
success rate PSR (not identified as oneself; faces no longer found count as protected and
are also reported apart as no_face), verification failure (no own gallery photo under
0.6), real dlib's distance between the probe's clean and protected descriptors, and image
quality against the original (after the same degradation on both): PSNR and SSIM
(fgsm_jax.quality: Gaussian window 11, sigma 1.5, per RGB channel) over the whole photo
and over the face region (detector box grown by 25% a side), and the largest pixel change.
Transfer: with --classifier W1 [--classifier W2], the GT/ORL classifiers of
experiments/train_classifier.py label the 160 x 160 face crop of each clean and protected
probe (cropped as their training data was); accuracy is also given on the probes that were
in each classifier's test split. W/privacy_vs_quality.png plots, per probe, the distance
to the nearest own gallery photo against face-region SSIM.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parent.parent))

from common import fail, load_protection  # noqa: E402

DEGRADATION_NAMES = ('none', 'jpeg75', 'resize_half')


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax import compile_cache
  from fgsm_jax.protect.presets import ATTACKS, DEFAULT_PRESET, PRESETS
  from fgsm_jax import cli
  p = cli.parser(__doc__)
  p.add_argument('--dataset-dir', type=cli.nonempty_path, required=True,
                 help='one folder per identity, photos inside')
  p.add_argument('--workdir', type=cli.nonempty_path, required=True,
                 help='receives privacy_eval.json, the plot and protected/')
  p.add_argument('--people', type=cli.positive_int, default=None,
                 help='probe only the first N identities (the gallery keeps everyone)')
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
  p.add_argument('--classifier', type=pathlib.Path, action='append', default=[],
                 metavar='W', help='workdir of a trained classifier (repeatable): transfer')
  p.add_argument('--seed', type=cli.seed, default=0,
                 help=f'PRNG seed of the attacks, 0 to {cli.MAX_SEED}')
  compile_cache.add_arguments(p)
  args = p.parse_args(argv)
  return args


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


def _plot(records, summary, path, preset_name):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  from fgsm_jax import io
  fig, axes = plt.subplots(1, len(DEGRADATION_NAMES), figsize=(5 * len(DEGRADATION_NAMES), 4.2),
                           sharey=True, squeeze=False)
  for ax, deg in zip(axes[0], DEGRADATION_NAMES):
    rows = [r['protected'][deg] for r in records if r.get('protected')]
    for hit, colour, label in ((False, 'tab:green', 'not identified'),
                               (True, 'tab:red', 'identified (rank-1)')):
      pts = [(r['face_ssim'], r['own_distance']) for r in rows
             if r['rank1'] == hit and r['face_found'] and r.get('face_ssim') is not None]
      if pts:
        ax.scatter(*zip(*pts), s=12, c=colour, label=label, alpha=0.7)
    lost = [r['face_ssim'] for r in rows if not r['face_found'] and r.get('face_ssim')]
    if lost:
      ax.scatter(lost, [0.05] * len(lost), marker='x', c='tab:blue', s=14, label='no face found')
    ax.axhline(0.6, color='grey', lw=0.8, ls='--')
    s = summary['protected'][deg]
    ax.set_title(f'{deg}: rank-1 {100 * s.get("rank1", 0):.1f}%, '
                 f'face SSIM {s.get("mean_face_ssim") or 0:.3f}', fontsize=10)
    ax.set_xlabel('face-region SSIM vs original (same degradation)')
    ax.legend(fontsize=7, loc='upper left')
  axes[0][0].set_ylabel('distance to nearest own gallery photo (real dlib)')
  fig.suptitle(f'privacy vs quality, preset {preset_name}', fontsize=11)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  args = parse_args(argv)
  import jax
  import numpy as np

  from fgsm_jax import io, quality
  from fgsm_jax.data import images as images_lib
  from fgsm_jax.models.dlib_resnet import dlib_resnet_apply
  from fgsm_jax.protect import evaluate, files, recognizer
  from fgsm_jax.protect.presets import attack_name

  from fgsm_jax import cli
  try:
    folders = images_lib.identity_folders(args.dataset_dir)
  except images_lib.DatasetError as e:
    fail(str(e))
  try:  # before any model is loaded or photo attacked
    cli.writable_dir(args.workdir, 'workdir')
  except OSError as e:
    fail(str(e), 2)
  gallery_folders = folders[:args.gallery_people] if args.gallery_people else folders
  if args.people is not None:
    folders = folders[:args.people]
  preset, params, models = load_protection(args)
  classifiers = _classifiers(args.classifier)

  gallery_photos = [(who, p) for who, paths in gallery_folders for p in paths[:args.gallery]]
  probes = [(who, p) for who, paths in folders
            for p in paths[args.gallery:][:args.photos_per_person]]
  print(f'{len(folders)} people probed, gallery {len(gallery_photos)} photos of '
        f'{len(gallery_folders)} people, {len(probes)} probes; '
        f'preset {preset.name} ({attack_name(preset.attack)}, eps {preset.eps:g}, '
        f'{preset.steps} steps)', flush=True)
  try:
    gallery = evaluate.build_gallery(gallery_photos, models)
  except ValueError as e:
    fail(f'{args.dataset_dir}: {e}')
  for line in gallery.skipped:
    print(f'warning: gallery: {line}', file=sys.stderr)

  # Which probes each classifier saw in training (its seeded split, per identity).
  test_split: list[set[str]] = []
  if classifiers:
    from fgsm_jax.data.face_builder import split_photos
    for c in classifiers:
      known = [who for who, _ in folders if who in c['identities']]
      try:
        _, test = split_photos(args.dataset_dir, c['identities'], 0, c['n_train'], c['n_test'])
        test_split.append({str(ph.path.resolve()) for ph in test})
      except images_lib.DatasetError as e:
        print(f'warning: {c["name"]}: no train/test split for this folder ({e})',
              file=sys.stderr)
        test_split.append(set())
      if not known:
        print(f'warning: {c["name"]}: none of these identities are its classes', file=sys.stderr)

  key = jax.random.key(args.seed)
  records, skipped = [], []
  crops = {'clean': [], 'protected': []}  # for transfer: (record index, crop)
  for index, (who, path) in enumerate(probes):
    try:
      rgb = images_lib.load_rgb(path)
    except images_lib.ImageError as e:
      skipped.append(str(e))
      print(f'warning: {e}', file=sys.stderr)
      continue
    subject = evaluate.largest(recognizer.describe(rgb, models))
    if subject is None:
      skipped.append(f'{path}: no face found in the clean photo')
      print(f'warning: {path}: no face found in the clean photo; skipped', file=sys.stderr)
      continue
    record = {'identity': who, 'photo': str(path),
              'clean': evaluate.identify(gallery, subject.descriptor, who)}
    out = args.workdir / 'protected' / who / f'{path.stem}{files.OUTPUT_SUFFIX}'
    # Unverified results are kept (as .unverified.png): a face still recognised is a
    # result this evaluation counts, not a probe to drop.
    result = files.protect_file(path, out, preset, jax.random.fold_in(key, index),
                                params=params, apply_fn=dlib_resnet_apply, models=models,
                                keep_unverified=True)
    if result.error is not None or result.out_path is None:
      skipped.append(result.error)
      print(f'warning: {result.error}', file=sys.stderr)
      continue
    record['seconds'] = result.seconds
    record['protected_file'] = str(result.out_path)
    record['verified'] = result.verified
    protected = images_lib.load_rgb(result.out_path)
    record['protected'] = {}
    for deg in DEGRADATION_NAMES:
      degrade = quality.DEGRADATIONS[deg]
      orig_d, prot_d = degrade(rgb), degrade(protected)
      found = recognizer.describe(prot_d, models)
      match = recognizer.match_faces([subject], found)[0]
      desc = None if match is None else found[match].descriptor
      r = evaluate.identify(gallery, desc, who)
      r['distance'] = None if desc is None else recognizer.distance(subject.descriptor, desc)
      r.update(quality.compare(orig_d, prot_d, [subject.box]))
      record['protected'][deg] = r
    if classifiers:
      crops['clean'].append((len(records), rgb))
      crops['protected'].append((len(records), protected))
    records.append(record)
    p = record['protected']
    print(f'[{len(records)}/{len(probes)}] {who}/{path.name}: clean rank-1 '
          f'{"hit" if record["clean"]["rank1"] else "miss"}; protected '
          + ', '.join(f'{d}: {"IDENTIFIED" if p[d]["rank1"] else "not identified"}'
                      f'{"" if p[d]["face_found"] else " (no face)"}' for d in DEGRADATION_NAMES)
          + f'; distance {p["none"]["distance"] or 0:.3f}, face SSIM '
          f'{p["none"]["face_ssim"]:.4f}, {result.seconds:.2f} s', flush=True)

  if not records:
    fail('no probe could be evaluated')
  summary = {
      'clean': evaluate.summarize([r['clean'] for r in records]),
      'protected': {d: evaluate.summarize([{**r['protected'][d], 'seconds': r['seconds']}
                                           for r in records]) for d in DEGRADATION_NAMES},
  }
  # The first photo of each window size includes compiling; report both.
  secs = [r['seconds'] for r in records]
  summary['seconds_per_photo'] = {'mean': float(np.mean(secs)),
                                  'median': float(np.median(secs))}

  transfer = []
  for ci, c in enumerate(classifiers):
    from fgsm_jax.evaluation import predict
    entry = {'classifier': c['name'], 'model': c['config'].model,
             'dataset': c['config'].dataset}
    for which in ('clean', 'protected'):
      idx, inputs, labels = [], [], []
      for i, rgb in crops[which]:
        who = records[i]['identity']
        if who not in c['identities']:
          continue
        crop = _classifier_crop(rgb, c['config'].dataset)
        if crop is None:
          continue
        idx.append(i)
        inputs.append(crop)
        labels.append(c['identities'].index(who))
      if not inputs:
        entry[which] = None
        continue
      pred = predict(c['apply_fn'], c['params'], np.stack(inputs).astype(np.float32) / 255.0)
      correct = np.asarray(pred) == np.asarray(labels)
      in_test = np.array([str(pathlib.Path(records[i]['photo']).resolve()) in test_split[ci]
                          for i in idx])
      entry[which] = {'probes': len(idx), 'accuracy': float(correct.mean()),
                      'test_split_probes': int(in_test.sum()),
                      'test_split_accuracy': (float(correct[in_test].mean())
                                              if in_test.any() else None)}
    transfer.append(entry)
    print(f'transfer {c["name"]}: clean {entry["clean"]}, protected {entry["protected"]}')

  result = {
      'dataset_dir': str(args.dataset_dir), 'people': len(folders),
      'gallery_people': len(gallery_folders),
      'gallery_per_person': args.gallery, 'gallery_photos': len(gallery.identities),
      'preset': preset.name, 'attack': attack_name(preset.attack), 'eps': preset.eps,
      'steps': preset.steps, 'preset_config': _preset_dict(preset),
      'summary': summary, 'transfer': transfer, 'skipped': skipped + gallery.skipped,
      'probes': records,
  }
  io.write_json(args.workdir / 'privacy_eval.json', result)
  _plot(records, summary, args.workdir / 'privacy_vs_quality.png', preset.name)
  c, p = summary['clean'], summary['protected']
  print(f'clean rank-1 {100 * c["rank1"]:.1f}% over {c["probes"]} probes')
  for d in DEGRADATION_NAMES:
    s = p[d]
    print(f'protected ({d}): rank-1 {100 * s["rank1"]:.1f}%, PSR {100 * s["psr"]:.1f}% '
          f'(no face {100 * s["no_face"]:.1f}%), verification failure '
          f'{100 * s["verification_failure"]:.1f}%, face SSIM {s["mean_face_ssim"]:.4f} '
          f'(min {s["min_face_ssim"]:.4f}), SSIM {s["mean_ssim"]:.4f}, face PSNR '
          f'{s["mean_face_psnr"]:.2f} dB')
  print(f'seconds per photo: mean {summary["seconds_per_photo"]["mean"]:.2f}, median '
        f'{summary["seconds_per_photo"]["median"]:.2f} (includes compiling)')
  print(f'wrote {args.workdir / "privacy_eval.json"} and {args.workdir / "privacy_vs_quality.png"}')
  return 0


def _preset_dict(preset):
  import dataclasses
  d = dataclasses.asdict(preset)
  d['attack']['degradations'] = list(d['attack']['degradations'])
  return d


if __name__ == '__main__':
  sys.exit(main())
