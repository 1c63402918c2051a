#!/usr/bin/env python
"""Trains a face classifier (default: the original CNN, Adam 1e-3, 5 epochs, batch 8).

  python experiments/train_classifier.py --dataset gt --manual-dir ../shared/datasets/gt_db \
      --workdir runs/gt_cnn

Writes W/metrics.json ({"test_accuracy", "train_accuracy", "config", "history", ...}),
W/config.json and the orbax checkpoint W/checkpoint/.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from fgsm_jax import cli
from fgsm_jax.cli import fail


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax.data import DATASETS
  from fgsm_jax.models import CLASSIFIERS
  p = cli.parser(__doc__)
  p.add_argument('--dataset', choices=DATASETS, default='gt', help='which face dataset')
  p.add_argument('--manual-dir', type=cli.nonempty_path, default=None,
                 help="folder with the local photos (one folder per person); default: TFDS's "
                      'manual dir, or the official download for gt')
  p.add_argument('--data-dir', type=cli.nonempty_path, default=None,
                 help="TFDS data dir where the prepared dataset is cached (default: TFDS's)")
  p.add_argument('--workdir', type=cli.nonempty_path, required=True,
                 help='output folder (created if needed; must be writable)')
  p.add_argument('--model', choices=sorted(CLASSIFIERS), default='cnn',
                 help='classifier architecture')
  p.add_argument('--epochs', type=cli.positive_int, default=5, help='passes over the data')
  p.add_argument('--batch-size', type=cli.positive_int, default=8, help='examples per step')
  p.add_argument('--learning-rate', type=cli.number(0, 10, lo_open=True), default=1e-3,
                 help='Adam learning rate, in (0, 10]')
  p.add_argument('--seed', type=cli.seed, default=0,
                 help='PRNG seed (initialisation, shuffling, augmentation)')
  p.add_argument('--cosine', action='store_true',
                 help='decay the learning rate to 0 over training (cosine); default constant')
  p.add_argument('--flip', action='store_true', help='augment: random left-right mirroring')
  p.add_argument('--max-shift', type=cli.non_negative_int, default=0,
                 help='augment: random shifts of up to this many pixels')
  p.add_argument('--brightness', type=cli.number(0, 1, hi_open=True), default=0.0,
                 help='augment: scale intensities by 1 + U(-b, b), b in [0, 1)')
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.manual_dir is not None:
    try:
      cli.check_dir(args.manual_dir, '--manual-dir')
    except OSError as e:
      fail(str(e))
  try:  # before any data is loaded or step trained
    cli.writable_dir(args.workdir, 'workdir')
  except OSError as e:
    fail(str(e), 2)
  from fgsm_jax import io, train
  from fgsm_jax.data import DatasetError, class_names, load_split
  from fgsm_jax.evaluation import accuracy

  try:
    train_x, train_y = load_split(args.dataset, 'train', manual_dir=args.manual_dir,
                                  data_dir=args.data_dir)
    test_x, test_y = load_split(args.dataset, 'test', manual_dir=args.manual_dir,
                                data_dir=args.data_dir)
    names = class_names(args.dataset, manual_dir=args.manual_dir, data_dir=args.data_dir)
  except (DatasetError, OSError, ValueError) as e:
    fail(cli.one_line(str(e).splitlines()[0] if str(e) else type(e).__name__))
  print(f'{args.dataset}: {len(train_x)} training and {len(test_x)} test faces, '
        f'{len(names)} identities')

  config = train.TrainConfig(dataset=args.dataset, model=args.model, num_classes=len(names),
                             image_size=int(train_x.shape[1]), learning_rate=args.learning_rate,
                             epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                             cosine_decay=args.cosine,
                             steps_per_epoch=-(-len(train_x) // args.batch_size),
                             flip=args.flip, max_shift=args.max_shift,
                             brightness=args.brightness)
  start = time.perf_counter()
  state, history = train.train(config, train_x, train_y)
  seconds = time.perf_counter() - start
  metrics = {
      'train_accuracy': accuracy(state.apply_fn, state.params, train_x, train_y),
      'test_accuracy': accuracy(state.apply_fn, state.params, test_x, test_y),
      'train_examples': int(len(train_x)), 'test_examples': int(len(test_x)),
      'train_seconds': seconds, 'history': history,
      'config': dataclasses.asdict(config),
      'data': {'manual_dir': str(args.manual_dir.resolve()) if args.manual_dir else None,
               'data_dir': str(args.data_dir.resolve()) if args.data_dir else None,
               'class_names': list(names)},
  }
  try:
    train.save_checkpoint(args.workdir, state.params, config,
                          {k: metrics[k] for k in ('train_accuracy', 'test_accuracy')})
    io.write_json(args.workdir / 'metrics.json', metrics)
  except Exception as e:  # pylint: disable=broad-except
    # orbax leaves worker threads behind on a failed save and the interpreter then waits
    # for them forever: report and leave without the teardown.
    print(f'error: {args.workdir}: cannot save the checkpoint ({cli.one_line(e)})',
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)
  print(f"clean train accuracy (final weights) {metrics['train_accuracy']:.4f}, test accuracy "
        f"{metrics['test_accuracy']:.4f}; wrote {args.workdir / 'metrics.json'}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
