#!/usr/bin/env python
"""Test accuracy of a trained classifier under white-box FGSM, at each eps (0-255 scale).

  python experiments/fgsm_eval.py --workdir runs/gt_cnn --eps 0,1,2,4,5,8,16

Reads the checkpoint and metrics.json that train_classifier.py wrote in W, and writes
W/fgsm_eval.json ({"accuracy": {"0": ..., "5": ...}, "config": ...}), W/accuracy_vs_eps.png and
W/triplets_eps<E>.png (original | perturbation | adversarial, each with its predicted identity).
"""
from __future__ import annotations

import argparse
import sys

from fgsm_jax import cli
from fgsm_jax.cli import eps_list_255, fail
from fgsm_jax.io import eps_key


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.parser(__doc__)
  p.add_argument('--workdir', type=cli.nonempty_path, required=True,
                 help='folder of a trained classifier (train_classifier.py --workdir); the '
                      'results are written there too')
  p.add_argument('--eps', type=eps_list_255, default=eps_list_255('0,1,2,4,5,8,16'),
                 help='L-inf budgets on the 0-255 scale, comma-separated, each in [0, 255]')
  p.add_argument('--figure-eps', type=cli.number(0, 255), default=5.0,
                 help='eps (0-255 scale) of the triplet figure, in [0, 255]')
  p.add_argument('--figure-examples', type=cli.non_negative_int, default=3,
                 help='faces in the triplet figure (0: no figure)')
  p.add_argument('--targeted', action='store_true',
                 help='targeted FGSM toward the next identity ((y + 1) mod C) instead')
  p.add_argument('--batch-size', type=cli.positive_int, default=64,
                 help='images per attack batch')
  p.add_argument('--manual-dir', type=cli.nonempty_path, default=None,
                 help='override the photo folder recorded in W/metrics.json')
  p.add_argument('--data-dir', type=cli.nonempty_path, default=None,
                 help='override the TFDS data dir recorded in W/metrics.json')
  p.add_argument('--seed', type=cli.seed, default=0, help="picks the figure's examples")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  import numpy as np

  from fgsm_jax import evaluation, figures, io, train
  from fgsm_jax.data import DatasetError, load_split
  metrics_path = args.workdir / 'metrics.json'
  if not metrics_path.is_file():
    fail(f'{metrics_path}: not found (run experiments/train_classifier.py first)')
  try:  # before the evaluation, not after it
    cli.writable_dir(args.workdir, 'workdir')
    if args.manual_dir is not None:  # else TFDS's cache would hide the typo
      cli.check_dir(args.manual_dir, '--manual-dir')
  except OSError as e:
    fail(str(e), 2 if 'workdir' in str(e) else 1)
  try:
    manual_dir, data_dir, trained = evaluation.recorded_data_dirs(
        args.workdir, args.manual_dir, args.data_dir)
    apply_fn, params, config = train.load_checkpoint(args.workdir)
  except Exception as e:  # pylint: disable=broad-except
    # A corrupt metrics.json or checkpoint: one line, no traceback.
    fail(f'{args.workdir}: cannot load the trained classifier ({cli.one_line(e)[:300]})')
  names = (trained.get('data') or {}).get('class_names') or [
      str(i) for i in range(config.num_classes)]
  try:
    images, labels = load_split(config.dataset, 'test', manual_dir=manual_dir, data_dir=data_dir)
  except (DatasetError, OSError, ValueError) as e:
    fail(cli.one_line(str(e).splitlines()[0] if str(e) else type(e).__name__))

  adversarial = evaluation.fgsm_curve(
      apply_fn, params, images, labels, set(args.eps) | {args.figure_eps},
      num_classes=config.num_classes, targeted=args.targeted, batch_size=args.batch_size,
      on_eps=lambda e, acc: e in args.eps and print(f'eps {e:g}/255: test accuracy {acc:.4f}'))
  result = {  # eps in numeric order, not sorted as text: "2" before "16"
      'accuracy': {eps_key(e): float(np.mean(adversarial[e][1] == labels))
                   for e in sorted(set(args.eps))},
      'attack': 'fgsm-targeted' if args.targeted else 'fgsm',
      'test_examples': int(len(labels)),
      'config': {'eps_255': args.eps, 'targeted': args.targeted, 'checkpoint_workdir':
                 str(args.workdir.resolve()), 'train_config': trained.get('config'),
                 'batch_size': args.batch_size},
  }
  io.write_json(args.workdir / 'fgsm_eval.json', result, sort_keys=False)
  figures.plot_accuracy_vs_eps(
      {f'{config.model} on {config.dataset}': {float(k): v
                                               for k, v in result['accuracy'].items()}},
      args.workdir / 'accuracy_vs_eps.png',
      title=f"White-box {'targeted ' if args.targeted else ''}FGSM, {config.dataset} test split")

  if args.figure_examples:
    clean_pred = evaluation.predict(apply_fn, params, images, args.batch_size)
    adv, adv_pred = adversarial[args.figure_eps]
    pick = evaluation.figure_examples(labels, clean_pred, adv_pred, args.figure_examples,
                                      args.seed)
    path = args.workdir / f'triplets_eps{eps_key(args.figure_eps)}.png'
    amplification = figures.plot_triplets(
        images[pick], adv[pick], [names[i] for i in clean_pred[pick]],
        [names[i] for i in adv_pred[pick]], [names[i] for i in labels[pick]],
        args.figure_eps, path)
    result['figure'] = {'triplets': path.name, 'examples': pick.tolist(),
                        'perturbation_amplification': amplification}
    io.write_json(args.workdir / 'fgsm_eval.json', result, sort_keys=False)
  print(f"wrote {args.workdir / 'fgsm_eval.json'}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
